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

/// Builds [`Retry`] services.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    policy: RetryPolicy,
    retries: Option<Arc<Counter>>,
}

impl RetryLayer {
    /// A layer with this policy.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            retries: None,
        }
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
        }
    }
}

/// Retries failed calls according to a [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    retries: Option<Arc<Counter>>,
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
        if self.policy.num_retries == 0 {
            return Either::Left(self.inner.call(call));
        }
        // Keep the service that was driven to readiness for the first attempt.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let mut later = self.inner.clone();
        let policy = self.policy;
        let retries = self.retries.clone();
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
