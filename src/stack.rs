//! The composition of the inbound HTTP stack: the one place that decides the order of layers.
//!
//! Per request, outermost first:
//!
//! 1. `RequestLogLayer` (layers crate): assigns the request id (writes the `RequestId`
//!    request extension, echoes `x-request-id`), continues or starts the W3C trace (writes
//!    `TraceContext`, which model calls carry on as `traceparent`), and writes one log line when
//!    the response body ends (reads the `InferenceInfo` response extension).
//!    Right inside it, `MetricsLayer` (layers `metrics`) counts requests by route (the
//!    `RouteName` the router sets), method and status, times them until the body ends, and
//!    tracks those in flight.
//!    Right inside those, `RescueLayer` (layers `rescue`): a panic anywhere below becomes a
//!    500 JSON error (logged and counted as one), never a connection closed with no reply.
//! 2. `SetSensitiveRequestHeadersLayer` (tower-http): marks `authorization`,
//!    `proxy-authorization` and `api-key` sensitive, so no debug output can show them.
//! 3. `RequestDecompressionLayer` (tower-http): gzip, br and zstd request bodies (lazily: the
//!    body is not read until a handler reads it).
//!
//! Stages 4 and 5 are built per configuration. A reload (`reload`) swaps them atomically
//! between requests through `Swappable`: a request runs to its end on the configuration it
//! started with, and the next one, even on the same connection, gets the new one.
//!
//! 4. `AuthLayer` (layers `auth`): with `gateway.auth.enabled`, checks the API key before any
//!    body is read; writes `ApiKeyPublicId`, reads `ClientAddr` (set per connection by the
//!    server) for the brute-force shield. Refusals are rendered by `api::auth_rejection`.
//! 5. `Router` (`api`): matches the route under `gateway.base_path`, reads the body under the
//!    size limit, runs the handler, and turns every error into the route's JSON error body
//!    (the one rescue point, `error.rs`). Handlers write `InferenceInfo`.
//!
//! # The model-call stack
//!
//! After the router has resolved the function and variant and built the typed model request
//! (`inference`), each model call goes through, outermost first:
//!
//! 6. `RateLimit` (layers `rate_limit`): one reservation per model inference in every bucket
//!    the matching rules name (reads `Tags`, `ApiKeyPublicId`); settles with the usage the
//!    answer reports. A denial is final: no retry, no fallback.
//! 7. variant `Timeout` (layers `timeout`, scope variant): bounds all attempts together.
//! 8. `Retry` (layers `retry`): the variant's `retries`, backoff with jitter, `Retry-After`
//!    (errors classify themselves, `error.rs`).
//! 9. model `Timeout` (scope model): the model's `timeouts`; it also covers relayed calls.
//! 10. `RelayOrSkip` (layers `route`): to the relay, unless there is none or the model sets
//!     `skip_relay = true`.
//!     - relay: `Credentials` (the relay key; writes `ProviderKey`, reads `DynamicCredentials`)
//!       and `AttemptMetrics` over the `RelayClient` (`providers::relay`; reads `ProviderKey`,
//!       `DynamicCredentials`, `Tags`).
//! 11. `Fallback` (layers `fallback`): the model's `routing`, in order, on any error.
//! 12. provider `Timeout` (scope provider): one attempt.
//! 13. `Credentials` (layers `credentials`): resolves the provider's key; writes `ProviderKey`,
//!     reads `DynamicCredentials`.
//! 14. `AttemptMetrics` (`metrics`: counts and times the wire call, the relay's too, and adds
//!     its wait to the inference's `ProviderWait` for the overhead histogram) over
//!     `ProviderService` (`providers`): the wire format (reads `ProviderKey`), over the pooled
//!     hyper client (`http_client`).
//!
//! Stages 9 to 14 are built once per model at start-up ([`model`]); 6 to 8 per request, from
//! the variant's settings ([`variant`]), which costs no allocation.
//!
//! Embedding calls (`embeddings`) go through the same layers in the same order: 6 (no tags),
//! 9 (the embedding model's `timeout_ms`), 10 (always relayed when a relay is configured), 11,
//! 12 (each provider's `timeout_ms`) and 13, over the OpenAI `/embeddings` client.
//!
//! Before stage 6, `inference` resolves what the edge owns: the function, its variant (sampled
//! by weight, or pinned), the input checked against the function's schemas and rendered through
//! the variant's templates, the tools offered; best-of-n and mixture-of-n variants make one
//! model call per candidate plus the evaluator or fuser, each through stages 6 to 14.

use std::sync::Arc;

use http::header::{AUTHORIZATION, HeaderName, PROXY_AUTHORIZATION};
use switchyard_layers::auth::{Auth, AuthLayer};
use switchyard_layers::call::Call;
use switchyard_layers::credentials::{CredentialLayer, Credentials};
use switchyard_layers::fallback::Fallback;
use switchyard_layers::metrics::{HttpMetrics, Metrics, MetricsLayer};
use switchyard_layers::rate_limit::{RateLimit, RateLimitLayer};
use switchyard_layers::rescue::{Rescue, RescueLayer};
use switchyard_layers::retry::{Retry, RetryLayer, RetryPolicy};
use switchyard_layers::route::RelayOrSkip;
use switchyard_layers::timeout::{Scope, Timeout, TimeoutLayer, Timeouts};
use switchyard_layers::{RequestLog, RequestLogLayer};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder};
use tower_http::decompression::{RequestDecompression, RequestDecompressionLayer};
use tower_http::sensitive_headers::{SetSensitiveRequestHeaders, SetSensitiveRequestHeadersLayer};

