//! Resolving credential locations into keys: at start-up for configured providers, lazily for
//! shorthand models, and per request for `dynamic::` ones.

use std::collections::BTreeMap;

use crate::config::CredentialLocation;
use crate::secret::Secret;

/// The `credentials` map of one request (`tensorzero::credentials` on the OpenAI route).
pub type DynamicCredentials = BTreeMap<String, Secret>;

/// A key source after start-up.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A key read at start-up.
    Static(Secret),
    /// A key taken from each request's credentials.
    Dynamic(String),
    /// No key is sent.
    None,
    /// Try the first, then the second.
    WithFallback(Box<Credential>, Box<Credential>),
    /// A key that could not be loaded; requests that need it fail with this reason.
    Missing(String),
}

impl Credential {
    /// Loads a location, reading environment variables and files now.
    pub fn load(location: &CredentialLocation) -> Result<Credential, String> {
        match location {
            CredentialLocation::Env(var) => std::env::var(var)
                .map(|v| Credential::Static(Secret::new(v)))
                .map_err(|_| format!("Environment variable `{var}` is missing")),
            CredentialLocation::Path(path) => read_key_file(path),
            CredentialLocation::PathFromEnv(var) => {
                let path = std::env::var(var).map_err(|_| {
                    format!(
                        "Environment variable `{var}` (which should name the key file) is missing"
                    )
                })?;
                read_key_file(path.as_ref())
            }
            CredentialLocation::Dynamic(name) => Ok(Credential::Dynamic(name.clone())),
            CredentialLocation::None => Ok(Credential::None),
            CredentialLocation::Sdk => Err(
                "`sdk` credentials (the AWS/GCP SDK chains) are not supported by switchyard yet"
                    .to_owned(),
            ),
            CredentialLocation::WithFallback { default, fallback } => {
                match (Credential::load(default), Credential::load(fallback)) {
                    (Ok(d), Ok(f)) => Ok(Credential::WithFallback(Box::new(d), Box::new(f))),
                    (Ok(d), Err(_)) => Ok(d),
                    (Err(e), Ok(f)) => {
                        tracing::warn!(
                            "credential `{default}` is unavailable ({e}); using the fallback `{fallback}`"
                        );
                        Ok(f)
                    }
                    (Err(e1), Err(e2)) => Err(format!("{e1}; fallback: {e2}")),
                }
            }
        }
    }

    /// Loads a location, turning a failure into [`Credential::Missing`] so that it is reported
    /// only when a request needs the key (shorthand models, provider-type defaults).
    pub fn load_lazily(location: &CredentialLocation) -> Credential {
        Credential::load(location).unwrap_or_else(Credential::Missing)
    }

    /// The key for one request; `Ok(None)` means send no key.
    pub fn resolve(&self, dynamic: &DynamicCredentials) -> Result<Option<Secret>, String> {
        match self {
            Credential::Static(s) => Ok(Some(s.clone())),
            Credential::None => Ok(None),
            Credential::Dynamic(name) => dynamic
                .get(name)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("Dynamic api key `{name}` is missing; send it in the request's `credentials` map")),
            Credential::WithFallback(default, fallback) => match default.resolve(dynamic) {
                Ok(key) => Ok(key),
                Err(e) => {
                    tracing::warn!("default credential unavailable ({e}); using the fallback");
                    fallback.resolve(dynamic)
                }
            },
            Credential::Missing(reason) => Err(reason.clone()),
        }
    }
}

fn read_key_file(path: &std::path::Path) -> Result<Credential, String> {
    std::fs::read_to_string(path)
        .map(|v| Credential::Static(Secret::new(v.trim_end_matches(['\n', '\r']))))
        .map_err(|e| format!("cannot read key file `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_credentials_come_from_the_request() {
        let c = Credential::load(&CredentialLocation::Dynamic("k".into())).unwrap();
        let mut creds = DynamicCredentials::new();
        assert!(c.resolve(&creds).unwrap_err().contains("`k` is missing"));
        creds.insert("k".into(), Secret::new("v"));
        assert_eq!(c.resolve(&creds).unwrap().unwrap().expose(), "v");
    }

    #[test]
    fn fallback_is_used_when_default_is_missing_per_request() {
        let loc = CredentialLocation::WithFallback {
            default: Box::new(CredentialLocation::Dynamic("k".into())),
            fallback: Box::new(CredentialLocation::None),
        };
        let c = Credential::load(&loc).unwrap();
        assert_eq!(c.resolve(&DynamicCredentials::new()).unwrap(), None);
    }

    #[test]
    fn missing_env_var_names_the_variable() {
        let err =
            Credential::load(&CredentialLocation::Env("SWITCHYARD_TEST_NOPE".into())).unwrap_err();
        assert!(err.contains("SWITCHYARD_TEST_NOPE"), "{err}");
    }
}
