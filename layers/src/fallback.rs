//! Fallback over a model's providers: try each in `routing` order until one answers, and
//! optionally hedge: when the current provider has not answered after a while, start the next
//! one too, and take whichever answers first.
//!
//! # Hedging
//!
//! With [`Hedging`], if no answer (for a stream: no first chunk) has come `after` the latest
//! start, the next provider in `routing` starts too, at most `max` extra times. The first
//! answer wins; the other calls are dropped, which closes their connections, so the providers
//! stop generating. A failure still moves on to the next provider at once, as without hedging.
//! Once an answer is returned nothing more starts, so no hedge begins after the client got its
//! first byte.
//!
//! # Layer placement
//!
//! Below relay-or-skip (a relayed call has no providers of ours) and above each provider's
//! timeout and credentials, so every attempt has its own key and its own limits. Any error
//! moves on to the next provider (a provider's 4xx may be specific to it, e.g. its key); the
//! final error keeps every provider's failure, in order. Dropping the future (the client went
//! away) stops the loop: no further provider is tried.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::fallback::{AllFailed, Fallback};
//! use switchyard_layers::call::Call;
//!
//! #[derive(Debug)]
//! struct Failed(Vec<String>);
//! impl From<AllFailed<Failed>> for Failed {
//!     fn from(all: AllFailed<Failed>) -> Self {
//!         Failed(all.errors.into_iter().map(|(name, _)| name.to_string()).collect())
//!     }
//! }
//! let first = tower::service_fn(|_: Call<()>| async { Err::<&str, _>(Failed(vec![])) });
//! let svc = Fallback::new(vec![("first".into(), first)]);
//! # let _ = svc;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Service, ServiceExt};

use crate::call::Call;
use crate::metrics::Counter;

/// Every target failed; their errors, in the order they were tried.
#[derive(Debug)]
pub struct AllFailed<E> {
    /// `(target name, its error)`.
    pub errors: Vec<(Arc<str>, E)>,
}

/// When to hedge, and where hedges are counted.
#[derive(Clone, Debug)]
pub struct Hedging {
    /// How long the latest call may go without an answer before the next one starts.
    pub after: std::time::Duration,
    /// The most extra calls.
    pub max: u32,
    /// Hedges started.
    pub started: Option<Arc<Counter>>,
    /// Answers that came from a hedge rather than the first call.
    pub won: Option<Arc<Counter>>,
    /// Calls dropped because another answered first.
    pub cancelled: Option<Arc<Counter>>,
}

/// Tries named services in order until one succeeds.
#[derive(Debug)]
pub struct Fallback<S> {
    targets: Arc<[(Arc<str>, S)]>,
    fallbacks: Option<Arc<Counter>>,
    hedging: Option<Arc<Hedging>>,
}

impl<S> Clone for Fallback<S> {
    fn clone(&self) -> Self {
        Self {
            targets: self.targets.clone(),
            fallbacks: self.fallbacks.clone(),
            hedging: self.hedging.clone(),
        }
    }
}

impl<S> Fallback<S> {
    /// The targets, in the order they are tried.
    pub fn new(targets: Vec<(Arc<str>, S)>) -> Self {
        Self {
            targets: targets.into(),
            fallbacks: None,
            hedging: None,
        }
    }

    /// Hedges as `hedging` says.
    pub fn hedging(mut self, hedging: Option<Hedging>) -> Self {
        self.hedging = hedging.map(Arc::new);
        self
    }

    /// Counts every move to the next target in `fallbacks`.
    pub fn counting(mut self, fallbacks: Arc<Counter>) -> Self {
        self.fallbacks = Some(fallbacks);
        self
    }

    /// The targets' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|(n, _)| n.as_ref())
    }
}

