//! A request's `credentials` object (dynamic credentials), read into [`Secret`]s.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use switchyard_layers::Secret;

/// Reads a request's `credentials` object (`{"name": "value", ...}`) straight into secrets, so
/// a key sent with a request never sits in a plain `String` of a type that can be printed.
pub fn deserialize_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, Secret>, D::Error>
where
    D: Deserializer<'de>,
{
    let plain = BTreeMap::<String, String>::deserialize(deserializer)?;
    Ok(plain
        .into_iter()
        .map(|(name, value)| (name, Secret::new(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_credentials_are_secrets_from_the_moment_they_are_read() {
        #[derive(Debug, Deserialize)]
        struct Request {
            #[serde(default, deserialize_with = "deserialize_map")]
            credentials: BTreeMap<String, Secret>,
        }
        let r: Request =
            serde_json::from_str(r#"{"credentials":{"openai_key":"sk-live-123"}}"#).unwrap();
        assert!(!format!("{r:?}").contains("sk-live-123"), "{r:?}");
        assert_eq!(r.credentials["openai_key"].expose(), "sk-live-123");
    }
}
