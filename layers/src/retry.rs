//! Retries of a whole model call, with exponential backoff and jitter, honouring a provider's
//! `Retry-After`.
//!
//! # Layer placement
//!
//! Above relay-or-skip and fallback (a retry runs every provider again, or the relay call),
//! below the variant timeout (which bounds all attempts together) and below rate limiting
//! (one reservation per model inference, not per attempt). A stream is retried only until its
//! first chunk: once the inner service has answered, the answer is final.
//!
//! # Policy
//!
//! Attempt `k` (from 0) waits `min(max_delay, base * 2^k)`, jittered to between half and all
//! of it, so waits never exceed `max_delay_s` (the TensorZero Gateway waits at least 1 s even
//! when `max_delay_s` is smaller). When the error says when to come back (`Retry-After`), that
//! wait is used if it fits within `max_delay`; if it does not, retrying earlier would only be
//! refused again, so the error is returned. Errors that retrying cannot fix are not retried.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use switchyard_layers::retry::{RetryLayer, RetryPolicy};
//!
//! let layer = RetryLayer::new(RetryPolicy { num_retries: 2, max_delay: Duration::from_secs(10), ..RetryPolicy::default() });
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use rand::Rng;
use tower::{Layer, Service, ServiceExt};

use crate::call::Call;
use crate::metrics::Counter;

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub num_retries: u32,
    /// The longest wait between attempts.
    pub max_delay: Duration,
    /// The wait before the first retry, before jitter.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            num_retries: 0,
            max_delay: Duration::from_secs(10),
            base_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 is the first retry), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Whether an error is worth another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retrying cannot help (a bad request, a missing key, a rate limit of ours).
    Never,
    /// Try again; `after` is when the provider asked us to come back, if it said.
    Retry {
        /// The provider's `Retry-After`.
        after: Option<Duration>,
    },
}

/// Errors that know whether retrying can help.
pub trait Classify {
    /// The decision for this error.
    fn retry_decision(&self) -> RetryDecision;
}

/// Every attempt failed (at least one retry happened); the errors in order.
#[derive(Debug)]
pub struct AllRetriesFailed<E> {
    /// One error per attempt.
    pub errors: Vec<E>,
}

/// How many retries the whole gateway may add to its traffic: at most `ratio` of the requests
/// of the last `window`, plus `min_per_second` over it. Shared by every call, so a storm of
/// failures is not multiplied by `num_retries`: once the budget is spent, retries are skipped
/// (and counted) until requests earn it back.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor: f64,
    slot: Duration,
    slots: std::sync::Mutex<BudgetSlots>,
    skipped: Option<Arc<Counter>>,
}

/// Requests and retries per slice of the window (a ring of [`BUDGET_SLOTS`]).
#[derive(Debug)]
struct BudgetSlots {
    /// Which slice each slot counts (slices since `origin`).
    slice: [u64; BUDGET_SLOTS],
    requests: [u64; BUDGET_SLOTS],
    retries: [u64; BUDGET_SLOTS],
    origin: tokio::time::Instant,
}

const BUDGET_SLOTS: usize = 10;

impl RetryBudget {
    /// A budget of `ratio` retries per request over `window`, plus `min_per_second`; refused
    /// retries are counted in `skipped`.
    pub fn new(
        ratio: f64,
        min_per_second: f64,
        window: Duration,
        skipped: Option<Arc<Counter>>,
    ) -> Self {
        let window = window.max(Duration::from_millis(BUDGET_SLOTS as u64));
        Self {
            ratio: ratio.max(0.0),
            floor: min_per_second.max(0.0) * window.as_secs_f64(),
            slot: window / BUDGET_SLOTS as u32,
            slots: std::sync::Mutex::new(BudgetSlots {
                slice: [u64::MAX; BUDGET_SLOTS],
                requests: [0; BUDGET_SLOTS],
                retries: [0; BUDGET_SLOTS],
                origin: tokio::time::Instant::now(),
            }),
            skipped,
        }
    }

