//! The gateway's Prometheus metrics, served at `GET /metrics`.
//!
//! The TensorZero Gateway's names come first, with its labels, so existing dashboards keep
//! working (reference §8.2); switchyard's own follow under `switchyard_`. One registry per
//! gateway instance, kept across configuration reloads (it lives in `Resources`).
//!
//! Labels are bounded: routes, configured function/variant/model/provider names and status
//! codes; never request ids, tags or other client-chosen text.

use std::sync::Arc;
use std::time::Duration;

use switchyard_layers::metrics::{
    Counter, Family, Gauge, Histogram, HttpMetrics, LATENCY_BUCKETS, MoneyCounter, Registry,
    status_label,
};

/// The TensorZero Gateway's default overhead buckets, in seconds.
pub const DEFAULT_OVERHEAD_BUCKETS: &[f64] = &[0.001, 0.01, 0.1];

/// Every metric the gateway records.
#[derive(Debug)]
pub struct GatewayMetrics {
    registry: Registry,
    /// Inbound HTTP requests (the inbound `MetricsLayer`).
    pub http: HttpMetrics,
    /// `tensorzero_requests_total{endpoint, function_name, model_name}`.
    pub requests: Arc<Family<Counter>>,
    /// `tensorzero_inferences_total{endpoint, function_name, model_name}`.
    pub inferences: Arc<Family<Counter>>,
    /// `tensorzero_input_tokens_total`.
    pub input_tokens: Arc<Family<Counter>>,
    /// `tensorzero_output_tokens_total`.
    pub output_tokens: Arc<Family<Counter>>,
    /// What provider calls cost, by model and provider (from their `cost` prices).
    pub cost: Arc<Family<MoneyCounter>>,
    /// Tokens providers reported, by model, provider and kind (input, output).
    pub provider_tokens: Arc<Family<Counter>>,
    /// Input files written to object storage, by outcome (ok, error).
    pub object_storage_writes: Arc<Family<Counter>>,
    /// `tensorzero_inference_latency_overhead_seconds{function_name, variant_name}`.
    pub overhead: Arc<Family<Histogram>>,
    /// Provider attempts by model, provider and status.
    pub provider_requests: Arc<Family<Counter>>,
    /// Provider attempt durations (to the first chunk for streams) by model, provider, stream.
    pub provider_duration: Arc<Family<Histogram>>,
    /// Retries of model calls, by model.
    pub retries: Arc<Family<Counter>>,
    /// Moves to a model's next provider, by model.
    pub fallbacks: Arc<Family<Counter>>,
    /// Rate-limit reservations granted.
    pub rate_limit_allowed: Arc<Family<Counter>>,
    /// Rate-limit refusals, by rule.
    pub rate_limit_denied: Arc<Family<Counter>>,
    /// Time the rate-limit store took to decide.
    pub rate_limit_store_latency: Arc<Family<Histogram>>,
    /// Decisions the rate-limit store could not make.
    pub rate_limit_store_errors: Arc<Family<Counter>>,
    /// Usage settlements and refunds the rate-limit store applied.
    pub rate_limit_settlements: Arc<Family<Counter>>,
    /// Authentication refusals, by reason.
    pub auth_failures: Arc<Family<Counter>>,
    /// Streamed answers still being sent.
    pub streams_in_flight: Arc<Family<Gauge>>,
    /// Time to the first chunk of streamed inferences, by function and variant.
    pub time_to_first_chunk: Arc<Family<Histogram>>,
    /// OTLP exports by outcome (`ok`, `error`) and spans dropped (`dropped`).
    pub otlp_exports: Arc<Family<Counter>>,
    /// Circuit state by model and provider (0 closed, 1 open, 2 half-open).
    pub circuit_state: Arc<Family<Gauge>>,
    /// Circuit transitions by model, provider and the state entered.
    pub circuit_transitions: Arc<Family<Counter>>,
    /// Provider calls skipped (circuit open, backing off) by model, provider and reason.
    pub provider_skips: Arc<Family<Counter>>,
    /// Hedged calls by model and outcome (`started`, `won`, `cancelled`).
    pub hedges: Arc<Family<Counter>>,
    /// Retries not made because the retry budget was spent.
    pub retries_skipped: Arc<Family<Counter>>,
    /// Rows the observability store wrote, by table.
    pub store_rows_written: Arc<Family<Counter>>,
    /// Rows the observability store did not write, by reason (`queue_full`, `write_failed`).
    pub store_rows_dropped: Arc<Family<Counter>>,
    /// Failed write attempts to the observability store (each retried batch counts once).
    pub store_write_errors: Arc<Family<Counter>>,
    /// Rows waiting in the observability store's queue.
    pub store_queue_depth: Arc<Family<Gauge>>,
    /// Where an inference's time goes, by layer: `auth`, `rate_limit`, `gateway` (everything
    /// else switchyard does), `provider` (waiting on providers or the relay).
    pub layer_duration: Arc<Family<Histogram>>,
}

