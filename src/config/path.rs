//! TOML paths (`models.gpt.providers.openai`): where a key is, for every error the loader and
//! the validator report.

use std::fmt;

/// One step of a TOML path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A TOML path such as `models.gpt.providers.openai`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TomlPath(pub Vec<PathSegment>);

impl TomlPath {
    /// Builds a path from keys.
    pub fn keys<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(
            keys.into_iter()
                .map(|k| PathSegment::Key(k.into()))
                .collect(),
        )
    }

    /// This path with one more key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segs = self.0.clone();
        segs.push(PathSegment::Key(key.into()));
        Self(segs)
    }

    /// This path with one more index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(PathSegment::Index(index));
        Self(segs)
    }
}

impl From<&serde_path_to_error::Path> for TomlPath {
    fn from(path: &serde_path_to_error::Path) -> Self {
        Self(
            path.iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => {
                        Some(PathSegment::Key(key.clone()))
                    }
                    serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                    _ => None,
                })
                .collect(),
        )
    }
}

impl fmt::Display for TomlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
