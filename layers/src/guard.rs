//! Provider health shared by every request: a circuit breaker per model provider, and the
//! back-off a provider asked for with `429` + `Retry-After`, per provider and credential.
//!
//! # Layer placement
//!
//! Right below fallback, around each provider attempt (its timeout included, so a timeout
//! counts as the provider's failure): a skipped provider costs nothing, no request and no
//! timeout, and fallback moves on at once. It resolves the attempt's credential itself (from
//! the same source the credentials layer reads) to key the back-off by it.
//!
//! # Circuit breaker
//!
//! Closed, it counts outcomes: after `consecutive_failures` failures in a row, or a failure
//! rate over `failure_rate` among at least `min_requests` calls in the last `window`, it opens
//! for `cooldown`. Open, every call is skipped. When the cooldown has passed, one call probes
//! (half-open; the others are still skipped): success closes the circuit, failure opens it
//! again for twice the cooldown, up to `max_cooldown`. Only the provider's own failures count
//! (connection errors, 5xx, timeouts: [`Health::Failed`]); a 4xx caused by the client's input
//! never does, and a 429 is the back-off's.
//!
//! # Shared back-off
//!
//! A 429 with a `Retry-After` makes every later call with the same provider and credential skip
//! it until that time (at most [`MAX_BACKOFF`]): a dynamic key's 429 does not stop calls made
//! with the configured key.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use crate::call::Call;
use crate::credentials::CredentialSource;
use crate::ext::DynamicCredentials;
use crate::metrics::{Counter, Family, Gauge};

/// What an attempt's outcome says about the provider's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// It answered.
    Healthy,
    /// It failed on its own account: unreachable, 5xx, too slow.
    Failed,
    /// It asked to be left alone for this long (429 with `Retry-After`).
    BackOff(Duration),
    /// Nothing about the provider (the request's own fault, a 429 without a time, ...).
    Neutral,
}

/// Errors that say what they mean for the provider's health.
pub trait JudgeHealth {
    /// The verdict.
    fn health(&self) -> Health;
}

/// Why a provider was skipped without being called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The model.
    pub model: Arc<str>,
    /// The provider.
    pub provider: Arc<str>,
    /// Why.
    pub reason: SkipReason,
    /// When it will be called again.
    pub retry_after: Duration,
}

/// Why a provider was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its circuit is open (or half-open with a probe already in flight).
    CircuitOpen {
        /// The failure that opened it.
        last_error: Arc<str>,
    },
    /// It answered 429 with `Retry-After` to this credential.
    BackingOff,
}

impl SkipReason {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::CircuitOpen { .. } => "circuit_open",
            SkipReason::BackingOff => "backing_off",
        }
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.retry_after.as_secs_f64().ceil().max(1.0);
        match &self.reason {
            SkipReason::CircuitOpen { last_error } => write!(
                f,
                "skipped: its circuit is open after repeated failures (last: {last_error}); it is tried again in {secs} s"
            ),
            SkipReason::BackingOff => write!(
                f,
                "skipped: it answered 429 and asked to be left alone; it is tried again in {secs} s"
            ),
        }
    }
}

impl std::error::Error for Skipped {}

/// When a circuit opens and how it recovers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Failures in a row that open it.
    pub consecutive_failures: u32,
    /// The failure rate (0 to 1) in the window that opens it.
    pub failure_rate: f64,
    /// The window the rate is measured over.
    pub window: Duration,
    /// The fewest calls in the window for the rate to count.
    pub min_requests: u32,
    /// How long it stays open the first time.
    pub cooldown: Duration,
    /// The longest it stays open (the cooldown doubles after each failed probe).
    pub max_cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(60),
            min_requests: 20,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

/// The most outcomes kept for the failure rate (older ones fall out of the window early under
/// heavy traffic, which only makes the rate more recent).
const MAX_OUTCOMES: usize = 4096;
/// The most credentials a provider remembers a back-off for.
const MAX_BACKOFFS: usize = 4096;
/// The longest back-off a provider's `Retry-After` can impose on later calls: a hostile or
/// mistaken value (`Retry-After: 1e300`) cannot take a provider out for a day.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A circuit's state, as `/status` and the metrics show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are skipped until the cooldown ends.
    Open,
    /// One call is probing.
    HalfOpen,
}