impl GatewayMetrics {
    /// The metrics, with `overhead_buckets` for the overhead histogram (the config's
    /// `gateway.metrics.tensorzero_inference_latency_overhead_seconds_buckets`, or the default).
    pub fn new(overhead_buckets: Option<&[f64]>) -> Self {
        let registry = Registry::new();
        let http = HttpMetrics::new(&registry);
        Self {
            requests: registry.counter(
                "tensorzero_requests_total",
                "Requests handled by the gateway (inference and embeddings).",
                &["endpoint", "function_name", "model_name"],
            ),
            inferences: registry.counter(
                "tensorzero_inferences_total",
                "Inferences performed by the gateway.",
                &["endpoint", "function_name", "model_name"],
            ),
            cost: registry.money_counter(
                "switchyard_cost_dollars_total",
                "What provider calls cost, in dollars, from the providers' `cost` prices (calls whose cost is unknown add nothing).",
                &["model_name", "provider_name"],
            ),
            provider_tokens: registry.counter(
                "switchyard_tokens_total",
                "Tokens providers reported for their calls (every call, also candidates and fallbacks), by model, provider and kind (input, output).",
                &["model_name", "provider_name", "kind"],
            ),
            object_storage_writes: registry.counter(
                "switchyard_object_storage_writes_total",
                "Input files written to `[object_storage]` when inferences are stored, by outcome (ok, error; a file already there counts as ok).",
                &["outcome"],
            ),
            input_tokens: registry.counter(
                "tensorzero_input_tokens_total",
                "Input tokens consumed by inferences, as providers reported them.",
                &[],
            ),
            output_tokens: registry.counter(
                "tensorzero_output_tokens_total",
                "Output tokens produced by inferences, as providers reported them.",
                &[],
            ),
            overhead: registry.histogram(
                "tensorzero_inference_latency_overhead_seconds",
                "Time the gateway added to an inference: its duration (to the first chunk for streams) minus the time spent waiting on providers or the relay.",
                &["function_name", "variant_name"],
                overhead_buckets.unwrap_or(DEFAULT_OVERHEAD_BUCKETS),
            ),
            provider_requests: registry.counter(
                "switchyard_provider_requests_total",
                "Calls to model providers (and to the relay, provider `tensorzero::relay`) by model, provider and status.",
                &["model", "provider", "status"],
            ),
            provider_duration: registry.histogram(
                "switchyard_provider_request_duration_seconds",
                "Duration of provider calls: the whole answer, or the time to the first chunk when streaming.",
                &["model", "provider", "stream"],
                LATENCY_BUCKETS,
            ),
            retries: registry.counter(
                "switchyard_model_retries_total",
                "Retries of model calls (attempts after the first, from the variant's `retries`), by model.",
                &["model"],
            ),
            fallbacks: registry.counter(
                "switchyard_model_fallbacks_total",
                "Moves to a model's next provider in `routing` after one failed, by model.",
                &["model"],
            ),
            rate_limit_allowed: registry.counter(
                "switchyard_rate_limit_allowed_total",
                "Model calls a rate-limit rule applied to and that were allowed.",
                &[],
            ),
            rate_limit_denied: registry.counter(
                "switchyard_rate_limit_denied_total",
                "Model calls refused by a rate limit, by the rule that refused.",
                &["rule"],
            ),
            rate_limit_store_latency: registry.histogram(
                "switchyard_rate_limit_store_duration_seconds",
                "Time the rate-limit store (in-process or Valkey/Redis) took to decide.",
                &[],
                LATENCY_BUCKETS,
            ),
            rate_limit_store_errors: registry.counter(
                "switchyard_rate_limit_store_errors_total",
                "Rate-limit decisions the store could not make (the call was refused with a 503).",
                &[],
            ),
            rate_limit_settlements: registry.counter(
                "switchyard_rate_limit_settlements_total",
                "Token settlements (actual usage against the estimate) and refunds the rate-limit store applied.",
                &[],
            ),
            auth_failures: registry.counter(
                "switchyard_auth_failures_total",
                "Requests refused by authentication, by reason.",
                &["reason"],
            ),
            time_to_first_chunk: registry.histogram(
                "switchyard_time_to_first_chunk_seconds",
                "Streamed inferences: time from the start of the inference to its first chunk, by function and variant.",
                &["function_name", "variant_name"],
                LATENCY_BUCKETS,
            ),
            otlp_exports: registry.counter(
                "switchyard_otlp_exports_total",
                "OTLP trace exports by outcome (ok, error), and spans dropped because the export queue was full (dropped).",
                &["outcome"],
            ),
            circuit_state: registry.gauge(
                "switchyard_circuit_state",
                "Each model provider's circuit: 0 closed, 1 open, 2 half-open (one call probing).",
                &["model_name", "provider_name"],
            ),
            circuit_transitions: registry.counter(
                "switchyard_circuit_transitions_total",
                "Circuit transitions, by model, provider and the state entered.",
                &["model_name", "provider_name", "state"],
            ),
            provider_skips: registry.counter(
                "switchyard_provider_skips_total",
                "Provider calls skipped without a request: its circuit is open (`circuit_open`) or it asked to be left alone with 429 + Retry-After (`backing_off`).",
                &["model_name", "provider_name", "reason"],
            ),
            hedges: registry.counter(
                "switchyard_hedges_total",
                "Hedged provider calls, by model: `started` (a second provider started while the first had not answered), `won` (the hedge answered first), `cancelled` (a losing call dropped).",
                &["model_name", "outcome"],
            ),
            retries_skipped: registry.counter(
                "switchyard_retries_skipped_total",
                "Retries not made because `gateway.retry_budget` was spent.",
                &["reason"],
            ),
            layer_duration: registry.histogram(
                "switchyard_layer_duration_seconds",
                "Where requests spend their time, by layer: auth (the API-key check), rate_limit (the limiter's decisions), gateway (the rest of switchyard's work, to the first chunk for streams), provider (waiting on providers or the relay).",
                &["layer"],
                LATENCY_BUCKETS,
            ),
            store_rows_written: registry.counter(
                "switchyard_observability_rows_written_total",
                "Rows the observability store wrote to Postgres, by table (`chat_inferences`, `model_inferences`, `boolean_metric_feedback`, ...).",
                &["table"],
            ),
            store_rows_dropped: registry.counter(
                "switchyard_observability_rows_dropped_total",
                "Rows the observability store dropped: `queue_full` (the write queue was at `write_queue_capacity`) or `write_failed` (Postgres refused or was unreachable after retries).",
                &["reason"],
            ),
            store_write_errors: registry.counter(
                "switchyard_observability_write_errors_total",
                "Failed attempts to write a batch of rows to the observability store.",
                &[],
            ),
            store_queue_depth: registry.gauge(
                "switchyard_observability_queue_depth",
                "Rows waiting in the observability store's write queue.",
                &[],
            ),
            streams_in_flight: registry.gauge(
                "switchyard_streams_in_flight",
                "Streamed answers (SSE) still being sent to clients.",
                &[],
            ),
            http,
            registry,
        }
    }

