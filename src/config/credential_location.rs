//! Where a provider key (or the relay key) comes from: `api_key_location` and
//! `credential_location` values.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// A credential location as written in `tensorzero.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialLocation {
    /// `env::VAR`: the value of an environment variable, read at start-up.
    Env(String),
    /// `path::FILE` (also `file::FILE`, the GCP spelling): a file's contents, read at start-up.
    Path(PathBuf),
    /// `path_from_env::VAR`: an environment variable names the file to read.
    PathFromEnv(String),
    /// `dynamic::NAME`: `credentials[NAME]` of each request.
    Dynamic(String),
    /// `sdk`: the provider SDK's own chain (AWS, GCP).
    Sdk,
    /// `none`: send no key.
    None,
    /// `{ default = "...", fallback = "..." }`: use `fallback` when `default` cannot be had.
    WithFallback {
        /// The location tried first.
        default: Box<CredentialLocation>,
        /// The location used when `default` fails.
        fallback: Box<CredentialLocation>,
    },
}

impl CredentialLocation {
    /// Parses the string form (`env::VAR`, `dynamic::NAME`, ...).
    pub fn parse(s: &str) -> Result<Self, String> {
        let nonempty = |rest: &str, form: &str| {
            if rest.is_empty() {
                Err(format!(
                    "invalid credential location `{s}`: `{form}` needs a name after it"
                ))
            } else {
                Ok(rest.to_owned())
            }
        };
        if let Some(rest) = s.strip_prefix("env::") {
            Ok(Self::Env(nonempty(rest, "env::")?))
        } else if let Some(rest) = s.strip_prefix("path_from_env::") {
            Ok(Self::PathFromEnv(nonempty(rest, "path_from_env::")?))
        } else if let Some(rest) = s.strip_prefix("path::") {
            Ok(Self::Path(nonempty(rest, "path::")?.into()))
        } else if let Some(rest) = s.strip_prefix("file::") {
            Ok(Self::Path(nonempty(rest, "file::")?.into()))
        } else if let Some(rest) = s.strip_prefix("dynamic::") {
            Ok(Self::Dynamic(nonempty(rest, "dynamic::")?))
        } else if s == "sdk" {
            Ok(Self::Sdk)
        } else if s == "none" {
            Ok(Self::None)
        } else {
            Err(format!(
                "invalid credential location `{s}`: use `env::VAR_NAME`, `path::/path/to/file`, \
                 `path_from_env::VAR_NAME`, `dynamic::ARGUMENT_NAME`, `sdk` or `none` \
                 (note the double colon)"
            ))
        }
    }

    /// True when any part of this location is resolved per request.
    pub fn is_dynamic(&self) -> bool {
        match self {
            Self::Dynamic(_) => true,
            Self::WithFallback { default, fallback } => {
                default.is_dynamic() || fallback.is_dynamic()
            }
            _ => false,
        }
    }
}

impl fmt::Display for CredentialLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(v) => write!(f, "env::{v}"),
            Self::Path(p) => write!(f, "path::{}", p.display()),
            Self::PathFromEnv(v) => write!(f, "path_from_env::{v}"),
            Self::Dynamic(n) => write!(f, "dynamic::{n}"),
            Self::Sdk => f.write_str("sdk"),
            Self::None => f.write_str("none"),
            Self::WithFallback { default, fallback } => {
                write!(
                    f,
                    "{{ default = \"{default}\", fallback = \"{fallback}\" }}"
                )
            }
        }
    }
}

impl<'de> Deserialize<'de> for CredentialLocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LocationVisitor;

        impl<'de> Visitor<'de> for LocationVisitor {
            type Value = CredentialLocation;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a credential location string or { default = \"...\", fallback = \"...\" }",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                CredentialLocation::parse(v).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut default = None;
                let mut fallback = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    let parsed = CredentialLocation::parse(&value).map_err(de::Error::custom)?;
                    if matches!(parsed, CredentialLocation::WithFallback { .. }) {
                        unreachable!("the string form never nests");
                    }
                    match key.as_str() {
                        "default" => default = Some(parsed),
                        "fallback" => fallback = Some(parsed),
                        other => {
                            return Err(de::Error::unknown_field(other, &["default", "fallback"]));
                        }
                    }
                }
                match (default, fallback) {
                    (Some(default), Some(fallback)) => Ok(CredentialLocation::WithFallback {
                        default: Box::new(default),
                        fallback: Box::new(fallback),
                    }),
                    (None, _) => Err(de::Error::missing_field("default")),
                    (_, None) => Err(de::Error::missing_field("fallback")),
                }
            }
        }

        deserializer.deserialize_any(LocationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_string_form() {
        assert_eq!(
            CredentialLocation::parse("env::A").unwrap(),
            CredentialLocation::Env("A".into())
        );
        assert_eq!(
            CredentialLocation::parse("path::/k").unwrap(),
            CredentialLocation::Path("/k".into())
        );
        assert_eq!(
            CredentialLocation::parse("file::/k").unwrap(),
            CredentialLocation::Path("/k".into())
        );
        assert_eq!(
            CredentialLocation::parse("path_from_env::P").unwrap(),
            CredentialLocation::PathFromEnv("P".into())
        );
        assert_eq!(
            CredentialLocation::parse("dynamic::k").unwrap(),
            CredentialLocation::Dynamic("k".into())
        );
        assert_eq!(
            CredentialLocation::parse("none").unwrap(),
            CredentialLocation::None
        );
        assert_eq!(
            CredentialLocation::parse("sdk").unwrap(),
            CredentialLocation::Sdk
        );
    }

    #[test]
    fn rejects_single_colon_and_empty_names() {
        let err = CredentialLocation::parse("env:OPENAI_API_KEY").unwrap_err();
        assert!(err.contains("double colon"), "{err}");
        assert!(
            CredentialLocation::parse("env::")
                .unwrap_err()
                .contains("needs a name")
        );
    }
}
