//! W3C Trace Context (`traceparent`): the trace a request belongs to, taken from the client's
//! header or started here, written to the request log and passed on to the relay and to
//! providers, so both tiers' log lines of one call share a trace id.
//!
//! Format (version 00): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`. An invalid
//! header (wrong lengths, non-hex, all-zero ids, version `ff`) is ignored and a new trace starts,
//! as the specification asks.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// Request headers that attach metadata to the request's exported spans start with this (as
/// the TensorZero Gateway and its clients name them), then `header-`, `attribute-` or
/// `resource-` and the name to set.
const EXTRAS_PREFIX: &str = "tensorzero-otlp-traces-extra-";

/// Where a request sits in its trace: the trace, this hop's span, and the sampled flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The span this gateway opened for the request (never all zero).
    pub span_id: [u8; 8],
    /// The span of the caller, when the client sent a `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// Whether the caller records this trace.
    pub sampled: bool,
}

impl TraceContext {
    /// The context for an incoming request: a child of the client's `traceparent` when it is
    /// valid, else a new trace (sampled).
    pub fn for_request(traceparent: Option<&HeaderValue>) -> Self {
        let mut rng = rand::rng();
        match traceparent.and_then(|v| v.to_str().ok()).and_then(parse) {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                span_id: nonzero(&mut rng),
                parent_id: Some(parent),
                sampled: flags & 1 == 1,
            },
            None => Self {
                trace_id: nonzero(&mut rng),
                span_id: nonzero(&mut rng),
                parent_id: None,
                sampled: true,
            },
        }
    }

    /// A span inside this one (an outgoing call): same trace, a new span id, this span as its
    /// parent.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: nonzero(&mut rand::rng()),
            parent_id: Some(self.span_id),
            sampled: self.sampled,
        }
    }

    /// The `traceparent` that makes this span the parent of what the receiver does.
    pub fn outgoing(&self) -> HeaderValue {
        let value = format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        );
        HeaderValue::from_str(&value).expect("hex is a valid header value")
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The parent span id as 16 lower-case hex digits.
    pub fn parent_id_hex(&self) -> Option<String> {
        self.parent_id.map(|p| hex(&p))
    }

    /// This request's span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.trace_id_hex())
    }
}

/// What a client asked to attach to its request's exported spans through
/// `tensorzero-otlp-traces-extra-{header,attribute,resource}-NAME` headers: headers for the
/// export requests that carry them, attributes on each of them, and resource attributes.
///
/// Kept sorted, so two requests that asked for the same things compare equal and their spans
/// can share an export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceExtras {
    /// Headers sent with the export (they win over the configured `extra_headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Attributes set on every span of the request.
    pub attributes: Vec<(String, String)>,
    /// Attributes of the resource the request's spans are exported under.
    pub resources: Vec<(String, String)>,
}

impl TraceExtras {
    /// The extras `headers` ask for; `None` (no allocation) when they ask for none.
    pub fn from_headers(headers: &HeaderMap) -> Option<Arc<Self>> {
        let mut extras: Option<Self> = None;
        for (name, value) in headers {
            let Some(rest) = name.as_str().strip_prefix(EXTRAS_PREFIX) else {
                continue;
            };
            let extras = extras.get_or_insert_with(Self::default);
            let named = |kind: &str| rest.strip_prefix(kind).filter(|n| !n.is_empty());
            let text = || String::from_utf8_lossy(value.as_bytes()).into_owned();
            if let Some(header) = named("header-") {
                // The rest of a valid header name is a valid header name.
                if let Ok(header) = HeaderName::from_bytes(header.as_bytes()) {
                    extras.headers.push((header, value.clone()));
                }
            } else if let Some(key) = named("attribute-") {
                extras.attributes.push((key.to_owned(), text()));
            } else if let Some(key) = named("resource-") {
                extras.resources.push((key.to_owned(), text()));
            } else {
                tracing::debug!(header = %name, "ignoring an unknown {EXTRAS_PREFIX}* header");
            }
        }
        let mut extras = extras.filter(|e| *e != Self::default())?;
        extras
            .headers
            .sort_by(|a, b| (a.0.as_str(), a.1.as_bytes()).cmp(&(b.0.as_str(), b.1.as_bytes())));
        extras.attributes.sort();
        extras.resources.sort();
        Some(Arc::new(extras))
    }
}

fn nonzero<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    loop {
        let bytes: [u8; N] = rng.random();
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` as lower-case hex (no allocation beyond `out`'s growth).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// `(trace id, parent id, flags)` of a valid `traceparent`.
fn parse(value: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    // Version 00 has exactly four fields; later versions may add more after these.
    if version.len() != 2
        || version.eq_ignore_ascii_case("ff")
        || (version == "00" && parts.next().is_some())
    {
        return None;
    }
    unhex::<1>(version)?;
    let trace_id = unhex::<16>(trace).filter(|t| t.iter().any(|b| *b != 0))?;
    let parent_id = unhex::<8>(parent).filter(|p| p.iter().any(|b| *b != 0))?;
    let [flags] = unhex::<1>(flags)?;
    Some((trace_id, parent_id, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued() {
        let header =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let cx = TraceContext::for_request(Some(&header));
        assert_eq!(cx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            cx.parent_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert!(cx.sampled);
        let out = cx.outgoing();
        let out = out.to_str().unwrap();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01"));
        assert_ne!(
            &out[36..52],
            "00f067aa0ba902b7",
            "a new span id per outgoing call"
        );
        assert_eq!(parse(out).unwrap().0, cx.trace_id);
    }

    #[test]
    fn extras_come_from_prefixed_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(TraceExtras::from_headers(&headers), None);
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "tensorzero-otlp-traces-extra-header-x-tenant",
            HeaderValue::from_static("t1"),
        );
        headers.insert(
            "tensorzero-otlp-traces-extra-attribute-user.id",
            HeaderValue::from_static("u1"),
        );
        headers.insert(
            "tensorzero-otlp-traces-extra-resource-deployment.environment",
            HeaderValue::from_static("prod"),
        );
        headers.insert(
            "tensorzero-otlp-traces-extra-header-",
            HeaderValue::from_static("no name"),
        );
        let extras = TraceExtras::from_headers(&headers).unwrap();
        assert_eq!(extras.headers.len(), 1);
        assert_eq!(extras.headers[0].0, "x-tenant");
        assert_eq!(extras.attributes, vec![("user.id".into(), "u1".into())]);
        assert_eq!(
            extras.resources,
            vec![("deployment.environment".into(), "prod".into())]
        );
    }

    #[test]
    fn invalid_headers_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let cx = TraceContext::for_request(Some(&HeaderValue::from_str(bad).unwrap()));
            assert_eq!(cx.parent_id, None, "{bad}");
            assert_ne!(cx.trace_id, [0; 16]);
        }
        let unsampled =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!TraceContext::for_request(Some(&unsampled)).sampled);
    }
}
