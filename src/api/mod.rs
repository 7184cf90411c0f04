//! The HTTP API: routing, body reading, and the endpoint handlers.
//!
//! Routes (all under `gateway.base_path`): `POST /inference`,
//! `POST /openai/v1/chat/completions`, `POST /openai/v1/embeddings`, the coding agents' APIs
//! (`POST /openai/v1/responses`, `POST /anthropic/v1/messages` and its `count_tokens`, and the
//! model lists `GET /openai/v1/models` and `GET /anthropic/v1/models`), `GET /metrics`,
//! `GET /status`, `GET /health`, and the probes `GET /live` and `GET /ready`. Anything else is a
//! JSON 404 in the route family's error shape.

pub mod anthropic;
pub mod datasets;
pub mod embeddings;
pub mod feedback;
pub mod inference;
pub mod inferences;
pub mod models;
pub mod openai;
pub mod responses;
pub mod status;
mod stored_files;
mod stream;
mod target;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use switchyard_layers::ext::{InferenceInfo, RouteName};

use crate::body::{Body, full};
use crate::error::{Error, ErrorFlavor};
use crate::inference::{Engine, InferenceMeta};

/// The TensorZero Gateway release whose API this build speaks, sent as
/// `x-tensorzero-gateway-version` so clients that check it see a compatible gateway.
pub const TENSORZERO_COMPAT_VERSION: &str = "2026.4.0";
/// switchyard's own version, sent as `x-switchyard-version` and in `/status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Inference.
    pub engine: Engine,
    /// `gateway.base_path` without its trailing `/` (empty for the root).
    pub base_path: String,
    /// The request body limit (after decompression) and how long reading it may take.
    pub body_limit: BodyLimit,
    /// The config's hash, for `/status`.
    pub config_hash: String,
    /// The state of the API-key store (Postgres, when auth is on) and of the shared rate-limit
    /// store (Valkey/Redis, when rules use it), kept by a background check.
    pub backend_health: Arc<status::BackendHealth>,
    /// Whether the process is shutting down (`/ready` fails then).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// The metrics `/metrics` shows.
    pub metrics: Arc<crate::metrics::GatewayMetrics>,
    /// Every provider's circuit and back-offs, for `/status`.
    pub health: Arc<crate::health::ProviderHealth>,
    /// `[metrics]` and the target check, for `/feedback`.
    pub feedback: feedback::FeedbackSettings,
}

/// The auth layer for `[gateway.auth]`, with `/health`, `/status` and the probes open under
/// `base_path`.
pub fn auth_layer(
    config: &crate::config::gateway::AuthConfig,
    base_path: &str,
    store: Arc<dyn switchyard_layers::auth::KeyStore>,
    metrics: &crate::metrics::GatewayMetrics,
) -> switchyard_layers::auth::AuthLayer<Body> {
    use std::num::NonZeroU32;
    use switchyard_layers::auth::{AuthLayer, AuthSettings, ShieldSettings};
    let shield = &config.shield;
    let settings = AuthSettings {
        open_paths: ["/health", "/status", "/live", "/ready"]
            .iter()
            .map(|p| format!("{base_path}{p}"))
            .collect(),
        cache_ttl: config
            .cache
            .enabled
            .then(|| std::time::Duration::from_millis(config.cache.ttl_ms)),
        shield: match (
            shield.enabled,
            NonZeroU32::new(shield.failures_per_minute),
            NonZeroU32::new(shield.burst),
        ) {
            (true, Some(failures_per_minute), Some(burst)) => Some(ShieldSettings {
                failures_per_minute,
                burst,
                // Checked at load: a name that does not parse never gets here.
                client_ip_header: shield
                    .client_ip_header
                    .as_deref()
                    .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok()),
            }),
            _ => None,
        },
        failures: Some(metrics.auth_failures.clone()),
        timing: Some(metrics.layer_duration.with(&["auth"])),
    };
    let base = base_path.to_owned();
    AuthLayer::new(
        store,
        settings,
        Arc::new(move |failure, parts| auth_rejection(failure, parts, &base)),
    )
}