    /// The current slot, cleared if it last counted an older slice.
    fn current(&self, s: &mut BudgetSlots) -> usize {
        let slice = (s.origin.elapsed().as_nanos() / self.slot.as_nanos().max(1)) as u64;
        let i = (slice % BUDGET_SLOTS as u64) as usize;
        if s.slice[i] != slice {
            s.slice[i] = slice;
            s.requests[i] = 0;
            s.retries[i] = 0;
        }
        i
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetSlots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request was made: it earns `ratio` retries.
    pub fn deposit(&self) {
        let mut s = self.lock();
        let i = self.current(&mut s);
        s.requests[i] += 1;
    }

    /// Takes one retry from the budget; `false` (and counted) when it is spent.
    pub fn withdraw(&self) -> bool {
        let mut s = self.lock();
        let i = self.current(&mut s);
        let newest = s.slice[i];
        let live = |k: usize| newest.saturating_sub(s.slice[k]) < BUDGET_SLOTS as u64;
        let (mut requests, mut retries) = (0u64, 0u64);
        for k in 0..BUDGET_SLOTS {
            if s.slice[k] != u64::MAX && live(k) {
                requests += s.requests[k];
                retries += s.retries[k];
            }
        }
        if (retries as f64) < self.ratio * requests as f64 + self.floor {
            s.retries[i] += 1;
            true
        } else {
            drop(s);
            if let Some(c) = &self.skipped {
                c.inc();
            }
            false
        }
    }
}

/// Builds [`Retry`] services.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    policy: RetryPolicy,
    retries: Option<Arc<Counter>>,
    budget: Option<Arc<RetryBudget>>,
}

impl RetryLayer {
    /// A layer with this policy.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            retries: None,
            budget: None,
        }
    }

    /// Spends retries from `budget` (shared by every call), skipping them once it is spent.
    pub fn with_budget(mut self, budget: Option<Arc<RetryBudget>>) -> Self {
        self.budget = budget;
        self
    }

    /// Counts every retry (each attempt after the first) in `retries`.
    pub fn counting(mut self, retries: Arc<Counter>) -> Self {
        self.retries = Some(retries);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            policy: self.policy,
            retries: self.retries.clone(),
            budget: self.budget.clone(),
        }
    }
}

/// Retries failed calls according to a [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    retries: Option<Arc<Counter>>,
    budget: Option<Arc<RetryBudget>>,
}

type BoxFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, T> Service<Call<T>> for Retry<S>
where
    S: Service<Call<T>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Classify + From<AllRetriesFailed<S::Error>> + Send,
    T: Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        if self.policy.num_retries == 0 {
            return Either::Left(self.inner.call(call));
        }
        // Keep the service that was driven to readiness for the first attempt.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let mut later = self.inner.clone();
        let policy = self.policy;
        let retries = self.retries.clone();
        let budget = self.budget.clone();
        Either::Right(Box::pin(async move {
            let mut errors = Vec::new();
            let mut attempt = 0;
            loop {
                let result = if attempt == 0 {
                    ready.call(call.clone()).await
                } else {
                    match later.ready().await {
                        Ok(svc) => svc.call(call.clone()).await,
                        Err(e) => Err(e),
                    }
                };
                let error = match result {
                    Ok(response) => return Ok(response),
                    Err(e) => e,
                };
                let wait = if attempt >= policy.num_retries {
                    None
                } else {
                    match error.retry_decision() {
                        RetryDecision::Never => None,
                        RetryDecision::Retry { after: Some(after) } if after > policy.max_delay => {
                            tracing::debug!(
                                ?after,
                                "the provider asked for a longer wait than max_delay_s allows"
                            );
                            None
                        }
                        RetryDecision::Retry { after: Some(after) } => Some(after),
                        RetryDecision::Retry { after: None } => {
                            Some(jitter(policy.backoff(attempt)))
                        }
                    }
                };
                errors.push(error);
                let Some(wait) = wait else { break };
                if budget.as_ref().is_some_and(|b| !b.withdraw()) {
                    tracing::debug!("retry budget spent; not retrying");
                    break;
                }
                attempt += 1;
                if let Some(retries) = &retries {
                    retries.inc();
                }
                tracing::debug!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "retrying model call"
                );
                tokio::time::sleep(wait).await;
            }
            Err(match errors.len() {
                1 => errors.pop().expect("one error"),
                _ => AllRetriesFailed { errors }.into(),
            })
        }))
    }
}

