//! Reading a provider's stream: SSE (also carried inside AWS event-stream messages), and
//! waiting for the first chunk so that a failure before it can still fall back.

use bytes::Bytes;
use serde_json::Value;

use super::bedrock;
use crate::error::{Error, FailureKind, Fault};
use crate::model_call::{ModelChunk, ProviderOutput};
use crate::upstream::{error_text, provider_error_message};

/// Reads a provider's SSE response body event by event.
pub struct SseReader {
    source: SseSource,
    decoder: crate::sse::SseDecoder,
    tap: Option<std::sync::Arc<super::tap::AnswerTap>>,
}

/// Where an SSE byte stream comes from.
enum SseSource {
    /// The response body itself.
    Body(hyper::body::Incoming),
    /// The `PayloadPart` messages of an AWS event stream (SageMaker's response streams carry
    /// the container's own output, SSE included, in them).
    EventStream {
        body: hyper::body::Incoming,
        buffer: bytes::BytesMut,
    },
}

impl SseReader {
    /// Reads `body`.
    pub fn new(body: hyper::body::Incoming) -> Self {
        Self {
            source: SseSource::Body(body),
            decoder: crate::sse::SseDecoder::default(),
            tap: None,
        }
    }

    /// Reads the SSE carried in the `PayloadPart` events of an AWS event-stream `body`.
    pub fn in_event_stream(body: hyper::body::Incoming) -> Self {
        Self {
            source: SseSource::EventStream {
                body,
                buffer: bytes::BytesMut::new(),
            },
            decoder: crate::sse::SseDecoder::default(),
            tap: None,
        }
    }

    /// Shows every event to `tap` (when there is one) before it is parsed.
    pub fn with_tap(mut self, tap: Option<std::sync::Arc<super::tap::AnswerTap>>) -> Self {
        self.tap = tap;
        self
    }

    /// Shows every event to the call's tap (when it has one) before it is parsed.
    pub fn tapped(mut self, cx: &super::CallContext<'_>) -> Self {
        self.tap = cx.tap.clone();
        self
    }

    /// The next event; `Ok(None)` when the body has ended (cleanly or not: see
    /// [`SseReader::ended_mid_event`]); `Err` with what happened when the connection broke.
    pub async fn next(&mut self) -> Result<Option<crate::sse::SseEvent>, Fault> {
        loop {
            if let Some(event) = self
                .decoder
                .next_event()
                .map_err(|e| Fault::new(FailureKind::Malformed, e.to_string()))?
            {
                if let Some(tap) = &self.tap {
                    tap.event(event.data.as_bytes());
                }
                return Ok(Some(event));
            }
            match self.source.next_bytes().await? {
                Some(data) => self.decoder.push(&data),
                None => return Ok(None),
            }
        }
    }

    /// Whether the body ended in the middle of an event.
    pub fn ended_mid_event(&self) -> bool {
        self.decoder.has_partial()
    }

    /// Why a body that ended mid-event is a failure: a provider that sheds load mid-stream may
    /// end with a bare JSON error outside SSE framing (Gemini does), and then its own message
    /// is the reason; otherwise the stream was cut.
    pub fn unfinished(&self) -> String {
        let tail = self.decoder.leftover();
        match serde_json::from_slice::<Value>(&tail) {
            Ok(v) if v.get("error").is_some() => format!(
                "the stream ended with an error: {}",
                provider_error_message(&tail)
            ),
            _ => "the stream ended in the middle of an event".into(),
        }
    }
}

impl SseSource {
    /// The next piece of the SSE byte stream; `Ok(None)` at its end.
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, Fault> {
        use http_body_util::BodyExt;
        let broke = |e: hyper::Error| {
            Fault::new(
                FailureKind::BrokeOff,
                format!("the stream broke off: {}", crate::error::error_chain(&e)),
            )
        };
        match self {
            SseSource::Body(body) => loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                    Some(Err(e)) => return Err(broke(e)),
                    None => return Ok(None),
                }
            },
            SseSource::EventStream { body, buffer } => loop {
                if let Some(message) = bedrock::decode_message(buffer)? {
                    if message.message_type == "exception" {
                        return Err(Fault::from(format!(
                            "the provider reported `{}` mid-stream: {}",
                            message.kind,
                            error_text(&serde_json::from_slice(&message.payload).unwrap_or_else(
                                |_| {
                                    Value::String(
                                        String::from_utf8_lossy(&message.payload).into_owned(),
                                    )
                                }
                            ))
                        )));
                    }
                    if message.kind == "PayloadPart" {
                        return Ok(Some(message.payload));
                    }
                    continue;
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buffer.extend_from_slice(&data);
                        }
                    }
                    Some(Err(e)) => return Err(broke(e)),
                    None if buffer.is_empty() => return Ok(None),
                    None => return Err("the event stream ended mid-message".into()),
                }
            },
        }
    }
}

/// A provider stream, read chunk by chunk.
pub trait ChunkSource: Send + 'static {
    /// The next chunk; `None` once the stream has ended.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<ModelChunk, Error>>> + Send;
}

/// Waits for a stream's first chunk (so that a failure before it is an ordinary error, and the
/// next provider can be tried), then hands on the rest.
pub async fn peek_stream<S: ChunkSource>(
    mut source: S,
    empty: impl FnOnce() -> Error,
) -> Result<ProviderOutput, Error> {
    use futures_util::StreamExt;
    let first = match source.next_chunk().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => return Err(e),
        None => return Err(empty()),
    };
    let rest = futures_util::stream::unfold(source, |mut s| async move {
        s.next_chunk().await.map(|item| (item, s))
    })
    .boxed();
    Ok(ProviderOutput::Stream { first, rest })
}
