//! The model-call stack (stages 6 to 15 of [`crate::stack`]): built per model at start-up and
//! per variant per request, over the codecs (the providers' wire formats, the relay client, the
//! embeddings client), chat and embeddings through the same builder ([`calls`], [`attempt`]).

use std::sync::Arc;
use std::time::Duration;

use switchyard_layers::call::{Call, Payload};
use switchyard_layers::credentials::{CredentialLayer, CredentialSource, Credentials};
use switchyard_layers::fallback::{Fallback, Hedging};
use switchyard_layers::guard::{BreakerSettings, Guard, GuardLayer};
use switchyard_layers::rate_limit::{RateLimit, RateLimitLayer};
use switchyard_layers::retry::{Retry, RetryLayer, RetryPolicy};
use switchyard_layers::route::RelayOrSkip;
use switchyard_layers::timeout::{LimitStream, Scope, Timeout, TimeoutLayer, Timeouts};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use super::deadline::{Deadline, DeadlineLayer};
use crate::error::Error;
use crate::metrics::{AttemptMetrics, AttemptMetricsLayer};
use crate::model_call::{ModelOutput, ModelRequest};
use crate::providers::relay::{RELAY_PROVIDER, RelayClient, RelaySettings};
use crate::providers::{ProviderService, ProviderSpec};
use crate::upstream::Peer;
use crate::upstream::Upstream;

/// What every model stack is built with.
#[derive(Clone, Debug)]
pub struct StackContext {
    /// The outbound exchange every codec sends through.
    pub upstream: Upstream,
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
    /// Every provider's shared health (circuit breakers, back-offs).
    pub health: Arc<crate::health::ProviderHealth>,
    /// `[gateway.circuit_breaker]`: the breaker settings providers inherit.
    pub circuit_breaker: crate::config::common::CircuitBreakerConfig,
}

/// One model's call stack (stages 9 to 14), type-erased so every model has the same type.
pub type ModelService = BoxCloneSyncService<Call<ModelRequest>, ModelOutput, Error>;

/// One attempt at one provider or the relay, over its codec `S` (stages 11b to 15; the relay's
/// has no provider timeout of its own: the model's covers it).
pub type Attempt<S> = Guard<Timeout<Credentials<AttemptMetrics<Deadline<S>>>>>;

/// One provider attempt of a chat model.
pub type ProviderStack = Attempt<ProviderService>;

/// What the stack needs to know about one attempt's target, whatever its wire format.
pub struct Target {
    /// The provider's name within the model (the relay's: `tensorzero::relay`).
    pub name: Arc<str>,
    /// The gateway's model name, for metrics.
    pub model: Arc<str>,
    /// Where its key comes from.
    pub credential: CredentialSource,
    /// How credential errors name it.
    pub label: String,
    /// The limits of one attempt.
    pub timeouts: Timeouts,
    /// Who its exchanges are with, for the global outbound deadline's error.
    pub peer: Peer,
    /// Its circuit breaker, if on.
    pub breaker: Option<BreakerSettings>,
}

/// Builds one attempt over `codec`: its guard (circuit breaker, shared back-off), timeouts, key,
/// metrics, and the global outbound deadline (stages 11b to 15).
pub fn attempt<S>(target: Target, codec: S, cx: &StackContext) -> Attempt<S> {
    let guard = cx.health.guard(&target.model, &target.name, target.breaker);
    ServiceBuilder::new()
        .layer(GuardLayer::new(guard, target.credential.clone()))
        .layer(TimeoutLayer::new(
            Scope::Provider,
            target.name.clone(),
            target.timeouts,
        ))
        .layer(CredentialLayer::new(target.credential, target.label))
        .layer(AttemptMetricsLayer::new(
            cx.metrics.clone(),
            target.model,
            target.name,
            cx.debug,
            cx.spans.clone(),
        ))
        .layer(DeadlineLayer::new(cx.global_timeout, target.peer))
        .service(codec)
}

/// The relay's attempt target for model `model`, whose codec talks to `peer`.
pub fn relay_target(relay: &RelaySettings, model: Arc<str>, peer: Peer) -> Target {
    Target {
        name: RELAY_PROVIDER.into(),
        model,
        credential: relay.key.clone(),
        label: RELAY_PROVIDER.into(),
        timeouts: Timeouts::default(),
        peer,
        // The relay answers 429 for its own limits and keeps its own breakers.
        breaker: None,
    }
}

