//! Request ids and the one structured log line per request.
//!
//! # Layer placement
//!
//! Outermost in the inbound stack: it must see every request, including the ones that fail in
//! inner layers, and it must own the response body so that the line is written when the body
//! ends (a stream's latency is its whole duration, and a client that goes away mid-stream is
//! logged as such) rather than when the headers leave.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::RequestLogLayer;
//! use tower::ServiceBuilder;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RequestLogLayer::new())
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = svc;
//! ```
//!
//! The line never contains headers or bodies, so no secret can reach it from here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::body_end::{BodyEnd, EndGuard, OnBodyEnd, WatchedBody};
use crate::ext::{InferenceInfo, RequestId};
use crate::trace_context::{TRACEPARENT, TraceContext, TraceExtras};

/// The header that carries the request id in both directions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id we accept; longer ones are replaced, not truncated.
const MAX_CLIENT_ID_LEN: usize = 128;

/// Builds [`RequestLog`] services.
#[derive(Clone, Default)]
pub struct RequestLogLayer {
    sink: Option<Arc<dyn RequestSink>>,
}

impl std::fmt::Debug for RequestLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLogLayer")
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

impl RequestLogLayer {
    /// A request log layer.
    pub fn new() -> Self {
        Self { sink: None }
    }

    /// Also hands every finished request to `sink` (a trace exporter).
    pub fn with_sink(sink: Arc<dyn RequestSink>) -> Self {
        Self { sink: Some(sink) }
    }
}

/// Something that wants each request when it has finished (its span, for export).
pub trait RequestSink: Send + Sync {
    /// Called once per request, when its log line is written.
    fn finished(&self, request: &FinishedRequest<'_>);
}

/// A request that has finished, as the log line saw it.
#[derive(Debug)]
pub struct FinishedRequest<'a> {
    /// Its place in its trace.
    pub trace: &'a TraceContext,
    /// What the client asked to attach to its exported spans.
    pub trace_extras: Option<&'a Arc<TraceExtras>>,
    /// The method.
    pub method: &'a Method,
    /// The path.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// When it arrived.
    pub started_at: std::time::SystemTime,
    /// How long it took, to the end of its body.
    pub duration: std::time::Duration,
    /// How it ended (`complete`, `client_disconnected`, ...).
    pub outcome: &'static str,
    /// What the handler said about its inference.
    pub info: &'a InferenceInfo,
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog {
            inner,
            sink: self.sink.clone(),
        }
    }
}

/// Assigns a [`RequestId`], echoes it as `x-request-id`, and logs one line per request.
#[derive(Clone)]
pub struct RequestLog<S> {
    inner: S,
    sink: Option<Arc<dyn RequestSink>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RequestLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequestLog<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<LoggedBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let id = request_id_for(&req);
        req.extensions_mut().insert(id.clone());
        let trace = TraceContext::for_request(req.headers().get(TRACEPARENT));
        req.extensions_mut().insert(trace);
        let trace_extras = TraceExtras::from_headers(req.headers());
        if let Some(extras) = &trace_extras {
            req.extensions_mut().insert(extras.clone());
        }
        let entry = LogEntry {
            sink: self.sink.clone(),
            started_at: std::time::SystemTime::now(),
            trace,
            trace_extras,
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            request_id: id,
            started: Instant::now(),
            status: StatusCode::OK,
            info: InferenceInfo::default(),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            guard: EndGuard::new(entry),
        }
    }
}

fn request_id_for<B>(req: &Request<B>) -> RequestId {
    let from_client = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_CLIENT_ID_LEN && v.bytes().all(|b| b.is_ascii_graphic())
        });
    match from_client {
        Some(id) => RequestId::new(id),
        None => RequestId::new(uuid::Uuid::now_v7().to_string()),
    }
}

pin_project! {
    /// The future of [`RequestLog`]. If it is dropped before the response exists (hyper does
    /// that when the client disconnects), its guard logs the request as abandoned.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: EndGuard<LogEntry>,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<LoggedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let mut entry = this.guard.take().expect("polled after completion");
        Poll::Ready(match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                if let Ok(value) = HeaderValue::from_str(entry.request_id.as_str()) {
                    parts.headers.insert(REQUEST_ID_HEADER, value);
                }
                entry.status = parts.status;
                if let Some(info) = parts.extensions.get::<InferenceInfo>() {
                    entry.info = info.clone();
                }
                Ok(Response::from_parts(
                    parts,
                    WatchedBody::new(body, EndGuard::new(entry)),
                ))
            }
            Err(err) => {
                entry.status = StatusCode::INTERNAL_SERVER_ERROR;
                entry.emit(Outcome::ServiceError);
                Err(err)
            }
        })
    }
}