impl CircuitState {
    /// The name in `/status` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
struct Breaker {
    state: CircuitState,
    /// When an open circuit may probe.
    until: Instant,
    cooldown: Duration,
    consecutive: u32,
    outcomes: VecDeque<(Instant, bool)>,
    probing: bool,
    last_error: Arc<str>,
}

/// What a provider's guard reports, for `/status`.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardReport {
    /// The model.
    pub model: Arc<str>,
    /// The provider.
    pub provider: Arc<str>,
    /// The circuit (closed when the breaker is off).
    pub state: CircuitState,
    /// Until when it is open (from now), if it is.
    pub open_for: Option<Duration>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// The last failure seen.
    pub last_error: Option<Arc<str>>,
    /// Credentials it is backing off for, and the longest wait left.
    pub backing_off: Option<(usize, Duration)>,
}

/// Where a guard reports.
#[derive(Clone, Debug)]
pub struct GuardMetrics {
    /// Circuit state by model and provider (0 closed, 1 open, 2 half-open).
    pub state: Arc<Family<Gauge>>,
    /// Transitions by model, provider and the state entered.
    pub transitions: Arc<Family<Counter>>,
    /// Calls skipped by model, provider and reason.
    pub skips: Arc<Family<Counter>>,
}

/// One model provider's shared health: its circuit and its back-offs.
#[derive(Debug)]
pub struct ProviderGuard {
    model: Arc<str>,
    provider: Arc<str>,
    /// `None`: the breaker is off (back-offs still apply).
    settings: Option<BreakerSettings>,
    breaker: Mutex<Breaker>,
    backoffs: Mutex<HashMap<u64, Instant>>,
    /// Whether `backoffs` may hold an entry: while it does not (nearly always), a call neither
    /// fingerprints its credential nor takes the lock.
    any_backoff: std::sync::atomic::AtomicBool,
    metrics: Option<GuardMetrics>,
}

/// What the breaker let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

impl ProviderGuard {
    /// The guard of `provider` of `model`, with a breaker when `settings` is given.
    pub fn new(
        model: Arc<str>,
        provider: Arc<str>,
        settings: Option<BreakerSettings>,
        metrics: Option<GuardMetrics>,
    ) -> Arc<Self> {
        let cooldown = settings.map_or(Duration::ZERO, |s| s.cooldown);
        let guard = Arc::new(Self {
            model,
            provider,
            settings,
            breaker: Mutex::new(Breaker {
                state: CircuitState::Closed,
                until: Instant::now(),
                cooldown,
                consecutive: 0,
                outcomes: VecDeque::new(),
                probing: false,
                last_error: Arc::from(""),
            }),
            backoffs: Mutex::new(HashMap::new()),
            any_backoff: false.into(),
            metrics,
        });
        guard.set_gauge(CircuitState::Closed);
        guard
    }

