//! Timeouts of one scope (a provider attempt, a model call, or a whole variant).
//!
//! # Layer placement
//!
//! The same layer is used three times: around each provider attempt (inside fallback, so a
//! timeout is an ordinary provider failure and the next provider is tried), around the model
//! call (outside relay-or-skip, so it also covers relayed calls), and around the variant
//! (outside retries, so it bounds all attempts together).
//!
//! Until the answer (or, streaming, its first chunk) arrives, the limit is
//! `non_streaming.total_ms`, or the earlier of `streaming.ttft_ms` and `streaming.total_ms`.
//! After the first chunk, the layer hands the stream a deadline (`streaming.total_ms`, counted
//! from the start of the call) and an idle limit between chunks (`streaming.idle_ms`) through
//! [`LimitStream`]; the stream turns them into an error event.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use switchyard_layers::timeout::{Scope, TimeoutLayer, Timeouts};
//!
//! let limits = Timeouts { non_streaming_total: Some(Duration::from_secs(15)), ..Timeouts::default() };
//! let layer = TimeoutLayer::new(Scope::Provider, "openai", limits);
//! # let _ = layer;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::call::{Call, Payload};

/// The limits of one scope; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole of a non-streaming call.
    pub non_streaming_total: Option<Duration>,
    /// Until the first chunk of a stream.
    pub streaming_ttft: Option<Duration>,
    /// The whole of a stream, from the start of the call.
    pub streaming_total: Option<Duration>,
    /// The longest silence between two chunks (a switchyard extension: `streaming.idle_ms`).
    pub streaming_idle: Option<Duration>,
}

impl Timeouts {
    /// Whether any limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Timeouts::default()
    }
}

/// What the limits apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One provider attempt.
    Provider,
    /// One model call (all providers, or the relay).
    Model,
    /// One variant (all retries).
    Variant,
}

/// Which limit fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    /// `non_streaming.total_ms`.
    NonStreamingTotal,
    /// `streaming.ttft_ms`.
    StreamingTtft,
    /// `streaming.total_ms`.
    StreamingTotal,
    /// `streaming.idle_ms`.
    StreamingIdle,
}

impl TimeoutKind {
    /// The config key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            TimeoutKind::NonStreamingTotal => "non_streaming.total_ms",
            TimeoutKind::StreamingTtft => "streaming.ttft_ms",
            TimeoutKind::StreamingTotal => "streaming.total_ms",
            TimeoutKind::StreamingIdle => "streaming.idle_ms",
        }
    }
}

/// A limit fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elapsed {
    /// Where the limit was configured.
    pub scope: Scope,
    /// The provider, model or variant name.
    pub name: Arc<str>,
    /// Which limit.
    pub kind: TimeoutKind,
    /// Its value.
    pub limit: Duration,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.scope {
            Scope::Provider => format!("Model provider {}", self.name),
            Scope::Model => format!("Model {}", self.name),
            Scope::Variant => format!("Variant `{}`", self.name),
        };
        write!(
            f,
            "{what} timed out due to configured `{}` timeout ({} ms)",
            self.kind.key(),
            self.limit.as_millis()
        )
    }
}

impl std::error::Error for Elapsed {}

/// The limits a stream must keep after its first chunk.
#[derive(Clone, Debug, Default)]
pub struct StreamLimits {
    /// When the whole stream must have ended, and the error to report if it has not.
    pub deadline: Option<(Instant, Elapsed)>,
    /// The longest silence between chunks, and the error to report.
    pub idle: Option<(Duration, Elapsed)>,
}

/// A response whose stream (if it is one) can be bounded after its first chunk.
pub trait LimitStream {
    /// Applies the limits; a non-streaming response returns itself.
    fn limit_stream(self, limits: StreamLimits) -> Self;
}

/// Builds [`Timeout`] services.
#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    scope: Scope,
    name: Arc<str>,
    limits: Timeouts,
}

impl TimeoutLayer {
    /// Limits for the scope named `name`.
    pub fn new(scope: Scope, name: impl Into<Arc<str>>, limits: Timeouts) -> Self {
        Self {
            scope,
            name: name.into(),
            limits,
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            scope: self.scope,
            name: self.name.clone(),
            limits: self.limits,
        }
    }
}

/// Applies one scope's limits to a call.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    scope: Scope,
    name: Arc<str>,
    limits: Timeouts,
}

impl<S> Timeout<S> {
    fn elapsed(&self, kind: TimeoutKind, limit: Duration) -> Elapsed {
        Elapsed {
            scope: self.scope,
            name: self.name.clone(),
            kind,
            limit,
        }
    }
}

