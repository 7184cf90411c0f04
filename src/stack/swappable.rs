//! A service that a reload replaces atomically between requests.

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use tower::Service;
use tower::util::{Oneshot, ServiceExt};

/// A service that can be replaced while it serves: each call runs on whichever service is
/// current when the call is made (one atomic load and a clone, no lock).
pub struct Swappable<S> {
    current: Arc<ArcSwap<S>>,
}

impl<S> Clone for Swappable<S> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
        }
    }
}

impl<S> Swappable<S> {
    /// Starts with `service`.
    pub fn new(service: S) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(service)),
        }
    }

    /// Makes `service` the one new calls use.
    pub fn replace(&self, service: S) {
        self.current.store(Arc::new(service));
    }
}

impl<S, R> Service<R> for Swappable<S>
where
    S: Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Oneshot<S, R>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the current service's, checked in the call (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        S::clone(&self.current.load()).oneshot(req)
    }
}
