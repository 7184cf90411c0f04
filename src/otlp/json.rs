//! `ExportTraceServiceRequest` in OTLP's JSON encoding (OTLP/HTTP with `application/json`):
//! ids in hex, 64-bit numbers as strings, written straight into one buffer.

use std::fmt::Write as _;

use bytes::Bytes;
use switchyard_layers::trace_context::push_hex;

use super::{Attr, Export, SpanRecord, nanos};

pub(super) fn encode(export: &Export<'_>) -> Bytes {
    let mut out = String::with_capacity(256 + export.spans.len() * 600);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
    for (i, (key, value)) in export.resource().enumerate() {
        if i > 0 {
            out.push(',');
        }
        key_value(&mut out, key, &Attr::Text(value.into()));
    }
    out.push_str(r#"]},"scopeSpans":[{"scope":{"name":"switchyard"},"spans":["#);
    for (i, span) in export.spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_span(&mut out, span);
    }
    out.push_str("]}]}]}");
    Bytes::from(out)
}

fn encode_span(out: &mut String, s: &SpanRecord) {
    out.push_str(r#"{"traceId":""#);
    push_hex(out, &s.trace.trace_id);
    out.push_str(r#"","spanId":""#);
    push_hex(out, &s.trace.span_id);
    out.push('"');
    if let Some(parent) = &s.trace.parent_id {
        out.push_str(r#","parentSpanId":""#);
        push_hex(out, parent);
        out.push('"');
    }
    out.push_str(r#","name":"#);
    push_str(out, &s.name.to_string());
    let start = nanos(s.start);
    let _ = write!(
        out,
        r#","kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
        s.kind,
        start,
        start.saturating_add(s.duration.as_nanos() as u64)
    );
    let extra = s
        .extra_attributes()
        .map(|(key, value)| (key, Attr::Text(value.into())));
    let attributes = s.attributes.iter().map(|(k, v)| (*k, v));
    let mut first = true;
    for (key, value) in attributes {
        if !first {
            out.push(',');
        }
        first = false;
        key_value(out, key, value);
    }
    for (key, value) in extra {
        if !first {
            out.push(',');
        }
        first = false;
        key_value(out, key, &value);
    }
    out.push_str(r#"],"status":"#);
    match &s.error {
        None => out.push_str(r#"{"code":1}"#),
        Some(message) => {
            out.push_str(r#"{"code":2,"message":"#);
            push_str(out, message);
            out.push('}');
        }
    }
    out.push('}');
}

fn key_value(out: &mut String, key: &str, value: &Attr) {
    out.push_str(r#"{"key":"#);
    push_str(out, key);
    out.push_str(r#","value":{"#);
    match value {
        Attr::Text(t) => {
            out.push_str(r#""stringValue":"#);
            push_str(out, t);
        }
        Attr::Static(t) => {
            out.push_str(r#""stringValue":"#);
            push_str(out, t);
        }
        Attr::Int(n) => {
            let _ = write!(out, r#""intValue":"{n}""#);
        }
        Attr::Double(d) => {
            let _ = write!(out, r#""doubleValue":{d}"#);
        }
        Attr::Bool(b) => {
            let _ = write!(out, r#""boolValue":{b}"#);
        }
    }
    out.push_str("}}");
}

/// Appends `text` as a JSON string.
fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