/// Builds a model's calls from its attempts, chat or embeddings alike: the model's timeouts,
/// relay-or-skip, and fallback over its providers in `routing` order (stages 9 to 11).
pub fn calls<R, O, S, T>(
    name: Arc<str>,
    providers: Vec<(Arc<str>, S)>,
    relay: Option<T>,
    timeouts: Timeouts,
    skip_relay: bool,
    hedge: Option<Hedge>,
    cx: &StackContext,
) -> BoxCloneSyncService<Call<R>, O, Error>
where
    R: Payload + Send + Sync + 'static,
    O: LimitStream + Send + 'static,
    S: Service<Call<R>, Response = O, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    T: Service<Call<R>, Response = O, Error = Error> + Clone + Send + Sync + 'static,
    T::Future: Send + 'static,
{
    let hedging = hedge.map(|h| {
        let hedges = &cx.metrics.hedges;
        Hedging {
            after: h.after,
            max: h.max,
            started: Some(hedges.with(&[&name, "started"])),
            won: Some(hedges.with(&[&name, "won"])),
            cancelled: Some(hedges.with(&[&name, "cancelled"])),
        }
    });
    let direct = Fallback::new(providers)
        .counting(cx.metrics.fallbacks.with(&[&name]))
        .hedging(hedging);
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(TimeoutLayer::new(Scope::Model, name, timeouts))
            .service(RelayOrSkip::new(relay, skip_relay, direct)),
    )
}

/// A model's hedging: `models.M.hedge_after_ms` and `max_hedges`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hedge {
    /// How long a call may go without an answer before the next provider starts too.
    pub after: Duration,
    /// The most extra calls.
    pub max: u32,
}

/// Builds a chat model's stack over its providers (stages 9 to 15).
pub fn model(
    name: Arc<str>,
    providers: Vec<Arc<ProviderSpec>>,
    timeouts: Timeouts,
    skip_relay: bool,
    hedge: Option<Hedge>,
    cx: &StackContext,
) -> ModelService {
    let providers = providers
        .into_iter()
        .map(|spec| (spec.name.clone(), provider(spec, cx)))
        .collect();
    let relay = cx.relay.as_ref().map(|relay| {
        let codec = RelayClient::new(&relay.gateway_url, name.clone(), cx.upstream.clone());
        attempt(relay_target(relay, name.clone(), codec.peer()), codec, cx)
    });
    calls(name, providers, relay, timeouts, skip_relay, hedge, cx)
}

/// Builds one provider attempt of a chat model.
pub fn provider(spec: Arc<ProviderSpec>, cx: &StackContext) -> ProviderStack {
    let target = Target {
        name: spec.name.clone(),
        model: spec.model_name.clone(),
        credential: spec.credential.clone(),
        label: spec.label(),
        timeouts: spec.timeouts,
        peer: spec.peer(),
        breaker: spec.breaker,
    };
    let mut codec = ProviderService::new(spec.clone(), cx.upstream.clone());
    if spec.cost.is_some() {
        codec = codec.counting_cost(cx.metrics.cost.with(&[&spec.model_name, &spec.name]));
    }
    codec = codec.counting_tokens(crate::providers::TokenCounters {
        input: cx
            .metrics
            .provider_tokens
            .with(&[&spec.model_name, &spec.name, "input"]),
        output: cx
            .metrics
            .provider_tokens
            .with(&[&spec.model_name, &spec.name, "output"]),
    });
    attempt(target, codec, cx)
}

/// Wraps a model's stack in the rate limit, and a variant's timeouts and retries (stages 6 to 8).
pub fn variant(
    rate_limit: &RateLimitLayer,
    name: Arc<str>,
    timeouts: Timeouts,
    retries: RetryPolicy,
    retry_counter: Option<Arc<switchyard_layers::metrics::Counter>>,
    retry_budget: Option<Arc<switchyard_layers::retry::RetryBudget>>,
    model: ModelService,
) -> RateLimit<Timeout<Retry<ModelService>>> {
    let retry = match retry_counter {
        Some(counter) => RetryLayer::new(retries).counting(counter),
        None => RetryLayer::new(retries),
    }
    .with_budget(retry_budget);
    ServiceBuilder::new()
        .layer(rate_limit.clone())
        .layer(TimeoutLayer::new(Scope::Variant, name, timeouts))
        .layer(retry)
        .service(model)
}