/// Between half and all of `d`: spreads retries of many clients without exceeding `d`.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::Instant;

    #[derive(Debug, PartialEq)]
    enum E {
        Flaky,
        BadRequest,
        Busy(Duration),
        All(usize),
    }

    impl Classify for E {
        fn retry_decision(&self) -> RetryDecision {
            match self {
                E::Flaky => RetryDecision::Retry { after: None },
                E::Busy(d) => RetryDecision::Retry { after: Some(*d) },
                E::BadRequest | E::All(_) => RetryDecision::Never,
            }
        }
    }

    impl From<AllRetriesFailed<E>> for E {
        fn from(a: AllRetriesFailed<E>) -> Self {
            E::All(a.errors.len())
        }
    }

    /// Fails with the given errors, then succeeds; records when each attempt started.
    fn scripted(
        errors: Vec<E>,
        starts: Arc<std::sync::Mutex<Vec<Instant>>>,
    ) -> impl Service<Call<()>, Response = u32, Error = E, Future = impl Send> + Clone + Send + 'static
    {
        let errors = Arc::new(std::sync::Mutex::new(errors.into_iter()));
        let n = Arc::new(AtomicU32::new(0));
        tower::service_fn(move |_c: Call<()>| {
            starts.lock().unwrap().push(Instant::now());
            let next = errors.lock().unwrap().next();
            let attempt = n.fetch_add(1, Ordering::SeqCst);
            async move {
                match next {
                    Some(e) => Err(e),
                    None => Ok(attempt),
                }
            }
        })
    }

    fn policy(n: u32, max_s: u64) -> RetryPolicy {
        RetryPolicy {
            num_retries: n,
            max_delay: Duration::from_secs(max_s),
            base_delay: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_skips_retries_until_requests_earn_it_back() {
        let skipped = Arc::new(Counter::default());
        let budget = Arc::new(RetryBudget::new(
            0.2,
            1.0,
            Duration::from_secs(10),
            Some(skipped.clone()),
        ));
        // 100 calls that always fail, each allowed 3 retries: the budget allows 0.2 x 100 + 1/s
        // x 10 s = 30 retries in all, whatever num_retries says.
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let layer = RetryLayer::new(policy(3, 1)).with_budget(Some(budget.clone()));
        let always_failing = {
            let calls = calls.clone();
            tower::service_fn(move |_c: Call<()>| {
                calls.lock().unwrap().push(Instant::now());
                async { Err::<u32, E>(E::Flaky) }
            })
        };
        let svc = layer.layer(always_failing);
        let runs = (0..100).map(|_| svc.clone().oneshot(Call::new(())));
        let results = futures_util::future::join_all(runs).await;
        assert!(results.iter().all(Result::is_err));
        let attempts = calls.lock().unwrap().len();
        assert_eq!(
            attempts,
            100 + 30,
            "every call once, plus the budgeted retries"
        );
        // Every call ends on a refused retry (the first 30 after one retry each): 100 refusals.
        assert_eq!(skipped.get(), 100, "each refused retry is counted");
        // Ten seconds later the window has moved on: a retry is allowed again.
        tokio::time::advance(Duration::from_secs(11)).await;
        budget.deposit();
        assert!(budget.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_growing_capped_jittered_waits() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc = RetryLayer::new(policy(3, 3))
            .layer(scripted(vec![E::Flaky, E::Flaky, E::Flaky], starts.clone()));
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap(), 3);
        let s = starts.lock().unwrap().clone();
        let waits: Vec<Duration> = s.windows(2).map(|w| w[1] - w[0]).collect();
        // Unjittered waits 1 s, 2 s, 3 s (capped); jitter keeps each within [half, all].
        for (wait, full) in waits.iter().zip([1.0, 2.0, 3.0]) {
            let secs = wait.as_secs_f64();
            assert!(
                secs >= full / 2.0 && secs <= full,
                "waited {secs} s, expected within [{}, {full}]",
                full / 2.0
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_it_fits() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc = RetryLayer::new(policy(1, 5)).layer(scripted(
            vec![E::Busy(Duration::from_secs(4))],
            starts.clone(),
        ));
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap(), 1);
        let s = starts.lock().unwrap().clone();
        assert_eq!(s[1] - s[0], Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_longer_than_max_delay_gives_up() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc = RetryLayer::new(policy(3, 5)).layer(scripted(
            vec![E::Busy(Duration::from_secs(30))],
            starts.clone(),
        ));
        assert_eq!(
            svc.oneshot(Call::new(())).await.unwrap_err(),
            E::Busy(Duration::from_secs(30))
        );
        assert_eq!(starts.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_retrying_cannot_fix_are_not_retried() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc =
            RetryLayer::new(policy(3, 5)).layer(scripted(vec![E::BadRequest], starts.clone()));
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap_err(), E::BadRequest);
        assert_eq!(starts.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_attempt_fails_all_errors_are_kept() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc = RetryLayer::new(policy(2, 1))
            .layer(scripted(vec![E::Flaky, E::Flaky, E::Flaky], starts.clone()));
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap_err(), E::All(3));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retries_is_a_pass_through() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let svc = RetryLayer::new(policy(0, 1)).layer(scripted(vec![E::Flaky], starts.clone()));
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap_err(), E::Flaky);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy(10, 10);
        let waits: Vec<u64> = (0..6).map(|k| p.backoff(k).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
        let small = RetryPolicy {
            max_delay: Duration::from_millis(200),
            ..policy(2, 0)
        };
        assert_eq!(
            small.backoff(0),
            Duration::from_millis(200),
            "never longer than max_delay"
        );
    }
}
