//! Turning a model stream into an SSE response, shared by both routes.
//!
//! Usage and finish reason are taken out of the provider's chunks and sent once, in a closing
//! chunk after the provider's stream ends; then `data: [DONE]`. An error mid-stream becomes an
//! error event followed by `[DONE]`, so a client never mistakes a broken stream for a finished
//! one. Dropping the body (the client went away) drops the provider stream, which closes the
//! upstream connection and so cancels the provider call. A panic while producing an event (a
//! bug) is caught here too: it is logged, and the stream ends with the route's error event and
//! `[DONE]` instead of a connection cut mid-answer.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::Value;
use switchyard_layers::metrics::Gauge;

use crate::body::Body;
use crate::error::Error;
use crate::model_call::{ChunkStream, FinishReason, ModelChunk, Raw, RawUsage, Usage};
use crate::sse::{DONE, data_event};

/// How one route writes its stream events.
pub(super) trait StreamFormat: Send + 'static {
    /// Whether each event goes out with an `event:` line naming its `type` field (the
    /// Anthropic and Responses streams), rather than as a bare `data:` line.
    const NAMED_EVENTS: bool = false;
    /// Whether the stream ends with `data: [DONE]` (the OpenAI chat and native streams).
    const DONE_MARKER: bool = true;
    /// Events before the first chunk's (a stream's opening events).
    fn start(&mut self) -> Vec<Value> {
        Vec::new()
    }
    /// Events for one chunk (its usage and finish reason already taken out).
    fn chunk(&mut self, chunk: &ModelChunk) -> Vec<Value>;
    /// Events after the provider's stream ended: its usage (and each call's raw usage, for a
    /// client that asked), and why it stopped.
    fn finish(
        &mut self,
        usage: Usage,
        raw_usage: &[RawUsage],
        finish_reason: Option<FinishReason>,
    ) -> Vec<Value>;
    /// The event for an error mid-stream.
    fn error(&mut self, error: &Error) -> Value;
    /// The closing bytes when the gateway itself failed mid-stream (a panic, caught): the
    /// route's error event, then `[DONE]`.
    const PANIC_EVENTS: &'static str;
}

/// The message of a stream the gateway failed to finish (each route's `PANIC_EVENTS` carries it).
#[cfg(test)]
const PANIC_MESSAGE: &str = "the gateway failed while streaming this answer (an internal error, logged); the answer is incomplete";

enum Phase {
    First(ModelChunk),
    Rest,
    Done,
}

/// Counts a stream as open from the moment its response is built until its body is dropped
/// (ended, or the client went away).
struct OpenStream(Arc<Gauge>);

