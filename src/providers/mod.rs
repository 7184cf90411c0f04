//! Model providers: one adapter per wire format, and the per-provider settings around it
//! (credential, `extra_body`/`extra_headers`, timeouts).
//!
//! The OpenAI chat format serves `openai`, `azure` and the OpenAI-compatible family
//! (deepseek, fireworks, groq, hyperbolic, mistral, openrouter, together, xai, vllm, sglang,
//! tgi). Other types load and validate but answer "not supported yet" until their adapters land.

pub mod openai;

use std::sync::Arc;

use serde_json::Value;

use crate::config::{ProviderConfig, ProviderType, ProviderTypesConfig, TimeoutsConfig};
use crate::credentials::{Credential, DynamicCredentials};
use crate::error::Error;
use crate::http_client::HttpClient;
use crate::inference::types::{BodyEdit, HeaderEdit, ModelRequest, ProviderOutput};
use crate::secret::Secret;

/// What a provider call needs besides the request.
pub struct CallContext<'a> {
    /// The shared outbound client.
    pub client: &'a HttpClient,
    /// The request's dynamic credentials.
    pub credentials: &'a DynamicCredentials,
    /// The limit on any outbound call, from `gateway.global_outbound_http_timeout_ms`.
    pub global_timeout: std::time::Duration,
}

/// One provider of one model, ready to call.
#[derive(Debug)]
pub struct ModelProvider {
    /// The provider's name within the model (`routing` entry).
    pub name: Arc<str>,
    /// The gateway's model name (configured name or shorthand).
    pub model_name: Arc<str>,
    /// The provider type.
    pub provider_type: ProviderType,
    adapter: Adapter,
    credential: Credential,
    extra_body: Vec<BodyEdit>,
    extra_headers: Vec<HeaderEdit>,
    /// Limits for one attempt.
    pub timeouts: TimeoutsConfig,
}

#[derive(Debug)]
enum Adapter {
    OpenAi(openai::OpenAiAdapter),
    /// A type whose adapter is not written yet: calls fail with a clear 501.
    NotYetSupported,
}

/// Why a configured provider could not be set up.
#[derive(Debug)]
pub struct ProviderSetupError(pub String);

impl ModelProvider {
    /// Sets up a configured provider. Credentials are read now: a missing environment variable
    /// or key file is an error that names it.
    pub fn from_config(
        model: &str,
        name: &str,
        config: &ProviderConfig,
        types: &ProviderTypesConfig,
    ) -> Result<Self, ProviderSetupError> {
        let provider_type = config.kind.provider_type();
        let location = config
            .kind
            .credential_location()
            .cloned()
            .unwrap_or_else(|| types.effective_default(provider_type));
        let adapter = match openai::OpenAiAdapter::from_config(&config.kind) {
            Some(result) => Adapter::OpenAi(result.map_err(|e| {
                ProviderSetupError(format!("provider `{name}` of model `{model}`: {e}"))
            })?),
            None => Adapter::NotYetSupported,
        };
        let credential = match adapter {
            // No key is needed for a provider that cannot be called yet.
            Adapter::NotYetSupported => Credential::load_lazily(&location),
            Adapter::OpenAi(_) => Credential::load(&location).map_err(|e| {
                ProviderSetupError(format!(
                    "API key missing for provider `{name}` (type `{provider_type}`) of model `{model}`: {e}. \
                     Set it, or point `api_key_location` at where the key is (`none` if the server needs no key)"
                ))
            })?,
        };
        Ok(Self {
            name: name.into(),
            model_name: model.into(),
            provider_type,
            adapter,
            credential,
            extra_body: config.extra_body.iter().map(BodyEdit::from).collect(),
            extra_headers: config.extra_headers.iter().map(HeaderEdit::from).collect(),
            timeouts: config.timeouts.clone(),
        })
    }

    /// The provider of a shorthand model such as `openai::gpt-4o-mini`. Its key is looked up
    /// now but a missing one is only reported when the call needs it.
    pub fn shorthand(
        full_name: &str,
        provider_type: ProviderType,
        model: &str,
        types: &ProviderTypesConfig,
    ) -> Self {
        let adapter = match openai::OpenAiAdapter::shorthand(provider_type, model) {
            Some(a) => Adapter::OpenAi(a),
            None => Adapter::NotYetSupported,
        };
        Self {
            name: provider_type.as_str().into(),
            model_name: full_name.into(),
            provider_type,
            adapter,
            credential: Credential::load_lazily(&types.effective_default(provider_type)),
            extra_body: Vec::new(),
            extra_headers: Vec::new(),
            timeouts: TimeoutsConfig::default(),
        }
    }