impl<S, T> Service<Call<T>> for Timeout<S>
where
    S: Service<Call<T>>,
    S::Response: LimitStream,
    S::Error: From<Elapsed>,
    T: Payload,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let streaming = call.payload.is_streaming();
        let l = self.limits;
        let first = if streaming {
            match (l.streaming_ttft, l.streaming_total) {
                (Some(ttft), Some(total)) if total < ttft => {
                    Some((total, TimeoutKind::StreamingTotal))
                }
                (Some(ttft), _) => Some((ttft, TimeoutKind::StreamingTtft)),
                (None, Some(total)) => Some((total, TimeoutKind::StreamingTotal)),
                (None, None) => None,
            }
        } else {
            l.non_streaming_total
                .map(|t| (t, TimeoutKind::NonStreamingTotal))
        };
        let now = Instant::now();
        let stream_limits = streaming.then(|| StreamLimits {
            deadline: l
                .streaming_total
                .map(|t| (now + t, self.elapsed(TimeoutKind::StreamingTotal, t))),
            idle: l
                .streaming_idle
                .map(|t| (t, self.elapsed(TimeoutKind::StreamingIdle, t))),
        });
        ResponseFuture {
            inner: self.inner.call(call),
            sleep: first.map(|(t, _)| tokio::time::sleep_until(now + t)),
            on_timeout: first.map(|(t, kind)| self.elapsed(kind, t)),
            stream_limits,
        }
    }
}

pin_project! {
    /// The future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        on_timeout: Option<Elapsed>,
        stream_limits: Option<StreamLimits>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: LimitStream,
    E: From<Elapsed>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map(|response| match this.stream_limits.take() {
                Some(limits) if limits.deadline.is_some() || limits.idle.is_some() => {
                    response.limit_stream(limits)
                }
                _ => response,
            }));
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            if sleep.poll(cx).is_ready() {
                let elapsed = this
                    .on_timeout
                    .take()
                    .expect("a sleep always has its error");
                return Poll::Ready(Err(elapsed.into()));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[derive(Debug, PartialEq)]
    struct Answer {
        limits: Option<(Option<Duration>, Option<Duration>)>,
    }

    impl LimitStream for Answer {
        fn limit_stream(self, limits: StreamLimits) -> Self {
            Answer {
                limits: Some((
                    limits.deadline.map(|(_, e)| e.limit),
                    limits.idle.map(|(d, _)| d),
                )),
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum Err {
        Elapsed(Elapsed),
    }

    impl From<Elapsed> for Err {
        fn from(e: Elapsed) -> Self {
            Err::Elapsed(e)
        }
    }

    struct Req(bool);
    impl Payload for Req {
        fn is_streaming(&self) -> bool {
            self.0
        }
    }

    fn slow(
        delay: Duration,
    ) -> impl Service<Call<Req>, Response = Answer, Error = Err, Future = impl Send> + Clone {
        tower::service_fn(move |_c: Call<Req>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Err>(Answer { limits: None })
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn non_streaming_total_fires_with_a_named_error() {
        let limits = Timeouts {
            non_streaming_total: Some(ms(100)),
            ..Default::default()
        };
        let svc = TimeoutLayer::new(Scope::Provider, "p", limits).layer(slow(ms(150)));
        let Err::Elapsed(e) = svc.oneshot(Call::new(Req(false))).await.unwrap_err();
        assert_eq!(e.kind, TimeoutKind::NonStreamingTotal);
        assert_eq!(
            e.to_string(),
            "Model provider p timed out due to configured `non_streaming.total_ms` timeout (100 ms)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_answer_passes() {
        let limits = Timeouts {
            non_streaming_total: Some(ms(100)),
            ..Default::default()
        };
        let svc = TimeoutLayer::new(Scope::Model, "m", limits).layer(slow(ms(99)));
        assert_eq!(
            svc.oneshot(Call::new(Req(false))).await.unwrap(),
            Answer { limits: None }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn streaming_uses_the_earlier_of_ttft_and_total() {
        let limits = Timeouts {
            streaming_ttft: Some(ms(300)),
            streaming_total: Some(ms(200)),
            ..Default::default()
        };
        let svc = TimeoutLayer::new(Scope::Variant, "v", limits).layer(slow(ms(250)));
        let Err::Elapsed(e) = svc.oneshot(Call::new(Req(true))).await.unwrap_err();
        assert_eq!(e.kind, TimeoutKind::StreamingTotal);
        assert_eq!(
            e.to_string(),
            "Variant `v` timed out due to configured `streaming.total_ms` timeout (200 ms)"
        );
        // The non-streaming limit does not apply to streams.
        let limits = Timeouts {
            non_streaming_total: Some(ms(10)),
            ..Default::default()
        };
        let svc = TimeoutLayer::new(Scope::Model, "m", limits).layer(slow(ms(50)));
        assert!(svc.oneshot(Call::new(Req(true))).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn streams_get_their_deadline_and_idle_limit() {
        let limits = Timeouts {
            streaming_ttft: Some(ms(100)),
            streaming_total: Some(ms(1000)),
            streaming_idle: Some(ms(50)),
            ..Default::default()
        };
        let svc = TimeoutLayer::new(Scope::Provider, "p", limits).layer(slow(ms(10)));
        let answer = svc.oneshot(Call::new(Req(true))).await.unwrap();
        assert_eq!(answer.limits, Some((Some(ms(1000)), Some(ms(50)))));
    }
}
