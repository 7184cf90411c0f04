//! Embedding models: `[embedding_models]`, shorthands (`openai::…`, `openrouter::…`) and the
//! model-call stack behind `POST /openai/v1/embeddings`.
//!
//! The stack is built by the same builder as chat models' (`stack::model`), in the same order:
//! rate limit (one reservation per call, no tags), the model's `timeout_ms`, relay-or-skip
//! (embedding calls always go to the relay when one is configured: there is no `skip_relay` for
//! them, reference §1.3), fallback over `routing`, each provider's `timeout_ms`, its key, the
//! global outbound deadline, and the codec of the OpenAI `/embeddings` wire format (the only one
//! the configuration allows) over the upstream leaf.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use serde_json::{Value, json};
use switchyard_layers::call::{Call, Payload};
use switchyard_layers::credentials::CredentialSource;
use switchyard_layers::ext::DynamicCredentials;
use switchyard_layers::ext::ProviderKey;
use switchyard_layers::rate_limit::{
    EstimateTokens, RateLimitLayer, ReportUsage, TokenEstimate, TokenReport, UsageReport,
};
use switchyard_layers::timeout::{LimitStream, StreamLimits, Timeouts};
use switchyard_layers::trace_context::TraceContext;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use crate::config::{
    Config, EmbeddingProviderConfig, EmbeddingProviderType, ProviderType, ProviderTypesConfig,
};
use crate::error::Error;
use crate::model_call::{BodyEdit, HeaderEdit};
use crate::providers::{apply_body_edit, bearer};
use crate::stack::model::{self, StackContext};
use crate::upstream::{Peer, Upstream, read_answer};

/// The prefix of embedding model names on the OpenAI-compatible route.
pub const EMBEDDING_MODEL_PREFIX: &str = "tensorzero::embedding_model_name::";

/// The texts (or token arrays) to embed, as the client sent them (a string, a list of strings,
/// a list of tokens, or a list of token lists), checked to be one of those and not empty.
#[derive(Clone, Debug)]
pub struct EmbeddingRequest {
    /// The input, passed on as is.
    pub input: Value,
    /// `dimensions`.
    pub dimensions: Option<u32>,
    /// `encoding_format` (`float` or `base64`).
    pub encoding_format: Option<String>,
}

impl EmbeddingRequest {
    /// Checks `input`'s shape; the error says what is accepted.
    pub fn new(
        input: Value,
        dimensions: Option<u32>,
        encoding_format: Option<String>,
    ) -> Result<Self, Error> {
        let is_tokens = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_u64));
        let empty = match &input {
            Value::String(_) => false,
            Value::Array(items) if items.iter().all(Value::is_string) => items.is_empty(),
            Value::Array(items) if items.iter().all(Value::is_u64) => items.is_empty(),
            Value::Array(items) if items.iter().all(is_tokens) => {
                items.is_empty()
                    || items
                        .iter()
                        .any(|t| t.as_array().is_some_and(Vec::is_empty))
            }
            _ => {
                return Err(Error::InvalidOpenAiRequest(
                    "`input` must be a string, a list of strings, a list of token ids, or a list of token-id lists".into(),
                ));
            }
        };
        if empty {
            return Err(Error::InvalidOpenAiRequest("Input cannot be empty".into()));
        }
        if let Some(format) = encoding_format.as_deref() {
            if format != "float" && format != "base64" {
                return Err(Error::InvalidOpenAiRequest(format!(
                    "`encoding_format` must be `float` or `base64`, not `{format}`"
                )));
            }
        }
        Ok(Self {
            input,
            dimensions,
            encoding_format,
        })
    }

    fn body(&self, model: &str) -> Value {
        let mut body = json!({ "input": self.input, "model": model });
        if let Some(d) = self.dimensions {
            body["dimensions"] = json!(d);
        }
        if let Some(f) = &self.encoding_format {
            body["encoding_format"] = json!(f);
        }
        body
    }
}

