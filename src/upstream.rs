//! The one upstream leaf: every outbound HTTP exchange (with a provider, a relay, or Google's
//! token endpoint) goes through [`Upstream`], under every wire format's codec.
//!
//! It carries the call's trace on as `traceparent`, sends on the pooled client
//! ([`crate::http_client`]), and types the two ways an exchange can fail before an answer is
//! read: the far end could not be reached ([`FailureKind::Unreachable`]), or it answered with
//! an error status ([`Refused::Status`], its message read within [`MAX_ERROR_BYTES`], with every
//! credential the request carried masked). A successful answer is read by the codec, within
//! [`MAX_RESPONSE_BYTES`] ([`read_answer`]) or chunk by chunk (`providers::SseReader`).
//!
//! The bound on the whole exchange, `gateway.global_outbound_http_timeout_ms`, is a stage of
//! its own just above the codecs (`stack::deadline`), as is every other limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;
use switchyard_layers::trace_context::{TRACEPARENT, TraceContext};

use crate::error::{Error, FailureKind, Fault, error_chain};
use crate::http_client::HttpClient;

/// The largest non-streamed answer read from a provider or a relay. Chat answers are kilobytes;
/// a batch of embeddings a few megabytes.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How much of an error answer's body is read for its message.
pub const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The outbound HTTP exchange, shared by every codec (clones share the connection pool).
///
/// Its methods are `async fn`s rather than a boxed `tower::Service`: each codec already runs
/// inside one boxed future per attempt, and a second allocation per call would buy nothing.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: HttpClient,
}

/// The far end could not be reached: nothing was sent, or no response head came back.
#[derive(Debug)]
pub struct Unreachable {
    /// Where the request went, as error messages may show it (no query: it could hold a key).
    target: String,
    /// Why, with the whole source chain.
    cause: String,
}

impl Unreachable {
    /// The failure in words: "could not reach `URL`: why".
    pub fn fault(self) -> Fault {
        Fault::new(
            FailureKind::Unreachable,
            format!("could not reach `{}`: {}", self.target, self.cause),
        )
    }

    /// The failure naming what was not reached: "could not reach the relay at `URL`: why".
    pub fn fault_naming(self, whom: &str) -> Fault {
        Fault::new(
            FailureKind::Unreachable,
            format!(
                "could not reach {whom} at `{}`: {}",
                self.target, self.cause
            ),
        )
    }
}

/// Why an exchange produced no answer to read.
#[derive(Debug)]
pub enum Refused {
    /// The far end could not be reached.
    Unreachable(Unreachable),
    /// The far end answered with an error status.
    Status {
        /// The HTTP status.
        status: http::StatusCode,
        /// The message in its body (the provider's own words), credentials masked.
        message: String,
        /// Its `Retry-After`, bounded (`error::retry_after`).
        retry_after: Option<Duration>,
    },
}

impl Upstream {
    /// The leaf over the shared client.
    pub fn new(client: HttpClient) -> Self {
        Self { client }
    }

    /// Sends `request` (carrying `trace` on as `traceparent`) and returns the answer whatever
    /// its status; fails only when the far end could not be reached.
    pub async fn send(
        &self,
        mut request: http::Request<Full<Bytes>>,
        trace: Option<&TraceContext>,
    ) -> Result<http::Response<Incoming>, Unreachable> {
        if let Some(trace) = trace {
            request.headers_mut().insert(TRACEPARENT, trace.outgoing());
        }
        let url = request.uri().clone();
        self.client.request(request).await.map_err(|e| Unreachable {
            target: Shown(&url).to_string(),
            cause: error_chain(&e),
        })
    }

