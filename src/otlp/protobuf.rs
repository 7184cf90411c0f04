//! `ExportTraceServiceRequest` in protobuf's binary encoding, for OTLP/gRPC and
//! OTLP/HTTP with `application/x-protobuf`. Written by hand: the messages are small and fixed
//! (field numbers from `opentelemetry/proto/{trace,common,resource}/v1`), and a code generator
//! would need `protoc` at build time.

use bytes::Bytes;

use super::{Attr, Export, SpanRecord, nanos};

/// Wire type of varints.
const VARINT: u32 = 0;
/// Wire type of 64-bit fixed-width numbers.
const FIXED64: u32 = 1;
/// Wire type of length-delimited fields (bytes, strings, messages).
const LEN: u32 = 2;

/// The export of `spans` under a resource with `resource` attributes.
pub(super) fn encode(export: &Export<'_>) -> Bytes {
    let mut out = Vec::with_capacity(128 + export.spans.len() * 320);
    // ExportTraceServiceRequest.resource_spans = 1
    message(&mut out, 1, |out| {
        // ResourceSpans.resource = 1
        message(out, 1, |out| {
            for (key, value) in export.resource() {
                // Resource.attributes = 1
                key_value(out, 1, key, &Attr::Text(value.into()));
            }
        });
        // ResourceSpans.scope_spans = 2
        message(out, 2, |out| {
            // ScopeSpans.scope = 1 (InstrumentationScope.name = 1)
            message(out, 1, |out| string(out, 1, "switchyard"));
            for span in &export.spans {
                // ScopeSpans.spans = 2
                message(out, 2, |out| encode_span(out, span));
            }
        });
    });
    Bytes::from(out)
}

fn encode_span(out: &mut Vec<u8>, s: &SpanRecord) {
    bytes(out, 1, &s.trace.trace_id);
    bytes(out, 2, &s.trace.span_id);
    if let Some(parent) = &s.trace.parent_id {
        bytes(out, 4, parent);
    }
    string(out, 5, &s.name.to_string());
    tag(out, 6, VARINT);
    varint(out, u64::from(s.kind));
    let start = nanos(s.start);
    fixed64(out, 7, start);
    fixed64(out, 8, start.saturating_add(s.duration.as_nanos() as u64));
    for (key, value) in &s.attributes {
        key_value(out, 9, key, value);
    }
    for (key, value) in s.extra_attributes() {
        key_value(out, 9, key, &Attr::Text(value.into()));
    }
    // Span.status = 15: Status.message = 2, Status.code = 3 (1 ok, 2 error).
    message(out, 15, |out| {
        if let Some(message) = &s.error {
            string(out, 2, message);
        }
        tag(out, 3, VARINT);
        varint(out, if s.error.is_some() { 2 } else { 1 });
    });
}

/// A `KeyValue` (key = 1, value = 2 as `AnyValue`) in field `field`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Attr) {
    message(out, field, |out| {
        string(out, 1, key);
        message(out, 2, |out| match value {
            Attr::Text(t) => string(out, 1, t),
            Attr::Static(t) => string(out, 1, t),
            Attr::Bool(b) => {
                tag(out, 2, VARINT);
                varint(out, u64::from(*b));
            }
            Attr::Int(n) => {
                tag(out, 3, VARINT);
                varint(out, *n);
            }
            Attr::Double(d) => {
                tag(out, 4, FIXED64);
                out.extend_from_slice(&d.to_le_bytes());
            }
        });
    });
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(out, u64::from(field << 3 | wire_type));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    tag(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}

/// A nested message in field `field`: written in place, then its length put in front of it
/// (moving the message up by the one to three bytes the length takes).
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let start = out.len();
    write(out);
    let mut length = Vec::with_capacity(10);
    varint(&mut length, (out.len() - start) as u64);
    out.splice(start..start, length);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            varint(&mut out, v);
        }
        assert_eq!(
            out,
            [
                0x00, 0x01, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0x01
            ]
        );
    }

    #[test]
    fn nested_messages_are_prefixed_with_their_length() {
        let mut out = Vec::new();
        message(&mut out, 2, |out| string(out, 1, &"x".repeat(200)));
        // tag (2 << 3 | 2), length 203 as a two-byte varint, then tag 1/LEN, length 200.
        assert_eq!(&out[..6], &[0x12, 0xcb, 0x01, 0x0a, 0xc8, 0x01]);
        assert_eq!(out.len(), 3 + 3 + 200);
    }
}