impl Payload for EmbeddingRequest {
    fn is_streaming(&self) -> bool {
        false
    }
}

impl EstimateTokens for EmbeddingRequest {
    /// Text bytes / 4, or the number of token ids; embeddings produce no output tokens.
    fn estimated_tokens(&self, _default_max_tokens: u32) -> TokenEstimate {
        fn count(v: &Value) -> u64 {
            match v {
                Value::String(s) => (s.len() as u64).div_ceil(4),
                Value::Number(_) => 1,
                Value::Array(items) => items.iter().map(count).sum(),
                _ => 0,
            }
        }
        TokenEstimate {
            input: count(&self.input).max(1),
            output: 0,
        }
    }
}

/// An answer: the vectors in input order, and the tokens the provider counted.
#[derive(Clone, Debug)]
pub struct EmbeddingOutput {
    /// The provider that answered (`tensorzero::relay` when relayed).
    pub provider: Arc<str>,
    /// One embedding per input, as the provider wrote it (numbers, or base64 text).
    pub embeddings: Vec<Value>,
    /// `usage.prompt_tokens`.
    pub prompt_tokens: Option<u32>,
    /// The cost: from the provider's prices, or the relay's `usage.tensorzero_cost`.
    pub cost: Option<crate::cost::Dollars>,
}

impl LimitStream for EmbeddingOutput {
    fn limit_stream(self, _limits: StreamLimits) -> Self {
        self
    }
}

impl ReportUsage for EmbeddingOutput {
    fn report_usage(self, settle: Box<dyn FnOnce(UsageReport) + Send>) -> Self {
        settle(UsageReport {
            tokens: self.prompt_tokens.map_or(TokenReport::Unknown, |t| {
                TokenReport::Reported(u64::from(t))
            }),
            cost: self.cost.map(crate::cost::Dollars::nanodollars_ceil),
        });
        self
    }
}

/// One embedding model's stack below the rate limit.
type EmbeddingService = BoxCloneSyncService<Call<EmbeddingRequest>, EmbeddingOutput, Error>;

/// Every embedding model, and how to reach shorthand ones and the relay.
#[derive(Debug)]
pub struct EmbeddingModels {
    configured: HashMap<String, EmbeddingService>,
    provider_types: ProviderTypesConfig,
    cx: StackContext,
    rate_limit: RateLimitLayer,
}

impl EmbeddingModels {
    /// Builds every configured embedding model. With a relay, providers' keys are not needed
    /// here (the relay holds them) and are not checked.
    pub fn new(
        config: &Config,
        cx: &StackContext,
        rate_limit: RateLimitLayer,
    ) -> Result<Self, Vec<String>> {
        let cx = cx.clone();
        let relay = cx.relay.clone();
        let mut configured = HashMap::new();
        let mut errors = Vec::new();
        for (name, model) in &config.embedding_models {
            let mut providers = Vec::new();
            for provider_name in &model.routing {
                let Some(provider) = model.providers.get(provider_name) else {
                    continue;
                };
                match EmbeddingProvider::from_config(
                    name,
                    provider_name,
                    provider,
                    &config.provider_types,
                    relay.is_none(),
                ) {
                    Ok(p) => providers.push(p),
                    Err(e) => errors.push(e),
                }
            }
            let timeouts = Timeouts {
                non_streaming_total: model.timeout_ms.map(Duration::from_millis),
                ..Timeouts::default()
            };
            configured.insert(name.clone(), stack(name, providers, timeouts, &cx));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            configured,
            provider_types: config.provider_types.clone(),
            cx,
            rate_limit,
        })
    }

    /// Embeds with model `name`: a configured model, a shorthand, or (with a relay) any name,
    /// which the relay resolves.
    pub async fn embed(
        &self,
        name: &str,
        call: Call<EmbeddingRequest>,
    ) -> Result<EmbeddingOutput, Error> {
        let service = match self.configured.get(name) {
            Some(s) => s.clone(),
            None if self.cx.relay.is_some() => {
                stack(name, Vec::new(), Timeouts::default(), &self.cx)
            }
            None => {
                let provider = name
                    .split_once("::")
                    .and_then(|(prefix, model)| {
                        let t = match prefix {
                            "openai" => ProviderType::Openai,
                            "openrouter" => ProviderType::Openrouter,
                            _ => return None,
                        };
                        (!model.is_empty()).then(|| {
                            EmbeddingProvider::shorthand(name, t, model, &self.provider_types)
                        })
                    })
                    .ok_or_else(|| Error::EmbeddingModelNotFound(name.to_owned()))?;
                stack(
                    name,
                    vec![provider],
                    Timeouts::default(),
                    &StackContext {
                        relay: None,
                        ..self.cx.clone()
                    },
                )
            }
        };
        let output = self.rate_limit.layer(service).oneshot(call).await?;
        // Priced calls are counted as chat calls are (a relayed one by the relay).
        if let Some(cost) = output
            .cost
            .filter(|_| &*output.provider != crate::providers::relay::RELAY_PROVIDER)
        {
            self.cx
                .metrics
                .cost
                .with(&[name, &output.provider])
                .add_nanodollars(u64::try_from(cost.nanodollars_ceil()).unwrap_or(0));
        }
        Ok(output)
    }
}

