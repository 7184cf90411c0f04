//! A response body that notices its end: the request log writes its line and the metrics layer
//! records its request when the last byte has gone, the body failed, or the body was dropped
//! unfinished (the client went away). Both wrap the body with [`WatchedBody`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every frame was sent.
    Complete,
    /// The body produced an error.
    Error,
    /// It was dropped before its end (the client went away, or the connection broke).
    Dropped,
}

/// What to do, once, when a body ends.
pub trait OnBodyEnd {
    /// Called exactly once.
    fn on_end(self, how: BodyEnd);
}

/// Calls [`OnBodyEnd::on_end`] once: when told how the body ended, or with
/// [`BodyEnd::Dropped`] when dropped first.
pub struct EndGuard<G: OnBodyEnd>(Option<G>);

impl<G: OnBodyEnd> EndGuard<G> {
    /// A guard for `g`.
    pub fn new(g: G) -> Self {
        Self(Some(g))
    }

    /// Ends now (later calls, and the drop, do nothing).
    pub fn finish(&mut self, how: BodyEnd) {
        if let Some(g) = self.0.take() {
            g.on_end(how);
        }
    }

    /// The value, without ending (the caller takes over).
    pub fn take(&mut self) -> Option<G> {
        self.0.take()
    }
}

impl<G: OnBodyEnd> Drop for EndGuard<G> {
    fn drop(&mut self) {
        self.finish(BodyEnd::Dropped);
    }
}

pin_project! {
    /// `B`, passed through, telling `G` when it ends.
    pub struct WatchedBody<B, G: OnBodyEnd> {
        #[pin]
        inner: B,
        guard: EndGuard<G>,
    }
}

impl<B, G: OnBodyEnd> WatchedBody<B, G> {
    /// Wraps `inner`.
    pub fn new(inner: B, guard: EndGuard<G>) -> Self {
        Self { inner, guard }
    }

    /// Whether the end has been seen (and reported).
    pub fn has_ended(&self) -> bool {
        self.guard.0.is_none()
    }
}

impl<B, G> Body for WatchedBody<B, G>
where
    B: Body,
    B::Data: Buf,
    G: OnBodyEnd,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            None => this.guard.finish(BodyEnd::Complete),
            Some(Err(_)) => this.guard.finish(BodyEnd::Error),
            // hyper stops polling a body that says it has ended, so the last frame is the
            // last chance to see the end of a sized body.
            Some(Ok(_)) if this.inner.is_end_stream() => this.guard.finish(BodyEnd::Complete),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