impl<S, T> Service<Call<T>> for Fallback<S>
where
    S: Service<Call<T>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: From<AllFailed<S::Error>> + Send,
    T: Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each target is driven to readiness when (and if) its turn comes.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let targets = self.targets.clone();
        let fallbacks = self.fallbacks.clone();
        if let Some(hedging) = self.hedging.clone() {
            return Box::pin(hedged(targets, fallbacks, hedging, call));
        }
        Box::pin(async move {
            let mut errors = Vec::new();
            for (name, service) in targets.iter() {
                if !errors.is_empty() {
                    if let Some(fallbacks) = &fallbacks {
                        fallbacks.inc();
                    }
                }
                let attempt = match service.clone().ready_oneshot().await {
                    Ok(mut ready) => ready.call(call.clone()).await,
                    Err(e) => Err(e),
                };
                match attempt {
                    Ok(response) => return Ok(response),
                    Err(e) => errors.push((name.clone(), e)),
                }
            }
            Err(AllFailed { errors }.into())
        })
    }
}

/// Runs `call` over `targets` with hedging.
async fn hedged<S, T>(
    targets: Arc<[(Arc<str>, S)]>,
    fallbacks: Option<Arc<Counter>>,
    hedging: Arc<Hedging>,
    call: Call<T>,
) -> Result<S::Response, S::Error>
where
    S: Service<Call<T>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: From<AllFailed<S::Error>> + Send,
    T: Send + Sync + 'static,
{
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let stats = call
        .extensions
        .get::<Arc<crate::ext::InferenceStats>>()
        .cloned();
    let count = |c: &Option<Arc<Counter>>, n: u64| {
        if let Some(c) = c {
            c.add(n);
        }
    };
    let start = |i: usize| {
        let (_, service) = &targets[i];
        let service = service.clone();
        let call = call.clone();
        async move {
            let result = match service.ready_oneshot().await {
                Ok(mut ready) => ready.call(call).await,
                Err(e) => Err(e),
            };
            (i, result)
        }
    };
    let mut running = FuturesUnordered::new();
    let mut errors = Vec::new();
    let mut next = 1;
    let mut hedges = 0;
    running.push(start(0));
    loop {
        let may_hedge = hedges < hedging.max && next < targets.len() && !running.is_empty();
        let timer = async {
            if may_hedge {
                tokio::time::sleep(hedging.after).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            finished = running.next() => match finished {
                Some((i, Ok(response))) => {
                    count(&hedging.cancelled, running.len() as u64);
                    if i != 0 && hedges > 0 {
                        count(&hedging.won, 1);
                    }
                    return Ok(response);
                }
                Some((i, Err(e))) => {
                    errors.push((targets[i].0.clone(), e));
                    if next < targets.len() {
                        count(&fallbacks, 1);
                        running.push(start(next));
                        next += 1;
                    } else if running.is_empty() {
                        return Err(AllFailed { errors }.into());
                    }
                }
                None => return Err(AllFailed { errors }.into()),
            },
            () = timer => {
                hedges += 1;
                count(&hedging.started, 1);
                if let Some(stats) = &stats {
                    stats.set_hedged();
                }
                running.push(start(next));
                next += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, PartialEq)]
    enum E {
        Provider(&'static str),
        All(Vec<(String, E)>),
    }

    impl From<AllFailed<E>> for E {
        fn from(a: AllFailed<E>) -> Self {
            E::All(
                a.errors
                    .into_iter()
                    .map(|(n, e)| (n.to_string(), e))
                    .collect(),
            )
        }
    }

    type Svc = tower::util::BoxCloneSyncService<Call<()>, &'static str, E>;

    fn answering(answer: Result<&'static str, &'static str>, calls: Arc<AtomicUsize>) -> Svc {
        Svc::new(tower::service_fn(move |_c: Call<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { answer.map_err(E::Provider) }
        }))
    }

    /// Answers after `delay`; counts its calls and the ones that ran to their answer (the
    /// others were dropped).
    fn delayed(
        answer: Result<&'static str, &'static str>,
        delay: std::time::Duration,
        calls: Arc<AtomicUsize>,
        answered: Arc<AtomicUsize>,
    ) -> Svc {
        Svc::new(tower::service_fn(move |_c: Call<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let answered = answered.clone();
            async move {
                tokio::time::sleep(delay).await;
                answered.fetch_add(1, Ordering::SeqCst);
                answer.map_err(E::Provider)
            }
        }))
    }

    fn counters() -> (Hedging, [Arc<Counter>; 3]) {
        let c = [
            Arc::new(Counter::default()),
            Arc::new(Counter::default()),
            Arc::new(Counter::default()),
        ];
        (
            Hedging {
                after: std::time::Duration::from_millis(200),
                max: 1,
                started: Some(c[0].clone()),
                won: Some(c[1].clone()),
                cancelled: Some(c[2].clone()),
            },
            c,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_first_provider_is_hedged_and_the_loser_answered() {
        use std::time::Duration;
        let (calls, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (hedging, [started, won, cancelled]) = counters();
        let svc = Fallback::new(vec![
            (
                "slow".into(),
                delayed(
                    Ok("slow"),
                    Duration::from_secs(2),
                    calls.clone(),
                    answered.clone(),
                ),
            ),
            (
                "fast".into(),
                delayed(
                    Ok("fast"),
                    Duration::from_millis(50),
                    calls.clone(),
                    answered.clone(),
                ),
            ),
            (
                "third".into(),
                delayed(Ok("third"), Duration::ZERO, calls.clone(), answered.clone()),
            ),
        ])
        .hedging(Some(hedging));
        let began = tokio::time::Instant::now();
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap(), "fast");
        assert_eq!(began.elapsed(), Duration::from_millis(250));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "max one hedge: the third never starts"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            answered.load(Ordering::SeqCst),
            1,
            "only the fast call answered: the slow one was dropped"
        );
        assert_eq!((started.get(), won.get(), cancelled.get()), (1, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_failure_falls_back_at_once_and_an_answer_before_the_timer_is_not_hedged() {
        use std::time::Duration;
        let (calls, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (hedging, [started, ..]) = counters();
        let svc = Fallback::new(vec![
            (
                "down".into(),
                delayed(
                    Err("503"),
                    Duration::from_millis(10),
                    calls.clone(),
                    answered.clone(),
                ),
            ),
            (
                "ok".into(),
                delayed(
                    Ok("ok"),
                    Duration::from_millis(100),
                    calls.clone(),
                    answered.clone(),
                ),
            ),
        ])
        .hedging(Some(hedging.clone()));
        let began = tokio::time::Instant::now();
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap(), "ok");
        assert_eq!(began.elapsed(), Duration::from_millis(110));
        assert_eq!(started.get(), 0);
        // Every call failing: every error, and nothing hangs.
        let svc = Fallback::new(vec![
            (
                "a".into(),
                delayed(
                    Err("a"),
                    Duration::from_secs(1),
                    calls.clone(),
                    answered.clone(),
                ),
            ),
            (
                "b".into(),
                delayed(
                    Err("b"),
                    Duration::from_millis(10),
                    calls.clone(),
                    answered.clone(),
                ),
            ),
        ])
        .hedging(Some(hedging));
        match svc.oneshot(Call::new(())).await.unwrap_err() {
            E::All(errors) => assert_eq!(errors.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_first_success_wins_and_later_targets_are_not_called() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = Fallback::new(vec![
            ("a".into(), answering(Err("500 from a"), calls.clone())),
            ("b".into(), answering(Ok("from b"), calls.clone())),
            ("c".into(), answering(Ok("from c"), calls.clone())),
        ]);
        assert_eq!(svc.oneshot(Call::new(())).await.unwrap(), "from b");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn every_failure_is_kept_in_order() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = Fallback::new(vec![
            ("a".into(), answering(Err("timeout"), calls.clone())),
            ("b".into(), answering(Err("401"), calls.clone())),
        ]);
        let err = svc.oneshot(Call::new(())).await.unwrap_err();
        assert_eq!(
            err,
            E::All(vec![
                ("a".into(), E::Provider("timeout")),
                ("b".into(), E::Provider("401"))
            ])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_future_stops_the_loop() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let hanging = Svc::new(tower::service_fn(move |_c: Call<()>| {
            c2.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                Err(E::Provider("never"))
            }
        }));
        let svc = Fallback::new(vec![
            ("slow".into(), hanging),
            ("next".into(), answering(Ok("x"), calls.clone())),
        ]);
        let fut = svc.oneshot(Call::new(()));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), fut).await;
        tokio::time::sleep(std::time::Duration::from_secs(7200)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the next provider was called after cancellation"
        );
    }
}