use crate::api::{AppState, Router};
use crate::body::Body;
use crate::error::Error;
use crate::inference::models::StackContext;
use crate::inference::types::{ModelOutput, ModelRequest};
use crate::metrics::{AttemptMetrics, AttemptMetricsLayer};
use crate::providers::relay::{RELAY_PROVIDER, RelayClient};
use crate::providers::{ProviderService, ProviderSpec};
use crate::reload::Swappable;

/// The part of the inbound stack that depends on the configuration (stages 4 and 5): what a
/// reload replaces.
pub type ConfiguredService = Auth<Router, Body>;

/// The inbound service type: cheap to clone (the state is behind an `Arc`).
pub type InboundService = RequestLog<
    Metrics<
        Rescue<
            SetSensitiveRequestHeaders<RequestDecompression<Swappable<ConfiguredService>>>,
            Rescued,
        >,
    >,
>;

/// Builds stages 4 and 5 for one configuration.
pub fn configured(state: Arc<AppState>, auth: AuthLayer<Body>) -> ConfiguredService {
    auth.layer(Router::new(state))
}

/// The response body below the rescue: decompression makes its error type a boxed one.
pub type InboundBody = tower_http::body::UnsyncBoxBody<bytes::Bytes, tower_http::BoxError>;

/// The rescue's answer (`error::panic_response`), in the body type of the layers it sits on.
#[derive(Clone, Copy, Debug)]
pub struct Rescued;

impl switchyard_layers::rescue::Respond<InboundBody> for Rescued {
    fn respond(&self, uri: &http::Uri) -> http::Response<InboundBody> {
        use http_body_util::BodyExt;
        crate::error::panic_response(uri)
            .map(|b| InboundBody::new(b.map_err(|never| match never {})))
    }
}

/// Builds the inbound stack: stages 1 to 3 over whichever configuration `current` holds when
/// each request arrives.
pub fn inbound(
    current: Swappable<ConfiguredService>,
    metrics: HttpMetrics,
    spans: Arc<crate::otlp::SpanSink>,
) -> InboundService {
    ServiceBuilder::new()
        .layer(RequestLogLayer::with_sink(spans))
        .layer(MetricsLayer::new(metrics))
        .layer(RescueLayer::new(Rescued))
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            HeaderName::from_static("api-key"),
        ]))
        .layer(RequestDecompressionLayer::new())
        .service(current)
}

/// One model's call stack (stages 9 to 14), type-erased so every model has the same type.
pub type ModelService = BoxCloneSyncService<Call<ModelRequest>, ModelOutput, Error>;

/// One provider attempt (stages 12 to 14).
pub type ProviderStack = Timeout<Credentials<AttemptMetrics<ProviderService>>>;

/// Builds a model's stack: its timeouts, relay-or-skip, and fallback over its providers.
pub fn model(
    name: Arc<str>,
    providers: Vec<Arc<ProviderSpec>>,
    timeouts: Timeouts,
    skip_relay: bool,
    cx: &StackContext,
) -> ModelService {
    let direct = Fallback::new(
        providers
            .into_iter()
            .map(|spec| (spec.name.clone(), provider(spec, cx)))
            .collect(),
    )
    .counting(cx.metrics.fallbacks.with(&[&name]));
    let relay = cx.relay.as_ref().map(|relay| {
        ServiceBuilder::new()
            .layer(CredentialLayer::new(relay.key.clone(), RELAY_PROVIDER))
            .layer(AttemptMetricsLayer::new(
                cx.metrics.clone(),
                name.clone(),
                RELAY_PROVIDER.into(),
                cx.debug,
                cx.spans.clone(),
            ))
            .service(RelayClient::new(
                &relay.gateway_url,
                name.clone(),
                cx.client.clone(),
                cx.global_timeout,
            ))
    });
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(TimeoutLayer::new(Scope::Model, name, timeouts))
            .service(RelayOrSkip::new(relay, skip_relay, direct)),
    )
}

/// Builds one provider attempt: its timeouts, its key, its wire format.
pub fn provider(spec: Arc<ProviderSpec>, cx: &StackContext) -> ProviderStack {
    ServiceBuilder::new()
        .layer(TimeoutLayer::new(
            Scope::Provider,
            spec.name.clone(),
            spec.timeouts,
        ))
        .layer(CredentialLayer::new(spec.credential.clone(), spec.label()))
        .layer(AttemptMetricsLayer::new(
            cx.metrics.clone(),
            spec.model_name.clone(),
            spec.name.clone(),
            cx.debug,
            cx.spans.clone(),
        ))
        .service(ProviderService::new(
            spec,
            cx.client.clone(),
            cx.global_timeout,
        ))
}

/// Wraps a model's stack in the rate limit, and a variant's timeouts and retries (stages 6 to 8).
pub fn variant(
    rate_limit: &RateLimitLayer,
    name: Arc<str>,
    timeouts: Timeouts,
    retries: RetryPolicy,
    retry_counter: Option<Arc<switchyard_layers::metrics::Counter>>,
    model: ModelService,
) -> RateLimit<Timeout<Retry<ModelService>>> {
    let retry = match retry_counter {
        Some(counter) => RetryLayer::new(retries).counting(counter),
        None => RetryLayer::new(retries),
    };
    ServiceBuilder::new()
        .layer(rate_limit.clone())
        .layer(TimeoutLayer::new(Scope::Variant, name, timeouts))
        .layer(retry)
        .service(model)
}