impl OpenStream {
    fn new(gauge: Arc<Gauge>) -> Self {
        gauge.add(1);
        Self(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

struct State<F> {
    _open: OpenStream,
    phase: Phase,
    rest: ChunkStream,
    usage: Usage,
    raw_usage: Raw,
    finish_reason: Option<FinishReason>,
    format: F,
}

impl<F: StreamFormat> State<F> {
    fn on_chunk(&mut self, mut chunk: ModelChunk) -> Bytes {
        if let Some(usage) = chunk.usage.take() {
            self.usage.merge(usage);
        }
        if let Some(raw) = &mut chunk.raw {
            self.raw_usage.absorb(Raw {
                usage: std::mem::take(&mut raw.usage),
                ..Raw::default()
            });
        }
        if let Some(reason) = chunk.finish_reason.take() {
            self.finish_reason = Some(reason);
        }
        encode::<F>(self.format.chunk(&chunk), false)
    }
}

fn encode<F: StreamFormat>(events: Vec<Value>, end: bool) -> Bytes {
    let mut out = BytesMut::new();
    for e in events {
        if F::NAMED_EVENTS
            && let Some(name) = e.get("type").and_then(Value::as_str)
        {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(&data_event(&e.to_string()));
    }
    if end && F::DONE_MARKER {
        out.extend_from_slice(DONE);
    }
    out.freeze()
}

/// The SSE response for a stream.
pub(super) fn sse_response<F: StreamFormat>(
    first: ModelChunk,
    rest: ChunkStream,
    format: F,
    open_streams: Arc<Gauge>,
) -> Response<Body> {
    let state = State {
        _open: OpenStream::new(open_streams),
        phase: Phase::First(first),
        rest,
        usage: Usage::default(),
        raw_usage: Raw::default(),
        finish_reason: None,
        format,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        let bytes = match std::mem::replace(&mut s.phase, Phase::Rest) {
            Phase::First(chunk) => {
                let opening = encode::<F>(s.format.start(), false);
                let first = s.on_chunk(chunk);
                if opening.is_empty() {
                    first
                } else {
                    let mut both = BytesMut::from(&opening[..]);
                    both.extend_from_slice(&first);
                    both.freeze()
                }
            }
            Phase::Rest => match s.rest.next().await {
                Some(Ok(chunk)) => s.on_chunk(chunk),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "provider stream failed after the first chunk");
                    s.phase = Phase::Done;
                    let event = s.format.error(&e);
                    encode::<F>(vec![event], true)
                }
                None => {
                    s.phase = Phase::Done;
                    let events = s
                        .format
                        .finish(s.usage, &s.raw_usage.usage, s.finish_reason);
                    encode::<F>(events, true)
                }
            },
            Phase::Done => return None,
        };
        Some((bytes, s))
    })
    .filter(|b| std::future::ready(!b.is_empty()));
    // A panic below ends the stream (catch_unwind stops after it) with the route's error event.
    let events = std::panic::AssertUnwindSafe(events)
        .catch_unwind()
        .map(|item| match item {
            Ok(bytes) => bytes,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!(panic = %message, "a panic while streaming an answer; the stream was ended with an error event");
                Bytes::from_static(F::PANIC_EVENTS.as_bytes())
            }
        })
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut res = Response::new(StreamBody::new(events).boxed_unsync());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask buffering proxies (nginx) to pass events through as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route format whose second chunk panics.
    struct Panicky(usize);

    impl StreamFormat for Panicky {
        fn chunk(&mut self, _chunk: &ModelChunk) -> Vec<Value> {
            self.0 += 1;
            assert!(self.0 < 2, "a bug in the event code");
            vec![serde_json::json!({ "n": self.0 })]
        }
        fn finish(
            &mut self,
            _usage: Usage,
            _raw_usage: &[RawUsage],
            _finish: Option<FinishReason>,
        ) -> Vec<Value> {
            Vec::new()
        }
        fn error(&mut self, _error: &Error) -> Value {
            Value::Null
        }
        const PANIC_EVENTS: &'static str = "data: {\"error\":\"x\"}\n\ndata: [DONE]\n\n";
    }

    #[tokio::test]
    async fn a_panic_mid_stream_ends_it_with_the_routes_error_event() {
        let rest: ChunkStream = futures_util::stream::iter([Ok(ModelChunk::default())]).boxed();
        let gauge = Arc::new(Gauge::default());
        let response = sse_response(ModelChunk::default(), rest, Panicky(0), gauge);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            text,
            "data: {\"n\":1}\n\ndata: {\"error\":\"x\"}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn each_routes_panic_events_are_its_error_shape_then_done() {
        use super::super::inference::NativeStream as Native;
        use super::super::openai::OpenAiStream as OpenAi;
        for (events, pointer) in [
            (Native::PANIC_EVENTS, "/error"),
            (OpenAi::PANIC_EVENTS, "/error/message"),
        ] {
            let (first, rest) = events.split_once("\n\n").unwrap();
            let v: Value = serde_json::from_str(first.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(
                v.pointer(pointer).and_then(Value::as_str),
                Some(PANIC_MESSAGE)
            );
            assert_eq!(rest, "data: [DONE]\n\n");
        }
    }
}