    /// The rate limiter's metrics.
    pub fn rate_limit(&self) -> switchyard_layers::rate_limit::RateLimitMetrics {
        switchyard_layers::rate_limit::RateLimitMetrics {
            allowed: self.rate_limit_allowed.with(&[]),
            denied: self.rate_limit_denied.clone(),
            store_latency: self.rate_limit_store_latency.with(&[]),
            store_errors: self.rate_limit_store_errors.with(&[]),
            settlements: self.rate_limit_settlements.with(&[]),
        }
    }

    /// What provider guards report to.
    pub fn guard(&self) -> switchyard_layers::guard::GuardMetrics {
        switchyard_layers::guard::GuardMetrics {
            state: self.circuit_state.clone(),
            transitions: self.circuit_transitions.clone(),
            skips: self.provider_skips.clone(),
        }
    }

    /// Records one finished provider (or relay) attempt.
    pub fn provider_attempt(
        &self,
        model: &str,
        provider: &str,
        stream: bool,
        status: u16,
        elapsed: Duration,
    ) {
        self.provider_requests
            .with(&[model, provider, status_label(status)])
            .inc();
        self.provider_duration
            .with(&[model, provider, if stream { "true" } else { "false" }])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the tokens of one answer.
    pub fn tokens(&self, input: Option<u32>, output: Option<u32>) {
        if let Some(n) = input {
            self.input_tokens.with(&[]).add(u64::from(n));
        }
        if let Some(n) = output {
            self.output_tokens.with(&[]).add(u64::from(n));
        }
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new(None)
    }
}

/// Builds [`AttemptMetrics`] services.
#[derive(Clone, Debug)]
pub struct AttemptMetricsLayer {
    metrics: Arc<GatewayMetrics>,
    model: Arc<str>,
    provider: Arc<str>,
    log_each: bool,
    spans: Arc<crate::otlp::SpanSink>,
}

impl AttemptMetricsLayer {
    /// Records the attempts of `provider` (or the relay) for `model` into `metrics`; with
    /// `log_each` (`gateway.debug`), also logs each attempt.
    pub fn new(
        metrics: Arc<GatewayMetrics>,
        model: Arc<str>,
        provider: Arc<str>,
        log_each: bool,
        spans: Arc<crate::otlp::SpanSink>,
    ) -> Self {
        Self {
            metrics,
            model,
            provider,
            log_each,
            spans,
        }
    }
}

impl<S> tower::Layer<S> for AttemptMetricsLayer {
    type Service = AttemptMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// Times each provider (or relay) attempt: counts it by status, observes its duration (to the
/// first chunk for a stream), and adds it to the inference's `InferenceStats`. It sits
/// right around the wire call, inside the credentials layer, so only calls that were made count.
#[derive(Clone, Debug)]
pub struct AttemptMetrics<S> {
    inner: S,
    layer: AttemptMetricsLayer,
}

impl<S, P> tower::Service<switchyard_layers::call::Call<P>> for AttemptMetrics<S>
where
    S: tower::Service<switchyard_layers::call::Call<P>, Error = crate::error::Error>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    P: switchyard_layers::call::Payload,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: switchyard_layers::call::Call<P>) -> Self::Future {
        let stats = call
            .extensions
            .get::<Arc<switchyard_layers::ext::InferenceStats>>()
            .cloned();
        let stream = call.payload.is_streaming();
        // The call is a span of its own, the parent of whatever the provider or relay does.
        let mut call = call;
        let trace = call
            .extensions
            .get::<switchyard_layers::trace_context::TraceContext>()
            .map(|t| t.child());
        if let Some(t) = trace {
            call.extensions.insert(t);
        }
        let extras = call
            .extensions
            .get::<Arc<switchyard_layers::trace_context::TraceExtras>>()
            .cloned();
        let layer = self.layer.clone();
        let future = self.inner.call(call);
        Box::pin(async move {
            let started_at = std::time::SystemTime::now();
            let started = tokio::time::Instant::now();
            let result = future.await;
            let elapsed = started.elapsed();
            if let Some(stats) = stats {
                stats.add_attempt(elapsed);
            }
            let status = match &result {
                Ok(_) => 200,
                Err(e) => e.status().as_u16(),
            };
            layer
                .metrics
                .provider_attempt(&layer.model, &layer.provider, stream, status, elapsed);
            if let Some(t) = trace {
                layer.spans.attempt(crate::otlp::CallSpan {
                    trace: t,
                    extras: extras.as_ref(),
                    model: &layer.model,
                    provider: &layer.provider,
                    stream,
                    start: started_at,
                    duration: elapsed,
                    error: result.as_ref().err().map(|e| e as &dyn std::fmt::Display),
                });
            }
            if layer.log_each {
                // `gateway.debug`: one line per attempt (no prompt, no key: the error's own
                // message is what the provider said).
                tracing::info!(
                    target: "switchyard::attempt",
                    model = %layer.model,
                    provider = %layer.provider,
                    stream,
                    status,
                    duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
                    error = result.as_ref().err().map(|e| e.to_string()),
                    trace_id = trace.map(|t| t.trace_id_hex()),
                    "provider attempt"
                );
            }
            result
        })
    }
}