/// Builds one embedding model's stack (below the rate limit), with the builder chat models use.
fn stack(
    name: &str,
    providers: Vec<EmbeddingProvider>,
    timeouts: Timeouts,
    cx: &StackContext,
) -> EmbeddingService {
    let model: Arc<str> = Arc::from(name);
    let providers = providers
        .into_iter()
        .map(|p| {
            let p = Arc::new(p);
            let codec = EmbeddingClient::new(Destination::Provider(p.clone()), cx.upstream.clone());
            let target = model::Target {
                name: p.name.clone(),
                model: model.clone(),
                credential: p.credential.clone(),
                label: p.label(),
                timeouts: p.timeouts,
                peer: Peer::clone(&codec.peer),
                breaker: crate::health::breaker_settings(None, &cx.circuit_breaker),
            };
            (p.name.clone(), model::attempt(target, codec, cx))
        })
        .collect();
    let relay = cx.relay.as_ref().map(|relay| {
        let codec = EmbeddingClient::new(
            Destination::Relay {
                url: format!(
                    "{}/openai/v1/embeddings",
                    relay.gateway_url.trim_end_matches('/')
                )
                .into(),
                model: format!("{EMBEDDING_MODEL_PREFIX}{name}"),
            },
            cx.upstream.clone(),
        );
        let target = model::relay_target(relay, model.clone(), Peer::clone(&codec.peer));
        model::attempt(target, codec, cx)
    });
    // Embedding calls always go to the relay when one is configured (reference §1.3).
    model::calls(model, providers, relay, timeouts, false, None, cx)
}

/// One provider of an embedding model.
#[derive(Debug)]
struct EmbeddingProvider {
    name: Arc<str>,
    model_name: Arc<str>,
    provider_type: ProviderType,
    url: String,
    provider_model: String,
    credential: CredentialSource,
    extra_body: Vec<BodyEdit>,
    extra_headers: Vec<HeaderEdit>,
    timeouts: Timeouts,
    /// Its prices (`cost`), when configured.
    cost: Option<Arc<crate::cost::CostTable>>,
}