/// A response body that writes the request's log line when it ends or is dropped (a dropped,
/// unfinished body means the client went away, or the connection broke, before the response
/// was fully sent).
pub type LoggedBody<B> = WatchedBody<B, LogEntry>;

impl OnBodyEnd for LogEntry {
    fn on_end(self, how: BodyEnd) {
        self.emit(match how {
            BodyEnd::Complete => Outcome::Complete,
            BodyEnd::Error => Outcome::BodyError,
            BodyEnd::Dropped => Outcome::ClientGone,
        });
    }
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Complete,
    BodyError,
    ClientGone,
    ServiceError,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::BodyError => "body_error",
            Outcome::ClientGone => "client_disconnected",
            Outcome::ServiceError => "service_error",
        }
    }
}

/// A request being served: what its log line will say.
pub struct LogEntry {
    sink: Option<Arc<dyn RequestSink>>,
    started_at: std::time::SystemTime,
    trace: TraceContext,
    trace_extras: Option<Arc<TraceExtras>>,
    method: Method,
    path: String,
    request_id: RequestId,
    started: Instant,
    status: StatusCode,
    info: InferenceInfo,
}

impl LogEntry {
    fn emit(self, outcome: Outcome) {
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let duration = self.started.elapsed();
        if let Some(sink) = &self.sink {
            sink.finished(&FinishedRequest {
                trace: &self.trace,
                trace_extras: self.trace_extras.as_ref(),
                method: &self.method,
                path: &self.path,
                status: self.status.as_u16(),
                started_at: self.started_at,
                duration,
                outcome: outcome.as_str(),
                info: &self.info,
            });
        }
        let latency_ms = ms(duration);
        let info = &self.info;
        let stats = info.stats.as_deref();
        let (input_tokens, output_tokens) = stats.map_or((None, None), |s| s.tokens());
        tracing::info!(
            target: "switchyard::request",
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            latency_ms,
            outcome = outcome.as_str(),
            function = info.function.as_deref(),
            variant = info.variant.as_deref(),
            model = info.model.as_deref(),
            provider = info.provider.as_deref(),
            relayed = info.provider.as_deref().map(|p| p == crate::ext::RELAY_PROVIDER),
            attempts = stats.map(|s| s.attempts()),
            provider_wait_ms = stats.map(|s| ms(s.provider_wait())),
            ttft_ms = stats.and_then(|s| s.first_chunk()).map(ms),
            input_tokens,
            output_tokens,
            cost = stats.and_then(|s| s.cost()),
            hedged = stats.is_some_and(|s| s.hedged()).then_some(1),
            skipped = stats
                .map(|s| s.skipped())
                .filter(|s| !s.is_empty())
                .map(|s| format!("[{}]", s.join(","))),
            api_key_public_id = info.api_key_public_id.as_deref(),
            request_id = %self.request_id,
            trace_id = %self.trace,
            span_id = %self.trace.span_id_hex(),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn echo_id(req: Request<String>) -> Result<Response<String>, Infallible> {
        let id = req.extensions().get::<RequestId>().unwrap().to_string();
        Ok(Response::new(id))
    }

    #[tokio::test]
    async fn keeps_a_usable_client_id_and_echoes_it() {
        let svc = RequestLogLayer::new().layer(tower::service_fn(echo_id));
        let req = Request::builder()
            .header("x-request-id", "abc-123")
            .body(String::new())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "abc-123");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abc-123");
    }

    #[tokio::test]
    async fn replaces_an_unusable_client_id() {
        let svc = RequestLogLayer::new().layer(tower::service_fn(echo_id));
        let long = "x".repeat(MAX_CLIENT_ID_LEN + 1);
        let req = Request::builder()
            .header("x-request-id", long.as_str())
            .body(String::new())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, long);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id} is not a uuid");
    }

    #[test]
    fn outcome_is_complete_when_the_last_frame_ends_the_body() {
        // A sized body is not polled past its last frame; the guard must already have logged.
        let mut body = LoggedBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"x")),
            EndGuard::new(LogEntry {
                sink: None,
                started_at: std::time::SystemTime::now(),
                trace: TraceContext::for_request(None),
                trace_extras: None,
                method: Method::GET,
                path: "/".into(),
                request_id: RequestId::new("t"),
                started: Instant::now(),
                status: StatusCode::OK,
                info: InferenceInfo::default(),
            }),
        );
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let frame = Pin::new(&mut body).poll_frame(&mut cx);
        assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        assert!(
            body.has_ended(),
            "the line was not written at the last frame"
        );
    }

    #[tokio::test]
    async fn generates_an_id_when_none_is_sent() {
        let svc = RequestLogLayer::new().layer(tower::service_fn(echo_id));
        let res = svc.oneshot(Request::new(String::new())).await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    }
}
