//! Typed request and response extensions: the only way layers and handlers pass data to each
//! other.
//!
//! | extension | on | written by | read by |
//! |---|---|---|---|
//! | [`RequestId`] | HTTP request | `request_log` | handlers |
//! | [`TraceContext`](crate::trace_context::TraceContext) | HTTP request, model call | `request_log` (continues or starts the W3C trace); handlers copy it to model calls | provider and relay clients (`traceparent`), span export |
//! | [`TraceExtras`](crate::trace_context::TraceExtras) | HTTP request, model call | `request_log` (the client's `tensorzero-otlp-traces-extra-*` headers) | span export |
//! | [`ClientAddr`] | HTTP request | the server (per connection) | `auth` (the brute-force shield) |
//! | [`ApiKeyPublicId`] | HTTP request, model call | `auth`; handlers copy it to model calls | handlers (tag), `rate_limit` (scope) |
//! | [`AuthDuration`] | HTTP request | `auth` | handlers (the auth span, `server-timing`) |
//! | [`RouteName`] | HTTP response | the router | `metrics` (the route label) |
//! | [`InferenceInfo`] | HTTP response | inference handlers | `request_log` (the log line) |
//! | [`InferenceStats`] | model call | inference handlers | `rate_limit`, attempt metrics (phases, provider wait, tokens) |
//! | [`DynamicCredentials`] | model call | inference handlers; the relay (from the edge's body) | `credentials`, the relay client |
//! | [`Tags`] | model call | inference handlers; the relay (from the edge's body) | `rate_limit` (scope), the relay client |
//! | [`ProviderKey`] | model call | `credentials` | provider adapters, the relay client |
//! | [`KeyOrigin`](crate::credentials::KeyOrigin) | model call | `credentials` | provider adapters (where a key may be sent) |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::secret::Secret;

/// The id of one inbound request: the client's `x-request-id` when it sent a usable one,
/// otherwise a fresh UUIDv7. It is echoed in the response's `x-request-id` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// Wraps an id that has already been checked to be a safe header value.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an inference handler tells the request log about the call it made.
///
/// Handlers put this in the *response* extensions; the log line is written when the response
/// body ends, so a stream's line carries its full duration.
#[derive(Clone, Debug, Default)]
pub struct InferenceInfo {
    /// The model the request resolved to (configured name or shorthand).
    pub model: Option<Arc<str>>,
    /// The provider that answered (the last one tried when all failed).
    pub provider: Option<Arc<str>>,
    /// The function the request named, if any.
    pub function: Option<Arc<str>>,
    /// The variant that was used, if any.
    pub variant: Option<Arc<str>>,
    /// The public id of the API key that authenticated the request.
    pub api_key_public_id: Option<Arc<str>>,
    /// What the inference's model calls gathered (attempts, waits, tokens, first chunk).
    pub stats: Option<Arc<InferenceStats>>,
}

/// The provider name of calls that went to the relay.
pub const RELAY_PROVIDER: &str = "tensorzero::relay";

/// Figures one inference gathers while it runs: its model calls add their attempts and waits,
/// the handler its tokens and time to first chunk (a stream's tokens arrive at its end). Shared
/// through the model calls' extensions and [`InferenceInfo`]; read by the request log.
#[derive(Debug)]
pub struct InferenceStats {
    attempts: std::sync::atomic::AtomicU32,
    provider_wait_ns: std::sync::atomic::AtomicU64,
    /// `u64::MAX` until known.
    input_tokens: std::sync::atomic::AtomicU64,
    /// `u64::MAX` until known.
    output_tokens: std::sync::atomic::AtomicU64,
    /// The cost in dollars, as `f64` bits (NaN until known).
    cost: std::sync::atomic::AtomicU64,
    /// Microseconds to the first chunk, plus one (0 until known).
    first_chunk_us: std::sync::atomic::AtomicU64,
    rate_limit_ns: std::sync::atomic::AtomicU64,
    phases: std::sync::Mutex<Vec<Phase>>,
    /// Whether a call was hedged (a second provider started while the first had not answered).
    hedged: std::sync::atomic::AtomicBool,
    /// Providers skipped without a request (circuit open, backing off), at most
    /// [`MAX_SKIPPED`].
    skipped: std::sync::Mutex<Vec<Arc<str>>>,
}

/// The most skipped providers an inference remembers for its log line.
pub const MAX_SKIPPED: usize = 16;

