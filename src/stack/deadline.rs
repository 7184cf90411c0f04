//! The global outbound deadline: `gateway.global_outbound_http_timeout_ms` bounds every whole
//! exchange with a provider or the relay (the request, the answer, or a stream up to its first
//! chunk), whatever the model's own timeouts say.
//!
//! It is the innermost stage above every codec (the providers' wire formats, the relay client
//! and the embeddings client), so each of them is bounded the same way and says so in the same
//! words. Past the deadline the exchange is dropped, which closes its connection, and the
//! failure is [`crate::error::FailureKind::NoAnswer`] of the [`Peer`] the exchange was with:
//! the far end may be working on it, and billing it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::error::Error;
use crate::upstream::Peer;

/// Bounds each call of the wrapped codec by the global outbound timeout.
#[derive(Clone, Debug)]
pub struct DeadlineLayer {
    limit: Duration,
    peer: Arc<Peer>,
}

impl DeadlineLayer {
    /// Calls to `peer` end after `limit`.
    pub fn new(limit: Duration, peer: Peer) -> Self {
        Self {
            limit,
            peer: Arc::new(peer),
        }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            limit: self.limit,
            peer: self.peer.clone(),
        }
    }
}

/// The codec `S`, each call bounded by the global outbound timeout.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
    peer: Arc<Peer>,
}

impl<S, R> Service<R> for Deadline<S>
where
    S: Service<R, Error = Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        DeadlineFuture {
            exchange: self.inner.call(request),
            sleep: tokio::time::sleep(self.limit),
            limit: self.limit,
            peer: self.peer.clone(),
        }
    }
}

pin_project! {
    /// One call racing the deadline.
    pub struct DeadlineFuture<F> {
        #[pin]
        exchange: F,
        #[pin]
        sleep: Sleep,
        limit: Duration,
        peer: Arc<Peer>,
    }
}

impl<F, T> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(done) = this.exchange.poll(cx) {
            return Poll::Ready(done);
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(this.peer.missed_deadline(*this.limit))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FailureKind;
    use tower::ServiceExt;

    fn peer() -> Peer {
        Peer::Relay {
            url: "http://relay:3000/inference".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_the_deadline_is_a_no_answer_failure_of_its_peer() {
        let slow = tower::service_fn(|(): ()| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Error>("late")
        });
        let service = DeadlineLayer::new(Duration::from_millis(300), peer()).layer(slow);
        match service.oneshot(()).await {
            Err(Error::Relay {
                kind: Some(FailureKind::NoAnswer),
                message,
                ..
            }) => assert_eq!(
                message,
                "no answer from `http://relay:3000/inference` within \
                 `gateway.global_outbound_http_timeout_ms` (300 ms)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_within_the_deadline_passes_through() {
        let quick = tower::service_fn(|(): ()| async { Ok::<_, Error>("on time") });
        let service = DeadlineLayer::new(Duration::from_millis(300), peer()).layer(quick);
        assert_eq!(service.oneshot(()).await.unwrap(), "on time");
    }
}