    /// The same guard with new settings (a configuration reload keeps the state).
    pub fn reconfigure(&self, settings: Option<BreakerSettings>) -> Arc<Self> {
        let breaker = self.lock_breaker();
        Arc::new(Self {
            model: self.model.clone(),
            provider: self.provider.clone(),
            settings,
            breaker: Mutex::new(Breaker {
                state: breaker.state,
                until: breaker.until,
                cooldown: settings.map_or(breaker.cooldown, |s| breaker.cooldown.max(s.cooldown)),
                consecutive: breaker.consecutive,
                outcomes: breaker.outcomes.clone(),
                probing: false,
                last_error: breaker.last_error.clone(),
            }),
            backoffs: Mutex::new(self.lock_backoffs().clone()),
            any_backoff: self
                .any_backoff
                .load(std::sync::atomic::Ordering::Relaxed)
                .into(),
            metrics: self.metrics.clone(),
        })
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_backoffs(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.backoffs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_gauge(&self, state: CircuitState) {
        if let Some(m) = &self.metrics {
            m.state
                .with(&[&self.model, &self.provider])
                .set(state.gauge());
        }
    }

    fn enter(&self, b: &mut Breaker, state: CircuitState) {
        if b.state == state {
            return;
        }
        b.state = state;
        self.set_gauge(state);
        if let Some(m) = &self.metrics {
            m.transitions
                .with(&[&self.model, &self.provider, state.as_str()])
                .inc();
        }
        tracing::info!(model = %self.model, provider = %self.provider, state = state.as_str(), "provider circuit");
    }

    fn skipped(&self, reason: SkipReason, retry_after: Duration) -> Skipped {
        if let Some(m) = &self.metrics {
            m.skips
                .with(&[&self.model, &self.provider, reason.as_str()])
                .inc();
        }
        Skipped {
            model: self.model.clone(),
            provider: self.provider.clone(),
            reason,
            retry_after,
        }
    }

    /// Whether a call with this credential may go, and as what.
    fn admit(&self, credential: impl FnOnce() -> u64, now: Instant) -> Result<Admission, Skipped> {
        if self.any_backoff.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(until) = self.lock_backoffs().get(&credential()).copied()
            && until > now
        {
            return Err(self.skipped(SkipReason::BackingOff, until - now));
        }
        if self.settings.is_none() {
            return Ok(Admission::Normal);
        }
        let mut b = self.lock_breaker();
        match b.state {
            CircuitState::Closed => Ok(Admission::Normal),
            CircuitState::Open if now < b.until => {
                let (wait, last) = (b.until - now, b.last_error.clone());
                drop(b);
                Err(self.skipped(SkipReason::CircuitOpen { last_error: last }, wait))
            }
            CircuitState::Open | CircuitState::HalfOpen if !b.probing => {
                b.probing = true;
                self.enter(&mut b, CircuitState::HalfOpen);
                Ok(Admission::Probe)
            }
            CircuitState::Open | CircuitState::HalfOpen => {
                // A probe is out: the others wait for its verdict.
                let last = b.last_error.clone();
                drop(b);
                Err(self.skipped(
                    SkipReason::CircuitOpen { last_error: last },
                    Duration::from_secs(1),
                ))
            }
        }
    }

    /// Records an attempt's outcome.
    fn record(
        &self,
        admission: Admission,
        credential: impl FnOnce() -> u64,
        health: Health,
        error: Option<String>,
        now: Instant,
    ) {
        if let Health::BackOff(wait) = health {
            let credential = credential();
            let mut backoffs = self.lock_backoffs();
            self.any_backoff
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if backoffs.len() >= MAX_BACKOFFS {
                backoffs.retain(|_, until| *until > now);
            }
            if backoffs.len() < MAX_BACKOFFS {
                backoffs.insert(credential, now + wait.min(MAX_BACKOFF));
            }
        }
        let Some(settings) = self.settings else {
            return;
        };
        let mut b = self.lock_breaker();
        if admission == Admission::Probe {
            b.probing = false;
        }
        let failed = match health {
            Health::Failed => true,
            Health::Healthy => false,
            // Neither the provider's success nor its failure: a probe that ends so leaves the
            // circuit half-open for the next call to probe.
            Health::Neutral | Health::BackOff(_) => return,
        };
        if let Some(e) = error.filter(|_| failed) {
            b.last_error = Arc::from(e.chars().take(300).collect::<String>());
        }
        if admission == Admission::Probe || b.state != CircuitState::Closed {
            if failed {
                b.cooldown = (b.cooldown * 2).min(settings.max_cooldown);
                b.until = now + b.cooldown;
                self.enter(&mut b, CircuitState::Open);
            } else {
                b.cooldown = settings.cooldown;
                b.consecutive = 0;
                b.outcomes.clear();
                self.enter(&mut b, CircuitState::Closed);
            }
            return;
        }
        b.consecutive = if failed { b.consecutive + 1 } else { 0 };
        if b.outcomes.len() >= MAX_OUTCOMES {
            b.outcomes.pop_front();
        }
        b.outcomes.push_back((now, failed));
        while b
            .outcomes
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > settings.window)
        {
            b.outcomes.pop_front();
        }
        let total = b.outcomes.len() as u32;
        let failures = b.outcomes.iter().filter(|(_, f)| *f).count() as f64;
        let rate_tripped = total >= settings.min_requests.max(1)
            && failures / f64::from(total) > settings.failure_rate;
        if failed && (b.consecutive >= settings.consecutive_failures.max(1) || rate_tripped) {
            b.until = now + b.cooldown;
            self.enter(&mut b, CircuitState::Open);
        }
    }

    /// A probe that ended without a verdict (the call was dropped): the next call probes.
    fn abandon(&self, admission: Admission) {
        if admission == Admission::Probe {
            self.lock_breaker().probing = false;
        }
    }

    /// The state, for `/status`.
    pub fn report(&self) -> GuardReport {
        let now = Instant::now();
        let b = self.lock_breaker();
        let backoffs = self.lock_backoffs();
        let waiting: Vec<Duration> = backoffs
            .values()
            .filter(|u| **u > now)
            .map(|u| *u - now)
            .collect();
        GuardReport {
            model: self.model.clone(),
            provider: self.provider.clone(),
            state: b.state,
            open_for: (b.state == CircuitState::Open && b.until > now).then(|| b.until - now),
            consecutive_failures: b.consecutive,
            last_error: (!b.last_error.is_empty()).then(|| b.last_error.clone()),
            backing_off: waiting
                .iter()
                .max()
                .map(|longest| (waiting.len(), *longest)),
        }
    }
}

/// The fingerprint (never the key itself) of the credential a call would use: calls whose
/// key cannot be had (the credentials layer refuses them) and keyless calls share one.
fn fingerprint(source: &CredentialSource, dynamic: Option<&DynamicCredentials>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(Some(secret)) = source.resolve(dynamic) {
        secret.expose().hash(&mut h);
    }
    h.finish()
}

/// Builds [`Guard`] services.
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Arc<ProviderGuard>,
    credential: CredentialSource,
}