    /// Makes one attempt at this provider.
    pub async fn infer(
        &self,
        request: &ModelRequest,
        cx: &CallContext<'_>,
    ) -> Result<ProviderOutput, Error> {
        let adapter = match &self.adapter {
            Adapter::OpenAi(a) => a,
            Adapter::NotYetSupported => {
                return Err(Error::NotSupported(format!(
                    "the `{}` provider type (provider `{}` of model `{}`)",
                    self.provider_type, self.name, self.model_name
                )));
            }
        };
        let key =
            self.credential
                .resolve(cx.credentials)
                .map_err(|message| Error::ApiKeyMissing {
                    provider: format!("`{}` of model `{}`", self.name, self.model_name),
                    message,
                })?;
        let edits = Edits {
            body: self.body_edits(request),
            headers: self.header_edits(request),
        };
        adapter.infer(self, request, key.as_ref(), &edits, cx).await
    }

    /// Variant edits, then this provider's, then the request's (later ones win).
    fn body_edits<'a>(&'a self, request: &'a ModelRequest) -> Vec<&'a BodyEdit> {
        request
            .extra_body
            .variant
            .iter()
            .chain(&self.extra_body)
            .chain(
                request
                    .extra_body
                    .request
                    .iter()
                    .filter(|t| t.target.applies_to(&self.model_name, &self.name))
                    .map(|t| &t.edit),
            )
            .collect()
    }

    fn header_edits<'a>(&'a self, request: &'a ModelRequest) -> Vec<&'a HeaderEdit> {
        request
            .extra_headers
            .variant
            .iter()
            .chain(&self.extra_headers)
            .chain(
                request
                    .extra_headers
                    .request
                    .iter()
                    .filter(|t| t.target.applies_to(&self.model_name, &self.name))
                    .map(|t| &t.edit),
            )
            .collect()
    }
}

/// The edits that apply to one provider attempt, in order.
pub struct Edits<'a> {
    /// Body edits.
    pub body: Vec<&'a BodyEdit>,
    /// Header edits.
    pub headers: Vec<&'a HeaderEdit>,
}

/// Sets (or with `None`, removes) the value at a JSON Pointer, creating objects on the way.
pub fn apply_body_edit(body: &mut Value, edit: &BodyEdit) {
    let tokens: Vec<String> = edit
        .pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        if let Some(v) = &edit.value {
            *body = v.clone();
        }
        return;
    };
    let mut node = body;
    for token in parents {
        node = match node {
            Value::Object(map) => {
                if edit.value.is_none() && !map.contains_key(token) {
                    return;
                }
                map.entry(token.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            {
                Some(v) => v,
                None => return,
            },
            other => {
                if edit.value.is_none() {
                    return;
                }
                *other = Value::Object(Default::default());
                other
                    .as_object_mut()
                    .expect("just made an object")
                    .entry(token.clone())
                    .or_insert(Value::Null)
            }
        };
    }
    match (node, &edit.value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.clone(), v.clone());
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), value) => {
            if let Ok(i) = last.parse::<usize>() {
                match value {
                    Some(v) if i < items.len() => items[i] = v.clone(),
                    Some(v) if i == items.len() => items.push(v.clone()),
                    None if i < items.len() => {
                        items.remove(i);
                    }
                    _ => {}
                }
            } else if last == "-" {
                if let Some(v) = value {
                    items.push(v.clone());
                }
            }
        }
        (other, Some(v)) => {
            let mut map = serde_json::Map::new();
            map.insert(last.clone(), v.clone());
            *other = Value::Object(map);
        }
        (_, None) => {}
    }
}

/// Marks a key as sensitive so that no header dump can show it.
pub fn sensitive_header(value: &str) -> Result<http::HeaderValue, Error> {
    let mut v = http::HeaderValue::from_str(value).map_err(|_| {
        Error::InvalidRequest(
            "a credential contains characters that cannot go in an HTTP header".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A key as an `Authorization: Bearer` value.
pub fn bearer(key: &Secret) -> Result<http::HeaderValue, Error> {
    sensitive_header(&format!("Bearer {}", key.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pointer: &str, v: Value) -> BodyEdit {
        BodyEdit {
            pointer: pointer.into(),
            value: Some(v),
        }
    }

    #[test]
    fn body_edits_set_nested_and_delete() {
        let mut body = json!({"a": {"b": 1}, "list": [1, 2]});
        apply_body_edit(&mut body, &set("/a/c/d", json!(true)));
        apply_body_edit(
            &mut body,
            &BodyEdit {
                pointer: "/a/b".into(),
                value: None,
            },
        );
        apply_body_edit(&mut body, &set("/list/-", json!(3)));
        apply_body_edit(
            &mut body,
            &BodyEdit {
                pointer: "/missing/x".into(),
                value: None,
            },
        );
        assert_eq!(body, json!({"a": {"c": {"d": true}}, "list": [1, 2, 3]}));
    }

    #[test]
    fn pointer_escapes_are_decoded() {
        let mut body = json!({});
        apply_body_edit(&mut body, &set("/a~1b/c~0d", json!(1)));
        assert_eq!(body, json!({"a/b": {"c~d": 1}}));
    }
}