impl EmbeddingProvider {
    fn from_config(
        model: &str,
        name: &str,
        config: &EmbeddingProviderConfig,
        types: &ProviderTypesConfig,
        check_credentials: bool,
    ) -> Result<Self, String> {
        let provider_type = match config.provider_type {
            EmbeddingProviderType::Openai => ProviderType::Openai,
            EmbeddingProviderType::Openrouter => ProviderType::Openrouter,
            EmbeddingProviderType::Azure => ProviderType::Azure,
        };
        let location = config
            .api_key_location
            .clone()
            .unwrap_or_else(|| types.effective_default(provider_type));
        let credential = if check_credentials {
            crate::key_sources::load(&location).map_err(|e| {
                format!("API key missing for provider `{name}` of embedding model `{model}`: {e}")
            })?
        } else {
            crate::key_sources::load_lazily(&location)
        };
        let (url, provider_model) = match config.provider_type {
            EmbeddingProviderType::Azure => (azure_embeddings_url(config)?, String::new()),
            _ => (
                embeddings_url(
                    config
                        .api_base
                        .as_deref()
                        .or(types.default_api_base(provider_type))
                        .or(crate::providers::openai::default_api_base(provider_type))
                        .unwrap_or_default(),
                ),
                config.model_name.clone(),
            ),
        };
        Ok(Self {
            name: name.into(),
            model_name: model.into(),
            provider_type,
            url,
            provider_model,
            credential,
            extra_body: config.extra_body.iter().map(BodyEdit::from).collect(),
            extra_headers: config.extra_headers.iter().map(HeaderEdit::from).collect(),
            timeouts: Timeouts {
                non_streaming_total: config.timeout_ms.map(Duration::from_millis),
                ..Timeouts::default()
            },
            cost: crate::cost::CostTable::new(&config.cost),
        })
    }

    fn shorthand(
        full_name: &str,
        provider_type: ProviderType,
        model: &str,
        types: &ProviderTypesConfig,
    ) -> Self {
        Self {
            name: provider_type.as_str().into(),
            model_name: full_name.into(),
            provider_type,
            url: embeddings_url(
                types
                    .default_api_base(provider_type)
                    .or(crate::providers::openai::default_api_base(provider_type))
                    .unwrap_or_default(),
            ),
            provider_model: model.to_owned(),
            credential: crate::key_sources::load_lazily(&types.effective_default(provider_type)),
            extra_body: Vec::new(),
            extra_headers: Vec::new(),
            timeouts: Timeouts::default(),
            cost: None,
        }
    }

    fn label(&self) -> String {
        format!("`{}` of embedding model `{}`", self.name, self.model_name)
    }
}

/// An Azure embedding provider's URL: its `endpoint` (a URL, or `env::VAR` read now) and
/// deployment.
fn azure_embeddings_url(config: &EmbeddingProviderConfig) -> Result<String, String> {
    let (Some(endpoint), Some(deployment)) = (&config.endpoint, &config.deployment_id) else {
        return Err("an `azure` embedding provider needs `endpoint` and `deployment_id`".into());
    };
    let endpoint = match endpoint.strip_prefix("env::") {
        Some(var) => std::env::var(var)
            .map_err(|_| format!("the Azure endpoint variable `{var}` is not set"))?,
        None if endpoint.starts_with("dynamic::") => {
            return Err("a `dynamic::` endpoint is not supported for Azure embedding providers yet; write the URL or `env::VAR`".into());
        }
        None => endpoint.clone(),
    };
    let version = config
        .api_version
        .as_deref()
        .unwrap_or(crate::providers::openai::DEFAULT_AZURE_API_VERSION);
    crate::providers::openai::azure_deployment_url(&endpoint, deployment, "embeddings", version)
        .map_err(|e| format!("the Azure endpoint: {e}"))
}

fn embeddings_url(base: &str) -> String {
    format!("{}/embeddings", base.trim_end_matches('/'))
}

/// Where an embedding call goes.
#[derive(Clone, Debug)]
enum Destination {
    /// A provider's `/embeddings`.
    Provider(Arc<EmbeddingProvider>),
    /// The relay's `/openai/v1/embeddings` (reference §1.9).
    Relay { url: Arc<str>, model: String },
}