    /// Sends `request`; an answer with an error status is [`Refused::Status`], with the
    /// message its body gives and every credential `request` carried masked in it.
    pub async fn exchange(
        &self,
        request: http::Request<Full<Bytes>>,
        trace: Option<&TraceContext>,
    ) -> Result<http::Response<Incoming>, Refused> {
        let carried = Carried::of(&request);
        let response = self
            .send(request, trace)
            .await
            .map_err(Refused::Unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = crate::error::retry_after(response.headers());
        let body = read_limited(response.into_body(), MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        Err(Refused::Status {
            status,
            message: carried.mask(provider_error_message(&body)),
            retry_after,
        })
    }
}

/// Who an outbound exchange is with: whose failure it is when it goes wrong, in the words
/// the client sees.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A model provider (or an embedding model's), and its URL when it is fixed.
    Provider {
        /// Its type, as errors name it (`openai`).
        provider_type: &'static str,
        /// Its name within the model.
        name: Arc<str>,
        /// Where its calls go, when every call goes to one URL.
        url: Option<Arc<str>>,
    },
    /// The relay gateway, at its URL.
    Relay {
        /// The relay route the calls go to.
        url: Arc<str>,
    },
}

impl Peer {
    /// A failure that is not an error status: unreachable, a broken or unreadable answer.
    pub fn failure(&self, fault: impl Into<Fault>) -> Error {
        match self {
            Peer::Provider {
                provider_type,
                name,
                ..
            } => Error::provider_failure(provider_type, name, fault),
            Peer::Relay { .. } => Error::relay_failure(fault),
        }
    }

    /// The error for an exchange that produced no answer.
    pub fn refused(&self, refused: Refused) -> Error {
        match (self, refused) {
            (Peer::Provider { .. }, Refused::Unreachable(unreachable)) => {
                self.failure(unreachable.fault())
            }
            (Peer::Relay { .. }, Refused::Unreachable(unreachable)) => {
                self.failure(unreachable.fault_naming("the relay"))
            }
            (
                Peer::Provider {
                    provider_type,
                    name,
                    ..
                },
                Refused::Status {
                    status,
                    message,
                    retry_after,
                },
            ) => Error::ProviderHttp {
                provider_type,
                provider: name.to_string(),
                status: status.as_u16(),
                message,
                retry_after,
            },
            (
                Peer::Relay { .. },
                Refused::Status {
                    status,
                    message,
                    retry_after,
                },
            ) => Error::Relay {
                status: Some(status.as_u16()),
                kind: None,
                message: format!("HTTP Error (status code {}): {message}", status.as_u16()),
                retry_after,
            },
        }
    }

    /// The error when the whole exchange outlived `gateway.global_outbound_http_timeout_ms`
    /// (`limit`): no answer, which the far end may still be working on, and billing.
    pub fn missed_deadline(&self, limit: Duration) -> Error {
        let from = match self {
            Peer::Provider { url: None, .. } => String::new(),
            Peer::Provider { url: Some(url), .. } | Peer::Relay { url } => {
                format!(" from `{url}`")
            }
        };
        self.failure(Fault::new(
            FailureKind::NoAnswer,
            format!(
                "no answer{from} within `gateway.global_outbound_http_timeout_ms` ({} ms)",
                limit.as_millis()
            ),
        ))
    }
}

/// A URL as error messages show it: scheme, host, port and path (a query could hold a key).
struct Shown<'a>(&'a http::Uri);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self.0;
        if let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) {
            write!(f, "{scheme}://{authority}")?;
        }
        f.write_str(uri.path())
    }
}

/// A JSON request body's bytes, written straight from the value (its `Display` goes through
/// `core::fmt`, a cost per character).
pub fn json_body(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("a JSON value serializes"))
}

/// The message inside a provider's error body: OpenAI's `error.message`, other common
/// shapes, or the start of the body.
pub fn provider_error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v
            .get("error")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("Message"))
            .or_else(|| v.get("detail"))
        {
            Some(e) => error_text(e),
            None => snippet(body),
        },
        Err(_) if body.is_empty() => "(empty body)".to_owned(),
        Err(_) => snippet(body),
    }
}

/// The credentials an outgoing request carries (every header value marked sensitive, and the
/// token inside `Bearer`/`Basic` ones), kept to mask them in whatever the far end says back:
/// some providers echo the key they were sent in their error messages, and that text goes on
/// to the client, the log and traces.
///
/// Every call takes one, but most never fail: taking it only keeps the sensitive header values
/// (a reference-count bump each); the text work happens in [`Carried::mask`], on errors.
#[derive(Default)]
pub struct Carried(Vec<http::HeaderValue>);

/// What a masked credential reads as.
pub const MASKED: &str = "[redacted]";

