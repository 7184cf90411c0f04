//! Fallback over a model's providers: try each in `routing` order until one answers.
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

/// Tries named services in order until one succeeds.
#[derive(Debug)]
pub struct Fallback<S> {
    targets: Arc<[(Arc<str>, S)]>,
    fallbacks: Option<Arc<Counter>>,
}

impl<S> Clone for Fallback<S> {
    fn clone(&self) -> Self {
        Self {
            targets: self.targets.clone(),
            fallbacks: self.fallbacks.clone(),
        }
    }
}

impl<S> Fallback<S> {
    /// The targets, in the order they are tried.
    pub fn new(targets: Vec<(Arc<str>, S)>) -> Self {
        Self {
            targets: targets.into(),
            fallbacks: None,
        }
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