/// The codec of the OpenAI `/embeddings` wire format, to a provider or the relay.
#[derive(Clone, Debug)]
struct EmbeddingClient {
    destination: Destination,
    /// Who the calls go to, for their errors (built once, not per call).
    peer: Arc<Peer>,
    upstream: Upstream,
}

impl EmbeddingClient {
    fn new(destination: Destination, upstream: Upstream) -> Self {
        Self {
            peer: Arc::new(destination.peer()),
            destination,
            upstream,
        }
    }
}

impl tower::Service<Call<EmbeddingRequest>> for EmbeddingClient {
    type Response = EmbeddingOutput;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<EmbeddingOutput, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<EmbeddingRequest>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let destination = &this.destination;
            let url = destination.url();
            let body = destination.body(&call);
            let mut builder = Request::post(url).header(CONTENT_TYPE, "application/json");
            if let Some(key) = call
                .extensions
                .get::<ProviderKey>()
                .and_then(|k| k.0.as_ref())
            {
                builder = match destination.provider_type() {
                    // Azure takes its key in `api-key`.
                    Some(ProviderType::Azure) => {
                        builder.header("api-key", crate::providers::sensitive_header(key.expose())?)
                    }
                    _ => builder.header(AUTHORIZATION, bearer(key)?),
                };
            }
            let peer = &this.peer;
            // When the call is being stored (DICL's embedding of its input), its exchange is
            // kept for the model row, as a chat provider's is.
            let exchange = call
                .extensions
                .get::<crate::model_call::ExchangeLog>()
                .map(|log| log.attempt(&destination.provider_name()));
            let payload = crate::upstream::json_body(&body);
            if let Some(exchange) = &exchange {
                exchange.lock().unwrap_or_else(|e| e.into_inner()).request =
                    String::from_utf8_lossy(&payload).into_owned();
            }
            let mut request = builder
                .body(Full::new(payload))
                .map_err(|e| peer.failure(format!("cannot build a request to `{url}`: {e}")))?;
            crate::providers::apply_header_edits(
                request.headers_mut(),
                &destination.header_edits(),
            )?;
            let response = this
                .upstream
                .exchange(request, call.extensions.get::<TraceContext>())
                .await
                .map_err(|refused| peer.refused(refused))?;
            let bytes = read_answer(response.into_body())
                .await
                .map_err(|fault| peer.failure(fault))?;
            if let Some(exchange) = &exchange {
                exchange.lock().unwrap_or_else(|e| e.into_inner()).response =
                    String::from_utf8_lossy(&bytes).into_owned();
            }
            let answer: Value = serde_json::from_slice(&bytes)
                .map_err(|e| peer.failure(format!("the answer is not JSON: {e}")))?;
            let (embeddings, prompt_tokens) =
                parse_embeddings(&answer).map_err(|m| peer.failure(m))?;
            let cost = match destination {
                Destination::Provider(p) => p.cost.as_ref().and_then(|t| t.of_answer(&answer)),
                Destination::Relay { .. } => answer
                    .pointer("/usage/tensorzero_cost")
                    .and_then(Value::as_f64)
                    .and_then(crate::cost::Dollars::from_f64),
            };
            Ok(EmbeddingOutput {
                provider: destination.provider_name(),
                embeddings,
                prompt_tokens,
                cost,
            })
        })
    }
}

impl Destination {
    fn url(&self) -> &str {
        match self {
            Destination::Provider(p) => &p.url,
            Destination::Relay { url, .. } => url,
        }
    }

    fn provider_name(&self) -> Arc<str> {
        match self {
            Destination::Provider(p) => p.name.clone(),
            Destination::Relay { .. } => crate::providers::relay::RELAY_PROVIDER.into(),
        }
    }

    /// Who the exchange is with: whose failure it is when it goes wrong.
    fn peer(&self) -> Peer {
        match self {
            Destination::Provider(p) => Peer::Provider {
                provider_type: p.provider_type.as_str(),
                name: p.name.clone(),
                url: Some(p.url.as_str().into()),
            },
            Destination::Relay { url, .. } => Peer::Relay { url: url.clone() },
        }
    }