/// How a refused request is answered: the route's error shape, and `Retry-After` when the
/// shield blocked the client or the store is down.
fn auth_rejection(
    failure: &switchyard_layers::auth::AuthFailure,
    parts: &http::request::Parts,
    base_path: &str,
) -> Response<Body> {
    let flavor = parts
        .uri
        .path()
        .strip_prefix(base_path)
        .map_or(ErrorFlavor::Native, ErrorFlavor::of_path);
    Error::Unauthorized(failure.clone()).into_response(flavor)
}

/// The router: a tower service from requests to responses that never fails (errors are
/// responses).
#[derive(Clone, Debug)]
pub struct Router {
    state: Arc<AppState>,
}

impl Router {
    /// A router over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<B> tower::Service<Request<B>> for Router
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let mut response = route(state, req).await;
            let headers = response.headers_mut();
            headers.insert(
                "x-tensorzero-gateway-version",
                HeaderValue::from_static(TENSORZERO_COMPAT_VERSION),
            );
            headers.insert("x-switchyard-version", HeaderValue::from_static(VERSION));
            Ok(response)
        })
    }
}

async fn route<B>(state: Arc<AppState>, req: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let full_path = req.uri().path().to_owned();
    let path = match full_path.strip_prefix(state.base_path.as_str()) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => return not_found(req.method(), &full_path),
    };
    let flavor = ErrorFlavor::of_path(&path);
    let method = req.method().clone();
    let route = route_name(&path);
    let result = match (path.as_str(), &method) {
        // The handlers' futures are large (the whole inference runs inline in them) and are
        // boxed where they start: the router's own future stays small, so the layers above
        // move a few hundred bytes per request instead of kilobytes.
        ("/inference", &Method::POST) => Box::pin(inference::handle(&state, req)).await,
        ("/openai/v1/chat/completions", &Method::POST) => {
            Box::pin(openai::handle(&state, req)).await
        }
        ("/openai/v1/embeddings", &Method::POST) => Box::pin(embeddings::handle(&state, req)).await,
        ("/openai/v1/responses", &Method::POST) => Box::pin(responses::handle(&state, req)).await,
        ("/anthropic/v1/messages", &Method::POST) => Box::pin(anthropic::handle(&state, req)).await,
        ("/feedback", &Method::POST) => Box::pin(feedback::handle(&state, req)).await,
        ("/v1/inferences/get_inferences", &Method::POST) => {
            Box::pin(inferences::get(&state, req)).await
        }
        ("/v1/inferences/list_inferences", &Method::POST) => {
            Box::pin(inferences::list(&state, req)).await
        }
        ("/anthropic/v1/messages/count_tokens", &Method::POST) => {
            Box::pin(anthropic::count_tokens(&state, req)).await
        }
        ("/openai/v1/models", &Method::GET | &Method::HEAD) => Ok(models::openai(&state)),
        ("/anthropic/v1/models", &Method::GET | &Method::HEAD) => Ok(models::anthropic(&state)),
        ("/status", &Method::GET | &Method::HEAD) => Ok(status::status(&state)),
        ("/health", &Method::GET | &Method::HEAD) => Ok(status::health(&state)),
        ("/live", &Method::GET | &Method::HEAD) => Ok(status::live()),
        ("/ready", &Method::GET | &Method::HEAD) => Ok(status::ready(&state)),
        ("/metrics", &Method::GET | &Method::HEAD) => Ok(metrics_text(&state)),
        (
            "/inference"
            | "/openai/v1/chat/completions"
            | "/openai/v1/embeddings"
            | "/openai/v1/responses"
            | "/anthropic/v1/messages"
            | "/anthropic/v1/messages/count_tokens"
            | "/feedback"
            | "/v1/inferences/get_inferences"
            | "/v1/inferences/list_inferences",
            _,
        ) => {
            return method_not_allowed(&method, &full_path, "POST", flavor);
        }
        (
            "/status"
            | "/health"
            | "/live"
            | "/ready"
            | "/metrics"
            | "/openai/v1/models"
            | "/anthropic/v1/models",
            _,
        ) => {
            return method_not_allowed(&method, &full_path, "GET", flavor);
        }
        (p, m) if datasets::is_dataset_path(p) => {
            match Box::pin(datasets::route(&state, p, m, req)).await {
                Some(result) => result,
                None => return not_found(&method, &full_path),
            }
        }
        _ => return not_found(&method, &full_path),
    };
    let mut response = result.unwrap_or_else(|e| e.into_response(flavor));
    if let Some(route) = route {
        response.extensions_mut().insert(RouteName(route));
    }
    response
}

