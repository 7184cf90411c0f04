//! One provider HTTP exchange: sending (with the call's trace), reading the answer within its
//! bounds, and turning an error status into the provider's own words, with every credential
//! the request carried masked.

use bytes::Bytes;
use serde_json::Value;
use switchyard_layers::trace_context;

use super::{CallContext, ProviderSpec, bounds};
use crate::error::{Error, FailureKind, Fault};
use crate::secret::Secret;

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

/// How much of a provider's error body is read for its message.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Sends one provider request; a non-2xx answer becomes the provider's error (its status, its
/// message and any `Retry-After`), an unreachable one a failure naming `url`.
pub async fn send(
    provider: &ProviderSpec,
    cx: &CallContext<'_>,
    url: &str,
    mut request: http::Request<http_body_util::Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Error> {
    if let Some(trace) = cx.trace {
        request
            .headers_mut()
            .insert(trace_context::TRACEPARENT, trace.outgoing());
    }
    let carried = Carried::of(&request);
    let response = cx.client.request(request).await.map_err(|e| {
        provider.failure(Fault::new(
            FailureKind::Unreachable,
            format!("could not reach `{url}`: {}", crate::error::error_chain(&e)),
        ))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = crate::error::retry_after(response.headers());
    let body = read_limited(response.into_body(), MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    Err(Error::ProviderHttp {
        provider_type: provider.provider_type.as_str(),
        provider: provider.name.to_string(),
        status: status.as_u16(),
        message: carried.mask(provider_error_message(&body)),
        retry_after,
    })
}

/// Marks a key as sensitive so that no header dump can show it.
pub fn sensitive_header(value: &str) -> Result<http::HeaderValue, Error> {
    let mut v = http::HeaderValue::from_str(value).map_err(|_| {
        Error::InvalidRequest(
            "a credential contains characters that cannot go in an HTTP header".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A key as an `Authorization: Bearer` value.
pub fn bearer(key: &Secret) -> Result<http::HeaderValue, Error> {
    sensitive_header(&format!("Bearer {}", key.expose()))
}

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
/// [`bounds::MAX_RESPONSE_BYTES`]; the error says which happened: too large, or broke off.
pub async fn read_answer(body: hyper::body::Incoming) -> Result<bytes::Bytes, Fault> {
    use http_body_util::BodyExt;
    let limit = bounds::MAX_RESPONSE_BYTES;
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
            format!("the answer broke off: {}", crate::error::error_chain(&*e)),
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
        .map_err(|e| crate::error::error_chain(&*e))
}

/// Bounds one whole outbound exchange (request, answer, or a stream up to its first chunk) by
/// `gateway.global_outbound_http_timeout_ms`. Past it the exchange is dropped, which closes its
/// connection, and the failure is a [`FailureKind::NoAnswer`] (the far end may be working on
/// it, and billing it), turned into the caller's error by `fail`. `target` names the URL when
/// the caller knows it.
pub async fn within_global_timeout<T>(
    limit: std::time::Duration,
    target: Option<&str>,
    exchange: impl std::future::Future<Output = Result<T, Error>>,
    fail: impl FnOnce(Fault) -> Error,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, exchange).await {
        Ok(result) => result,
        Err(_) => {
            let from = target.map(|t| format!(" from `{t}`")).unwrap_or_default();
            Err(fail(Fault::new(
                FailureKind::NoAnswer,
                format!(
                    "no answer{from} within `gateway.global_outbound_http_timeout_ms` ({} ms)",
                    limit.as_millis()
                ),
            )))
        }
    }
}

#[cfg(test)]
mod carried_tests {
    use super::*;

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