impl Carried {
    /// The credentials in `request`'s headers.
    pub fn of<B>(request: &http::Request<B>) -> Self {
        Self(
            request
                .headers()
                .values()
                .filter(|v| v.is_sensitive())
                .cloned()
                .collect(),
        )
    }

    /// A credential the gateway holds (a provider key), to mask in what a provider says outside
    /// an error status: error events inside a 200 stream, or bodies parsed as answers.
    pub fn of_secret(secret: &switchyard_layers::Secret) -> Self {
        let mut value = http::HeaderValue::from_str(secret.expose())
            .unwrap_or_else(|_| http::HeaderValue::from_static(""));
        value.set_sensitive(true);
        Self(vec![value])
    }

    /// `error` with every carried credential masked in the provider's words (some providers
    /// echo the key they were sent, also inside a stream).
    pub fn mask_error(&self, error: Error) -> Error {
        match error {
            Error::ProviderHttp {
                provider_type,
                provider,
                status,
                message,
                retry_after,
            } => Error::ProviderHttp {
                provider_type,
                provider,
                status,
                message: self.mask(message),
                retry_after,
            },
            Error::ProviderFailure {
                provider_type,
                provider,
                kind,
                message,
            } => Error::ProviderFailure {
                provider_type,
                provider,
                kind,
                message: self.mask(message),
            },
            other => other,
        }
    }

    /// `text` with every carried credential replaced by [`MASKED`].
    pub fn mask(&self, text: String) -> String {
        let mut secrets: Vec<&str> = Vec::new();
        for text in self.0.iter().filter_map(|v| v.to_str().ok()) {
            if let Some((_, token)) = text
                .split_once("Bearer ")
                .or_else(|| text.split_once("Basic "))
            {
                secrets.push(token.trim());
            }
            secrets.push(text);
        }
        // Longest first, so a header holding a token is masked whole before the token alone.
        secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
        secrets
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .fold(text, |text, secret| {
                if text.contains(secret) {
                    text.replace(secret, MASKED)
                } else {
                    text
                }
            })
    }
}

/// Credentials shorter than this are not masked: replacing every `abc` in a message would
/// garble it, and a key that short protects nothing anyway.
const MIN_MASKED_LEN: usize = 6;

/// The text of a provider's `error` value: its `message`, or the whole value.
pub fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// The start of a body, for error messages.
pub fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text}...")
    } else {
        text.into_owned()
    }
}

/// Reads a provider's whole (non-streamed) answer, refusing one larger than
/// [`MAX_RESPONSE_BYTES`]; the error says which happened: too large, or broke off.
pub async fn read_answer(body: hyper::body::Incoming) -> Result<bytes::Bytes, Fault> {
    use http_body_util::BodyExt;
    let limit = MAX_RESPONSE_BYTES;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Fault::new(
            FailureKind::Malformed,
            format!(
                "the answer is larger than {limit} bytes, the most the gateway reads from a provider"
            ),
        )),
        Err(e) => Err(Fault::new(
            FailureKind::BrokeOff,
            format!("the answer broke off: {}", error_chain(&*e)),
        )),
    }
}

/// Reads a body of at most `limit` bytes.
pub async fn read_limited(
    body: hyper::body::Incoming,
    limit: usize,
) -> Result<bytes::Bytes, String> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| error_chain(&*e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{bearer, sensitive_header};
    use switchyard_layers::Secret;

    #[test]
    fn every_sensitive_header_value_is_masked_in_what_comes_back() {
        let mut request = http::Request::new(());
        let h = request.headers_mut();
        h.insert(
            "authorization",
            bearer(&Secret::new("sk-live-abcdef")).unwrap(),
        );
        h.insert("x-api-key", sensitive_header("ant-key-123456").unwrap());
        h.insert(
            "x-plain",
            http::HeaderValue::from_static("not-a-secret-at-all"),
        );
        h.insert("api-key", sensitive_header("abc").unwrap());
        let carried = Carried::of(&request);
        let echoed = "bad key sk-live-abcdef (Bearer sk-live-abcdef), ant-key-123456, \
                      not-a-secret-at-all, abc"
            .to_owned();
        assert_eq!(
            carried.mask(echoed),
            "bad key [redacted] ([redacted]), [redacted], not-a-secret-at-all, abc"
        );
    }
}
