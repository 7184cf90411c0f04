//! Reading credential locations into [`CredentialSource`]s: at start-up for configured
//! providers (a missing variable or file is an error), lazily for shorthand models and
//! provider-type defaults (a missing key fails the call that needs it). `dynamic::` keys are
//! resolved per call by the credentials layer.

use switchyard_layers::credentials::CredentialSource;

use crate::config::CredentialLocation;
use switchyard_layers::Secret;

/// Reads a location now.
pub fn load(location: &CredentialLocation) -> Result<CredentialSource, String> {
    match location {
        CredentialLocation::Env(var) => std::env::var(var)
            .map(|v| CredentialSource::Static(Secret::new(v)))
            .map_err(|_| format!("Environment variable `{var}` is missing")),
        CredentialLocation::Path(path) => read_key_file(path),
        CredentialLocation::PathFromEnv(var) => {
            let path = std::env::var(var).map_err(|_| {
                format!("Environment variable `{var}` (which should name the key file) is missing")
            })?;
            read_key_file(path.as_ref())
        }
        CredentialLocation::Dynamic(name) => Ok(CredentialSource::Dynamic(name.clone())),
        CredentialLocation::None => Ok(CredentialSource::None),
        CredentialLocation::Sdk => Err(
            "`sdk` credentials (the AWS/GCP SDK chains) are not supported by switchyard yet"
                .to_owned(),
        ),
        CredentialLocation::WithFallback { default, fallback } => {
            match (load(default), load(fallback)) {
                (Ok(d), Ok(f)) => Ok(CredentialSource::WithFallback(Box::new(d), Box::new(f))),
                (Ok(d), Err(_)) => Ok(d),
                // "This key if it is there, else none" is said on purpose: nothing to warn about.
                (Err(_), Ok(f)) if matches!(**fallback, CredentialLocation::None) => Ok(f),
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

/// Reads a location, turning a failure into [`CredentialSource::Missing`] so it is reported only
/// when a call needs the key.
pub fn load_lazily(location: &CredentialLocation) -> CredentialSource {
    load(location).unwrap_or_else(CredentialSource::Missing)
}

fn read_key_file(path: &std::path::Path) -> Result<CredentialSource, String> {
    std::fs::read_to_string(path)
        .map(|v| CredentialSource::Static(Secret::new(v.trim_end_matches(['\n', '\r']))))
        .map_err(|e| format!("cannot read key file `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_env_var_names_the_variable() {
        let err = load(&CredentialLocation::Env("SWITCHYARD_TEST_NOPE".into())).unwrap_err();
        assert!(err.contains("SWITCHYARD_TEST_NOPE"), "{err}");
    }

    #[test]
    fn key_files_are_read_without_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "sk-1\n").unwrap();
        match load(&CredentialLocation::Path(path)).unwrap() {
            CredentialSource::Static(s) => assert_eq!(s.expose(), "sk-1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn self_hosted_types_send_no_key_unless_their_variable_is_set() {
        use crate::config::ProviderType;
        for t in [ProviderType::Sglang, ProviderType::Tgi] {
            let location = t.default_credential_location();
            let var = match &location {
                CredentialLocation::WithFallback { default, .. } => match &**default {
                    CredentialLocation::Env(v) => v.clone(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            };
            if std::env::var_os(&var).is_none() {
                assert!(
                    matches!(load(&location), Ok(CredentialSource::None)),
                    "{t:?}"
                );
            }
        }
    }

    #[test]
    fn a_fallback_pair_survives_a_missing_default() {
        let loc = CredentialLocation::WithFallback {
            default: Box::new(CredentialLocation::Env("SWITCHYARD_TEST_NOPE".into())),
            fallback: Box::new(CredentialLocation::None),
        };
        assert!(matches!(load(&loc).unwrap(), CredentialSource::None));
    }
}