    /// The provider's type (`None` for the relay).
    fn provider_type(&self) -> Option<ProviderType> {
        match self {
            Destination::Provider(p) => Some(p.provider_type),
            Destination::Relay { .. } => None,
        }
    }

    /// The provider's `extra_headers` (none for the relay: its own providers apply theirs).
    fn header_edits(&self) -> Vec<&HeaderEdit> {
        match self {
            Destination::Provider(p) => p.extra_headers.iter().collect(),
            Destination::Relay { .. } => Vec::new(),
        }
    }

    /// The request body: the provider's model name and `extra_body`; for the relay, the
    /// gateway's model name and the fields of reference §1.9.
    fn body(&self, call: &Call<EmbeddingRequest>) -> Value {
        match self {
            Destination::Provider(p) => {
                let mut body = call.payload.body(&p.provider_model);
                for edit in &p.extra_body {
                    apply_body_edit(&mut body, edit);
                }
                body
            }
            Destination::Relay { model, .. } => {
                let mut body = call.payload.body(model);
                // Dynamic credentials travel to the relay, which resolves its providers' keys.
                let credentials: serde_json::Map<String, Value> = call
                    .extensions
                    .get::<DynamicCredentials>()
                    .map(|c| {
                        c.0.iter()
                            .map(|(k, v)| (k.clone(), json!(v.expose())))
                            .collect()
                    })
                    .unwrap_or_default();
                body["tensorzero::credentials"] = Value::Object(credentials);
                body["tensorzero::dryrun"] = Value::Null;
                body["tensorzero::cache_options"] = Value::Null;
                body["tensorzero::include_raw_response"] = json!(false);
                body
            }
        }
    }
}

/// The vectors (ordered by `index`) and `usage.prompt_tokens` of an OpenAI embeddings answer.
fn parse_embeddings(v: &Value) -> Result<(Vec<Value>, Option<u32>), String> {
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the answer has no `data` list")?;
    let mut indexed = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let embedding = item
            .get("embedding")
            .filter(|e| e.is_array() || e.is_string())
            .ok_or("an item of `data` has no `embedding`")?;
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |i| i as usize);
        indexed.push((index, embedding.clone()));
    }
    indexed.sort_by_key(|(i, _)| *i);
    let tokens = v
        .get("usage")
        .and_then(|u| u.get("prompt_tokens"))
        .and_then(Value::as_u64)
        .and_then(|t| u32::try_from(t).ok());
    Ok((indexed.into_iter().map(|(_, e)| e).collect(), tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked() {
        for ok in [
            json!("a"),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([[1], [2, 3]]),
        ] {
            assert!(
                EmbeddingRequest::new(ok.clone(), None, None).is_ok(),
                "{ok}"
            );
        }
        for empty in [json!([]), json!([[]])] {
            let err = EmbeddingRequest::new(empty, None, None).unwrap_err();
            assert!(err.to_string().contains("Input cannot be empty"), "{err}");
        }
        for bad in [json!(1), json!({"a": 1}), json!(["a", 1])] {
            assert!(EmbeddingRequest::new(bad, None, None).is_err());
        }
        assert!(EmbeddingRequest::new(json!("a"), None, Some("hex".into())).is_err());
    }

    #[test]
    fn answers_are_put_in_input_order() {
        let body = json!({
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.5]},
                {"object": "embedding", "index": 0, "embedding": [0.25]}
            ],
            "usage": {"prompt_tokens": 7, "total_tokens": 7}
        });
        let (vectors, tokens) = parse_embeddings(&body).unwrap();
        assert_eq!(vectors, vec![json!([0.25]), json!([0.5])]);
        assert_eq!(tokens, Some(7));
    }
}