impl GuardLayer {
    /// Guards calls with `guard`; `credential` is where the attempt's key comes from.
    pub fn new(guard: Arc<ProviderGuard>, credential: CredentialSource) -> Self {
        Self { guard, credential }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            guard: self.guard.clone(),
            credential: self.credential.clone(),
        }
    }
}

/// Skips a provider whose circuit is open or that asked to be left alone; records outcomes.
#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    guard: Arc<ProviderGuard>,
    credential: CredentialSource,
}

/// Releases a probe whose call was dropped before it ended.
struct ProbeRelease {
    guard: Arc<ProviderGuard>,
    admission: Option<Admission>,
}

impl Drop for ProbeRelease {
    fn drop(&mut self) {
        if let Some(a) = self.admission.take() {
            self.guard.abandon(a);
        }
    }
}

impl<S, T> Service<Call<T>> for Guard<S>
where
    S: Service<Call<T>> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: JudgeHealth + From<Skipped> + std::fmt::Display + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        // The credential is fingerprinted only when a back-off needs it (rare).
        let source = self.credential.clone();
        let dynamic = call.extensions.get::<DynamicCredentials>().cloned();
        let guard = self.guard.clone();
        let admission = match guard.admit(|| fingerprint(&source, dynamic.as_ref()), Instant::now())
        {
            Ok(a) => a,
            Err(skipped) => {
                if let Some(stats) = call.extensions.get::<Arc<crate::ext::InferenceStats>>() {
                    stats.add_skipped(skipped.provider.clone());
                }
                return Box::pin(std::future::ready(Err(skipped.into())));
            }
        };
        let future = self.inner.call(call);
        Box::pin(async move {
            let mut release = ProbeRelease {
                guard: guard.clone(),
                admission: Some(admission),
            };
            let result = future.await;
            release.admission = None;
            let (health, error) = match &result {
                Ok(_) => (Health::Healthy, None),
                Err(e) => (e.health(), Some(e.to_string())),
            };
            guard.record(
                admission,
                || fingerprint(&source, dynamic.as_ref()),
                health,
                error,
                Instant::now(),
            );
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum E {
        Down,
        TooMany(Duration),
        BadInput,
        Skipped(Skipped),
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_through_the_layer_holds_later_calls_back() {
        let guard = ProviderGuard::new("m".into(), "p".into(), None, None);
        let answers = Arc::new(Mutex::new(VecDeque::from([Err(E::TooMany(
            Duration::from_secs(5),
        ))])));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut svc = guarded(guard, answers, calls.clone());
        assert!(matches!(call(&mut svc).await, Err(E::TooMany(_))));
        assert!(matches!(call(&mut svc).await, Err(E::Skipped(_))));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(call(&mut svc).await.is_ok());
    }

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl JudgeHealth for E {
        fn health(&self) -> Health {
            match self {
                E::Down => Health::Failed,
                E::TooMany(d) => Health::BackOff(*d),
                E::BadInput | E::Skipped(_) => Health::Neutral,
            }
        }
    }

    impl From<Skipped> for E {
        fn from(s: Skipped) -> Self {
            E::Skipped(s)
        }
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(60),
            min_requests: 10,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(30),
        }
    }

    /// A guarded service whose answers the test scripts: `Ok(())` or one of `E`.
    fn guarded(
        guard: Arc<ProviderGuard>,
        answers: Arc<Mutex<VecDeque<Result<(), E>>>>,
        calls: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Guard<impl Service<Call<()>, Response = (), Error = E, Future: Send> + Clone> {
        GuardLayer::new(guard, CredentialSource::None).layer(tower::service_fn(
            move |_: Call<()>| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
                async move { answer }
            },
        ))
    }

    async fn call<S: Service<Call<()>, Response = (), Error = E>>(svc: &mut S) -> Result<(), E> {
        svc.call(Call::new(())).await
    }

    #[tokio::test(start_paused = true)]
    async fn failures_open_the_circuit_and_a_probe_closes_it() {
        let guard = ProviderGuard::new("m".into(), "p".into(), Some(settings()), None);
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut svc = guarded(guard.clone(), answers.clone(), calls.clone());
        answers.lock().unwrap().extend([
            Err(E::Down),
            Err(E::BadInput),
            Err(E::Down),
            Err(E::Down),
        ]);
        // A 4xx in the middle neither counts nor resets the run: three provider failures open it.
        for _ in 0..4 {
            let _ = call(&mut svc).await;
        }
        assert_eq!(guard.report().state, CircuitState::Open);
        let seen = calls.load(std::sync::atomic::Ordering::SeqCst);
        // Open: skipped without a call, saying when it is tried again.
        for _ in 0..50 {
            match call(&mut svc).await {
                Err(E::Skipped(s)) => assert_eq!(s.retry_after, Duration::from_secs(10)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), seen);
        // After the cooldown one probe goes; it fails: open again for twice as long.
        tokio::time::advance(Duration::from_secs(10)).await;
        answers.lock().unwrap().push_back(Err(E::Down));
        assert!(matches!(call(&mut svc).await, Err(E::Down)));
        let report = guard.report();
        assert_eq!(report.state, CircuitState::Open);
        assert_eq!(report.open_for, Some(Duration::from_secs(20)));
        // The cooldown doubles up to its cap.
        tokio::time::advance(Duration::from_secs(20)).await;
        answers.lock().unwrap().push_back(Err(E::Down));
        let _ = call(&mut svc).await;
        assert_eq!(guard.report().open_for, Some(Duration::from_secs(30)));
        // A successful probe closes it, and calls flow again.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(call(&mut svc).await.is_ok());
        assert_eq!(guard.report().state, CircuitState::Closed);
        assert!(call(&mut svc).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_and_a_dropped_probe_frees_the_next() {
        let guard = ProviderGuard::new("m".into(), "p".into(), Some(settings()), None);
        for _ in 0..3 {
            guard.record(
                Admission::Normal,
                || 0,
                Health::Failed,
                Some("boom".into()),
                Instant::now(),
            );
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = guard.admit(|| 0, Instant::now()).unwrap();
        assert_eq!(probe, Admission::Probe);
        assert!(
            guard.admit(|| 0, Instant::now()).is_err(),
            "one probe at a time"
        );
        guard.abandon(probe);
        assert_eq!(guard.admit(|| 0, Instant::now()), Ok(Admission::Probe));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_rate_opens_it_without_a_run() {
        let guard = ProviderGuard::new("m".into(), "p".into(), Some(settings()), None);
        let now = Instant::now();
        // Alternating: never three in a row, but 6 of 11 failed.
        for i in 0..11 {
            let health = if i % 2 == 0 {
                Health::Failed
            } else {
                Health::Healthy
            };
            guard.record(Admission::Normal, || 0, health, Some("x".into()), now);
        }
        assert_eq!(guard.report().state, CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_backs_off_that_credential_only() {
        let guard = ProviderGuard::new("m".into(), "p".into(), None, None);
        guard.record(
            Admission::Normal,
            || 7,
            Health::BackOff(Duration::from_secs(5)),
            None,
            Instant::now(),
        );
        let skipped = guard.admit(|| 7, Instant::now()).unwrap_err();
        assert_eq!(skipped.reason, SkipReason::BackingOff);
        assert_eq!(skipped.retry_after, Duration::from_secs(5));
        assert!(
            guard.admit(|| 8, Instant::now()).is_ok(),
            "another key is not held back"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(guard.admit(|| 7, Instant::now()).is_ok());
        // With the breaker off, failures never open anything.
        for _ in 0..100 {
            guard.record(
                Admission::Normal,
                || 7,
                Health::Failed,
                None,
                Instant::now(),
            );
        }
        assert!(guard.admit(|| 7, Instant::now()).is_ok());
    }
}