/// The route's name for metrics: one of a fixed set, never the raw path.
fn route_name(path: &str) -> Option<&'static str> {
    [
        "/inference",
        "/openai/v1/chat/completions",
        "/openai/v1/embeddings",
        "/openai/v1/responses",
        "/anthropic/v1/messages",
        "/anthropic/v1/messages/count_tokens",
        "/feedback",
        "/v1/inferences/get_inferences",
        "/v1/inferences/list_inferences",
        "/v1/datasets",
        "/openai/v1/models",
        "/anthropic/v1/models",
        "/status",
        "/health",
        "/live",
        "/ready",
        "/metrics",
    ]
    .into_iter()
    .find(|r| *r == path || (*r == "/v1/datasets" && datasets::is_dataset_path(path)))
}

/// `GET /metrics`: the Prometheus text format.
fn metrics_text(state: &AppState) -> Response<Body> {
    let mut res = Response::new(full(state.metrics.render()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

fn not_found(method: &Method, path: &str) -> Response<Body> {
    let flavor = if path.contains("/openai/v1") {
        ErrorFlavor::OpenAi
    } else if path.contains("/anthropic/v1") {
        ErrorFlavor::Anthropic
    } else {
        ErrorFlavor::Native
    };
    Error::RouteNotFound {
        method: method.to_string(),
        path: path.to_owned(),
    }
    .into_response(flavor)
}

fn method_not_allowed(
    method: &Method,
    path: &str,
    allowed: &'static str,
    flavor: ErrorFlavor,
) -> Response<Body> {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_owned(),
        allowed,
    }
    .into_response(flavor)
}

/// How much of a request body is read, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    /// The most bytes, counted after decompression.
    pub bytes: usize,
    /// The longest the client may take to send them.
    pub read_timeout: std::time::Duration,
}

impl From<&crate::config::gateway::LimitsConfig> for BodyLimit {
    fn from(l: &crate::config::gateway::LimitsConfig) -> Self {
        Self {
            bytes: l.max_request_body_bytes,
            read_timeout: std::time::Duration::from_millis(l.body_read_timeout_ms),
        }
    }
}

/// Reads the whole body, refusing more than the limit with a 413 and a client that takes too
/// long with a 408. The body is already being decompressed, so the limit holds for what it
/// inflates to, not for what travelled.
async fn read_body<B>(
    req: Request<B>,
    limit: BodyLimit,
) -> Result<(http::request::Parts, Bytes), Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let limit_ms = limit.read_timeout.as_millis() as u64;
    let (read_timeout, limit) = (limit.read_timeout, limit.bytes);
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let collect = http_body_util::Limited::new(body, limit).collect();
    let bytes = tokio::time::timeout(read_timeout, collect)
        .await
        .map_err(|_| Error::BodyReadTimeout { limit_ms })?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Error::PayloadTooLarge { limit }
            } else {
                Error::JsonRequest(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    Ok((parts, bytes))
}

/// Parses a JSON body, saying where it went wrong: the line and column for malformed JSON,
/// the field path for a wrong type or an unknown field.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::JsonRequest(
            "The request body is empty; send a JSON object".into(),
        ));
    }
    // The common case, a valid body, is read without tracking the path (which costs on every
    // field); only a body that fails is read again, with it, to say where.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::JsonRequest(format!("Malformed JSON in the request body: {inner}"))
        } else if path == "." {
            Error::JsonRequest(format!("Invalid request body: {inner}"))
        } else {
            Error::JsonRequest(format!("Invalid request body at `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| Error::JsonRequest(format!("Malformed JSON in the request body: {e}")))?;
    Ok(value)
}

/// A JSON response.
fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    // Straight into bytes: `Value`'s `Display` goes through `core::fmt`, a cost per character.
    let bytes = serde_json::to_vec(value).expect("an answer serializes");
    let mut res = Response::new(full(Bytes::from(bytes)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Tells the request log which function, variant, model and provider served the request,
/// and what its model calls gathered.
fn annotate(res: &mut Response<Body>, meta: &InferenceMeta, request: &RequestFacts) {
    res.extensions_mut().insert(InferenceInfo {
        model: Some(meta.model_name.clone()),
        provider: Some(meta.provider_name.clone()),
        function: Some(meta.function_name.clone()),
        variant: Some(meta.variant_name.clone()),
        api_key_public_id: request.api_key_public_id.clone(),
        stats: Some(request.stats.clone()),
    });
}

/// The request header that asks for a `Server-Timing` response header.
pub const TIMING_REQUEST_HEADER: &str = "x-switchyard-timing";

/// Adds `Server-Timing` (milliseconds per layer, to the first chunk for streams) when the
/// client asked for it with `x-switchyard-timing`: the split of the gateway's own time that the
/// `switchyard_layer_duration_seconds` histogram shows in aggregate.
fn server_timing(
    res: &mut Response<Body>,
    parts: &http::request::Parts,
    facts: &RequestFacts,
    started: tokio::time::Instant,
) {
    if !parts.headers.contains_key(TIMING_REQUEST_HEADER) {
        return;
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let stats = &facts.stats;
    let auth = parts
        .extensions
        .get::<switchyard_layers::ext::AuthDuration>()
        .map_or(std::time::Duration::ZERO, |a| a.took);
    let provider = stats.provider_wait();
    let rate_limit = stats.rate_limit();
    let gateway = started
        .elapsed()
        .saturating_sub(provider)
        .saturating_sub(rate_limit);
    let value = format!(
        "auth;dur={:.3}, ratelimit;dur={:.3}, gateway;dur={:.3}, provider;dur={:.3}",
        ms(auth),
        ms(rate_limit),
        ms(gateway),
        ms(provider)
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert("server-timing", v);
    }
}

/// What the request log needs to know of an inference that failed.
fn annotate_failure(res: &mut Response<Body>, request: &RequestFacts) {
    res.extensions_mut().insert(InferenceInfo {
        model: request.model.clone(),
        provider: None,
        function: request.function.clone(),
        variant: None,
        api_key_public_id: request.api_key_public_id.clone(),
        stats: Some(request.stats.clone()),
    });
}

/// Gives `request` what the layers in front of the handler learnt about its caller: the API key
/// that authenticated it, its trace, and what it asked to attach to its spans.
fn take_caller_context(
    request: &mut crate::inference::InferenceRequest,
    parts: &http::request::Parts,
) {
    let extensions = &parts.extensions;
    request.api_key_public_id = extensions
        .get::<switchyard_layers::ext::ApiKeyPublicId>()
        .map(|k| k.0.clone());
    request.trace = extensions
        .get::<switchyard_layers::trace_context::TraceContext>()
        .copied();
    request.trace_extras = extensions
        .get::<Arc<switchyard_layers::trace_context::TraceExtras>>()
        .cloned();
}

/// The parts of an inference request the log line keeps, taken before the request is handed
/// to the gateway.
struct RequestFacts {
    function: Option<Arc<str>>,
    model: Option<Arc<str>>,
    api_key_public_id: Option<Arc<str>>,
    stats: Arc<switchyard_layers::ext::InferenceStats>,
}

impl RequestFacts {
    /// The facts of `request`; the API-key check in `parts` (if any) becomes its first phase.
    fn of(request: &crate::inference::InferenceRequest, parts: &http::request::Parts) -> Self {
        if let Some(auth) = parts
            .extensions
            .get::<switchyard_layers::ext::AuthDuration>()
        {
            request.stats.record_phase(switchyard_layers::ext::Phase {
                name: "auth",
                started_at: auth.started_at,
                duration: auth.took,
            });
        }
        Self {
            function: request.function_name.as_deref().map(Arc::from).or_else(|| {
                request
                    .model_name
                    .as_ref()
                    .map(|_| Arc::from(crate::inference::DEFAULT_FUNCTION_NAME))
            }),
            model: request.model_name.as_deref().map(Arc::from),
            api_key_public_id: request.api_key_public_id.clone(),
            stats: request.stats.clone(),
        }
    }
}
