//! The model-call stack (stages 6 to 14 of [`crate::stack`]): built per model at start-up and
//! per variant per request, over the providers' wire formats.

use std::sync::Arc;
use std::time::Duration;

use switchyard_layers::call::Call;
use switchyard_layers::credentials::{CredentialLayer, Credentials};
use switchyard_layers::fallback::Fallback;
use switchyard_layers::rate_limit::{RateLimit, RateLimitLayer};
use switchyard_layers::retry::{Retry, RetryLayer, RetryPolicy};
use switchyard_layers::route::RelayOrSkip;
use switchyard_layers::timeout::{Scope, Timeout, TimeoutLayer, Timeouts};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::error::Error;
use crate::http_client::HttpClient;
use crate::metrics::{AttemptMetrics, AttemptMetricsLayer};
use crate::model_call::{ModelOutput, ModelRequest};
use crate::providers::relay::{RELAY_PROVIDER, RelayClient, RelaySettings};
use crate::providers::{ProviderService, ProviderSpec};

/// What every model stack is built with.
#[derive(Clone, Debug)]
pub struct StackContext {
    /// The shared outbound client.
    pub client: HttpClient,
    /// `gateway.global_outbound_http_timeout_ms`.
    pub global_timeout: Duration,
    /// Relay mode, when configured.
    pub relay: Option<RelaySettings>,
    /// Where provider attempts are counted.
    pub metrics: Arc<crate::metrics::GatewayMetrics>,
    /// `gateway.debug`: log every provider attempt.
    pub debug: bool,
    /// Where provider-call spans go.
    pub spans: Arc<crate::otlp::SpanSink>,
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
