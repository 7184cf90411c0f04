//! A redacting holder for keys: it cannot be printed, logged or serialized by accident.

use std::fmt;
use std::sync::Arc;

/// A provider key, API key or dynamic credential.
///
/// `Debug` prints `Secret([redacted])`; there is no `Display` or `Serialize`. The only way to the
/// value is [`Secret::expose`], which call sites use when they put it on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        assert_eq!(s.expose(), "sk-very-secret");
    }
}
