//! Turning a model stream into an SSE response, shared by both routes.
//!
//! Usage and finish reason are taken out of the provider's chunks and sent once, in a closing
//! chunk after the provider's stream ends; then `data: [DONE]`. An error mid-stream becomes an
//! error event followed by `[DONE]`, so a client never mistakes a broken stream for a finished
//! one. Dropping the body (the client went away) drops the provider stream, which closes the
//! upstream connection and so cancels the provider call.

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
use crate::model_call::{ChunkStream, FinishReason, ModelChunk, Usage};
use crate::sse::{DONE, data_event};

/// How one route writes its stream events.
pub(super) trait StreamFormat: Send + 'static {
    /// Events for one chunk (its usage and finish reason already taken out).
    fn chunk(&mut self, chunk: &ModelChunk) -> Vec<Value>;
    /// Events after the provider's stream ended.
    fn finish(&mut self, usage: Usage, finish_reason: Option<FinishReason>) -> Vec<Value>;
    /// The event for an error mid-stream.
    fn error(&mut self, error: &Error) -> Value;
}

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
    finish_reason: Option<FinishReason>,
    format: F,
}

impl<F: StreamFormat> State<F> {
    fn on_chunk(&mut self, mut chunk: ModelChunk) -> Bytes {
        if let Some(usage) = chunk.usage.take() {
            self.usage.merge(usage);
        }
        if let Some(reason) = chunk.finish_reason.take() {
            self.finish_reason = Some(reason);
        }
        encode(self.format.chunk(&chunk), false)
    }
}

fn encode(events: Vec<Value>, done: bool) -> Bytes {
    let mut out = BytesMut::new();
    for e in events {
        out.extend_from_slice(&data_event(&e.to_string()));
    }
    if done {
        out.extend_from_slice(DONE);
    }
    out.freeze()
}

/// The SSE response for a stream.
pub(super) fn sse_response(
    first: ModelChunk,
    rest: ChunkStream,
    format: impl StreamFormat,
    open_streams: Arc<Gauge>,
) -> Response<Body> {
    let state = State {
        _open: OpenStream::new(open_streams),
        phase: Phase::First(first),
        rest,
        usage: Usage::default(),
        finish_reason: None,
        format,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        let bytes = match std::mem::replace(&mut s.phase, Phase::Rest) {
            Phase::First(chunk) => s.on_chunk(chunk),
            Phase::Rest => match s.rest.next().await {
                Some(Ok(chunk)) => s.on_chunk(chunk),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "provider stream failed after the first chunk");
                    s.phase = Phase::Done;
                    let event = s.format.error(&e);
                    encode(vec![event], true)
                }
                None => {
                    s.phase = Phase::Done;
                    let events = s.format.finish(s.usage, s.finish_reason);
                    encode(events, true)
                }
            },
            Phase::Done => return None,
        };
        Some((bytes, s))
    })
    .filter(|b| std::future::ready(!b.is_empty()))
    .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut res = Response::new(StreamBody::new(events).boxed_unsync());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask buffering proxies (nginx) to pass events through as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
