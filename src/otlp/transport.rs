//! How exports reach the collector: OTLP over gRPC (the default, and all the TensorZero Gateway
//! speaks), or OTLP/HTTP with protobuf or JSON bodies, chosen the standard way through
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (or `OTEL_EXPORTER_OTLP_PROTOCOL`).

use std::collections::BTreeMap;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};

use crate::http_client::HttpClient;

/// The gRPC method an OTLP trace receiver serves.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The OTLP transport and encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`): HTTP/2, protobuf; the endpoint is the collector's address
    /// (`http://collector:4317`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`); the endpoint is the full URL
    /// (`http://collector:4318/v1/traces`).
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (`http/json`); the endpoint is the full URL.
    HttpJson,
}

impl Protocol {
    /// The protocol an `OTEL_EXPORTER_OTLP_*PROTOCOL` value names; unset is gRPC, as in the
    /// TensorZero Gateway.
    pub fn from_env(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("grpc") => Ok(Self::Grpc),
            Some("http/protobuf") => Ok(Self::HttpProtobuf),
            Some("http/json") => Ok(Self::HttpJson),
            Some(other) => Err(format!(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is `{other}`; use `grpc` (the default), \
                 `http/protobuf` or `http/json`"
            )),
        }
    }

    /// Whether bodies are protobuf (else JSON).
    pub fn is_protobuf(self) -> bool {
        self != Self::HttpJson
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        })
    }
}

/// Sends encoded exports to one collector.
#[derive(Debug)]
pub struct Transport {
    protocol: Protocol,
    url: Uri,
    /// The configured `extra_headers` (a request's own win over them).
    headers: HeaderMap,
    client: HttpClient,
}

impl Transport {
    /// A transport to `endpoint` (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) with the configured
    /// `extra_headers`. OTLP/HTTP goes through `shared` (the gateway's client); gRPC gets a
    /// client of its own that speaks HTTP/2 from the first byte, as gRPC over plain TCP needs.
    pub fn new(
        protocol: Protocol,
        endpoint: &str,
        extra_headers: &BTreeMap<String, String>,
        shared: &HttpClient,
    ) -> Result<Self, String> {
        let url: Uri = endpoint.trim().parse().map_err(|e| {
            format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT `{endpoint}` is not a URL: {e}")
        })?;
        let (Some(scheme), Some(authority)) = (url.scheme_str(), url.authority()) else {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT `{endpoint}` needs a scheme and a host, \
                 e.g. http://otel-collector:4317"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT `{endpoint}`: the scheme must be http or https"
            ));
        }
        let url = match protocol {
            // A gRPC endpoint is an address; the method's path is fixed.
            Protocol::Grpc => format!("{scheme}://{authority}{GRPC_EXPORT_PATH}")
                .parse()
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT `{endpoint}`: {e}"))?,
            Protocol::HttpProtobuf | Protocol::HttpJson => url,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!(
                    "gateway.export.otlp.traces.extra_headers: `{name}` is not a valid header name"
                )
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                format!(
                    "gateway.export.otlp.traces.extra_headers.{name}: the value is not a valid \
                     header value (printable ASCII only)"
                )
            })?;
            headers.insert(name, value);
        }
        let client = match protocol {
            Protocol::Grpc => crate::http_client::build_http2_only(),
            Protocol::HttpProtobuf | Protocol::HttpJson => shared.clone(),
        };
        Ok(Self {
            protocol,
            url,
            headers,
            client,
        })
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Sends one encoded export with the configured headers, overridden by `request_headers`.
    pub async fn send(
        &self,
        message: Bytes,
        request_headers: &[(HeaderName, HeaderValue)],
    ) -> Result<(), String> {
        let (content_type, body) = match self.protocol {
            Protocol::Grpc => ("application/grpc", grpc_frame(&message)),
            Protocol::HttpProtobuf => ("application/x-protobuf", message),
            Protocol::HttpJson => ("application/json", message),
        };
        let mut request = Request::post(self.url.clone())
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let headers = request.headers_mut();
        headers.extend(self.headers.clone());
        for (name, value) in request_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("switchyard/", env!("CARGO_PKG_VERSION"))),
        );
        if self.protocol == Protocol::Grpc {
            headers.insert("te", HeaderValue::from_static("trailers"));
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| crate::error::error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the collector answered HTTP {status}"));
        }
        if self.protocol != Protocol::Grpc {
            return Ok(());
        }
        // gRPC reports its outcome in `grpc-status`: in the trailers, or in the headers of a
        // response without a body.
        let (parts, body) = response.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| format!("reading the collector's answer: {e}"))?;
        let trailers = collected.trailers();
        let field = |name: &str| {
            trailers
                .and_then(|t| t.get(name))
                .or_else(|| parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match field("grpc-status").as_deref() {
            Some("0") => Ok(()),
            Some(code) => Err(format!(
                "the collector answered gRPC status {code}: {}",
                field("grpc-message").unwrap_or_default()
            )),
            None => Err(
                "the collector's answer has no grpc-status (is the endpoint an OTLP/gRPC \
                 receiver? For OTLP/HTTP set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf)"
                    .into(),
            ),
        }
    }
}

/// A gRPC message frame: not compressed (one zero byte), the length (4 bytes, big-endian),
/// the message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(message);
    frame.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_as_opentelemetry_names_them() {
        assert_eq!(Protocol::from_env(None).unwrap(), Protocol::Grpc);
        assert_eq!(
            Protocol::from_env(Some("http/protobuf")).unwrap(),
            Protocol::HttpProtobuf
        );
        assert_eq!(
            Protocol::from_env(Some("http/json")).unwrap(),
            Protocol::HttpJson
        );
        let err = Protocol::from_env(Some("thrift")).unwrap_err();
        assert!(
            err.contains("`thrift`") && err.contains("http/protobuf"),
            "{err}"
        );
    }

    #[test]
    fn grpc_frames_carry_the_length_big_endian() {
        assert_eq!(&grpc_frame(b"abc")[..], b"\x00\x00\x00\x00\x03abc");
    }
}