impl Default for InferenceStats {
    /// Fresh figures: nothing known yet.
    fn default() -> Self {
        Self {
            attempts: 0.into(),
            provider_wait_ns: 0.into(),
            input_tokens: u64::MAX.into(),
            output_tokens: u64::MAX.into(),
            cost: f64::NAN.to_bits().into(),
            first_chunk_us: 0.into(),
            rate_limit_ns: 0.into(),
            phases: std::sync::Mutex::new(Vec::new()),
            hedged: false.into(),
            skipped: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl InferenceStats {
    /// One provider (or relay) call was made and waited on for `waited`.
    pub fn add_attempt(&self, waited: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.attempts.fetch_add(1, Relaxed);
        self.provider_wait_ns
            .fetch_add(waited.as_nanos() as u64, Relaxed);
    }

    /// Provider and relay calls made.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Time spent waiting on providers or the relay (concurrent calls add up).
    pub fn provider_wait(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.provider_wait_ns
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The answer's token counts, as the provider reported them.
    pub fn set_tokens(&self, input: Option<u32>, output: Option<u32>) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(n) = input {
            self.input_tokens.store(u64::from(n), Relaxed);
        }
        if let Some(n) = output {
            self.output_tokens.store(u64::from(n), Relaxed);
        }
    }

    /// The inference's cost in dollars (all its model calls), when known.
    pub fn set_cost(&self, dollars: Option<f64>) {
        if let Some(d) = dollars {
            self.cost
                .store(d.to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The inference's cost in dollars, when known.
    pub fn cost(&self) -> Option<f64> {
        let d = f64::from_bits(self.cost.load(std::sync::atomic::Ordering::Relaxed));
        (!d.is_nan()).then_some(d)
    }

    /// Input and output tokens, when known.
    pub fn tokens(&self) -> (Option<u64>, Option<u64>) {
        use std::sync::atomic::Ordering::Relaxed;
        let known = |v: u64| (v != u64::MAX).then_some(v);
        (
            known(self.input_tokens.load(Relaxed)),
            known(self.output_tokens.load(Relaxed)),
        )
    }

    /// A call of the inference was hedged.
    pub fn set_hedged(&self) {
        self.hedged
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a call was hedged.
    pub fn hedged(&self) -> bool {
        self.hedged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A provider was skipped without a request.
    pub fn add_skipped(&self, provider: Arc<str>) {
        let mut skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        if skipped.len() < MAX_SKIPPED && !skipped.contains(&provider) {
            skipped.push(provider);
        }
    }

    /// The providers skipped without a request.
    pub fn skipped(&self) -> Vec<Arc<str>> {
        self.skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The rate limiter spent `took` deciding on one of the inference's model calls.
    pub fn add_rate_limit(&self, took: std::time::Duration) {
        self.rate_limit_ns
            .fetch_add(took.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Time the rate limiter spent deciding.
    pub fn rate_limit(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.rate_limit_ns
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Records a step of the request (its span, when traces are exported).
    pub fn record_phase(&self, phase: Phase) {
        if let Ok(mut phases) = self.phases.lock() {
            phases.push(phase);
        }
    }

    /// The steps recorded so far.
    pub fn phases(&self) -> Vec<Phase> {
        self.phases.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The first chunk of a stream was ready after `elapsed`.
    pub fn set_first_chunk(&self, elapsed: std::time::Duration) {
        self.first_chunk_us.store(
            elapsed.as_micros() as u64 + 1,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Time to the first chunk, for streams.
    pub fn first_chunk(&self) -> Option<std::time::Duration> {
        match self
            .first_chunk_us
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            us => Some(std::time::Duration::from_micros(us - 1)),
        }
    }
}

/// The request's `credentials` map (`tensorzero::credentials` on the OpenAI route): fills
/// `dynamic::NAME` key locations, and is forwarded whole to a relay.
#[derive(Clone, Debug, Default)]
pub struct DynamicCredentials(pub Arc<BTreeMap<String, Secret>>);

/// The key the credentials layer resolved for the provider about to be called (`None`: send no
/// key).
#[derive(Clone, Debug)]
pub struct ProviderKey(pub Option<Secret>);

/// The request's user tags (never keys starting with `tensorzero::`).
#[derive(Clone, Debug, Default)]
pub struct Tags(pub Arc<BTreeMap<String, String>>);

/// The address of the client's TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The public id of the API key that authenticated the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyPublicId(pub Arc<str>);

/// The route a response belongs to (`/inference`, ...), set by the router for metrics: a fixed
/// set of names, never the raw path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteName(pub &'static str);

/// When the API-key check of this request started and how long it took (a request extension
/// the auth layer adds, for the handler's `Server-Timing` and the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthDuration {
    /// When the check started.
    pub started_at: std::time::SystemTime,
    /// How long it took.
    pub took: std::time::Duration,
}

/// A step of a request worth its own span (`auth`, `rate_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// What it was.
    pub name: &'static str,
    /// When it started.
    pub started_at: std::time::SystemTime,
    /// How long it took.
    pub duration: std::time::Duration,
}
