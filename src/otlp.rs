//! OpenTelemetry trace export (`[gateway.export.otlp.traces]`): a server span per request and a
//! client span per provider or relay call, sent to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` over
//! OTLP/HTTP with the JSON encoding.
//!
//! Recording a span is a `try_send` on a bounded queue: a full queue (a collector that is down
//! or slow) drops spans and counts them, it never makes a request wait. A background task wakes
//! every [`FLUSH_EVERY`] and sends what is queued in batches of up to [`MAX_BATCH`] spans; a
//! failed export is logged and counted, and its spans are dropped.
//!
//! Attributes follow the OpenTelemetry GenAI conventions (`gen_ai.*`) or, with
//! `format = "openinference"`, OpenInference's (`llm.*`). Never prompt text, never keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use switchyard_layers::metrics::{Counter, Family};
use switchyard_layers::request_log::{FinishedRequest, RequestSink};
use switchyard_layers::trace_context::{TraceContext, push_hex};
use tokio::sync::mpsc;

use crate::config::gateway::{OtlpFormat, OtlpTracesConfig};
use crate::http_client::HttpClient;

/// The most spans sent in one export.
pub const MAX_BATCH: usize = 512;
/// How often queued spans are sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// The most spans waiting to be sent; more are dropped.
const QUEUE: usize = 8192;
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// One finished span. Built on the request path, so it holds cheap values (shared names,
/// numbers) and is turned into JSON only by the exporting task.
#[derive(Debug)]
pub struct SpanRecord {
    trace: TraceContext,
    name: SpanName,
    /// 1 = internal, 2 = server, 3 = client (OTLP's `SpanKind`).
    kind: u8,
    start: SystemTime,
    duration: Duration,
    attributes: Vec<(&'static str, Attr)>,
    error: Option<String>,
}

/// A span's name, put together when it is encoded.
#[derive(Debug)]
enum SpanName {
    /// `METHOD /path`.
    Request(http::Method, String),
    /// `chat MODEL (PROVIDER)`.
    Call(Arc<str>, Arc<str>),
    /// A step inside a request (`auth`, `rate_limit`).
    Phase(&'static str),
}

/// An attribute value.
#[derive(Debug)]
enum Attr {
    Text(Arc<str>),
    Static(&'static str),
    Int(u64),
    Bool(bool),
}

/// Where spans go: a queue in front of the exporting task.
#[derive(Debug)]
pub struct Exporter {
    queue: mpsc::Sender<SpanRecord>,
    format: OtlpFormat,
    dropped: Arc<Counter>,
}

impl Exporter {
    /// Starts the exporting task, sending to `endpoint` with `config`'s headers through `client`.
    /// `outcomes` counts exports by result (`ok`, `error`, `dropped` spans).
    pub fn start(
        endpoint: String,
        config: &OtlpTracesConfig,
        client: HttpClient,
        outcomes: Arc<Family<Counter>>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let headers = config.extra_headers.clone();
        tokio::spawn(export_loop(rx, endpoint, headers, client, outcomes.clone()));
        Arc::new(Self {
            queue: tx,
            format: config.format,
            dropped: outcomes.with(&["dropped"]),
        })
    }

    fn record(&self, span: SpanRecord) {
        if span.trace.sampled && self.queue.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    /// Records a provider (or relay) call made within `trace` (its own span, a child of the
    /// request's).
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &self,
        trace: TraceContext,
        model: &Arc<str>,
        provider: &Arc<str>,
        stream: bool,
        start: SystemTime,
        duration: Duration,
        error: Option<String>,
    ) {
        let mut attributes = Vec::with_capacity(4);
        attributes.push(("switchyard.stream", Attr::Bool(stream)));
        match self.format {
            OtlpFormat::Opentelemetry => {
                attributes.push(("gen_ai.operation.name", Attr::Static("chat")));
                attributes.push(("gen_ai.request.model", Attr::Text(model.clone())));
                attributes.push(("gen_ai.provider.name", Attr::Text(provider.clone())));
            }
            OtlpFormat::Openinference => {
                attributes.push(("openinference.span.kind", Attr::Static("LLM")));
                attributes.push(("llm.model_name", Attr::Text(model.clone())));
                attributes.push(("llm.provider", Attr::Text(provider.clone())));
            }
        }
        self.record(SpanRecord {
            trace,
            name: SpanName::Call(model.clone(), provider.clone()),
            kind: 3,
            start,
            duration,
            attributes,
            error,
        });
    }
}

impl RequestSink for Exporter {
    fn finished(&self, r: &FinishedRequest<'_>) {
        let info = r.info;
        let mut attributes = Vec::with_capacity(12);
        attributes.push(("http.request.method", Attr::Text(r.method.as_str().into())));
        attributes.push(("url.path", Attr::Text(r.path.into())));
        attributes.push(("http.response.status_code", Attr::Int(u64::from(r.status))));
        attributes.push(("switchyard.outcome", Attr::Static(r.outcome)));
        let mut text = |key: &'static str, v: &Option<Arc<str>>| {
            if let Some(v) = v {
                attributes.push((key, Attr::Text(v.clone())));
            }
        };
        text("switchyard.function", &info.function);
        text("switchyard.variant", &info.variant);
        text("tensorzero.api_key_public_id", &info.api_key_public_id);
        let (model, provider, input, output) = match self.format {
            OtlpFormat::Opentelemetry => (
                "gen_ai.request.model",
                "gen_ai.provider.name",
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.output_tokens",
            ),
            OtlpFormat::Openinference => (
                "llm.model_name",
                "llm.provider",
                "llm.token_count.prompt",
                "llm.token_count.completion",
            ),
        };
        text(model, &info.model);
        text(provider, &info.provider);
        let (input_tokens, output_tokens) =
            info.stats.as_deref().map_or((None, None), |s| s.tokens());
        if let Some(n) = input_tokens {
            attributes.push((input, Attr::Int(n)));
        }
        if let Some(n) = output_tokens {
            attributes.push((output, Attr::Int(n)));
        }
        if info.function.is_some() && self.format == OtlpFormat::Openinference {
            attributes.push(("openinference.span.kind", Attr::Static("CHAIN")));
        }
        // The request's own steps (auth, rate limiting) are its children.
        for phase in info
            .stats
            .as_deref()
            .map(|s| s.phases())
            .unwrap_or_default()
        {
            self.record(SpanRecord {
                trace: r.trace.child(),
                name: SpanName::Phase(phase.name),
                kind: 1,
                start: phase.started_at,
                duration: phase.duration,
                attributes: Vec::new(),
                error: None,
            });
        }
        self.record(SpanRecord {
            trace: *r.trace,
            name: SpanName::Request(r.method.clone(), r.path.to_owned()),
            kind: 2,
            start: r.started_at,
            duration: r.duration,
            attributes,
            error: (r.status >= 500).then(|| format!("HTTP {}", r.status)),
        });
    }
}

async fn export_loop(
    mut rx: mpsc::Receiver<SpanRecord>,
    endpoint: String,
    headers: BTreeMap<String, String>,
    client: HttpClient,
    outcomes: Arc<Family<Counter>>,
) {
    // Wake on a clock rather than per span: a span costs the request path one queue push and
    // no task wake-up, and the exporter runs a few times a second whatever the traffic.
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) if batch.is_empty() => return,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let count = batch.len();
            let full = count == MAX_BATCH;
            // Encoding is plain CPU work: off the request workers.
            let Ok(body) = tokio::task::spawn_blocking(move || encode(&batch)).await else {
                continue;
            };
            let result =
                tokio::time::timeout(EXPORT_TIMEOUT, send(&client, &endpoint, &headers, body))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
            match result {
                Ok(()) => outcomes.with(&["ok"]).inc(),
                Err(why) => {
                    outcomes.with(&["error"]).inc();
                    tracing::warn!(endpoint = %endpoint, spans = count, error = %why, "OTLP trace export failed; spans dropped");
                }
            }
            if !full {
                break;
            }
        }
    }
}

async fn send(
    client: &HttpClient,
    endpoint: &str,
    headers: &BTreeMap<String, String>,
    body: Bytes,
) -> Result<(), String> {
    let mut request = Request::post(endpoint).header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| crate::error::error_chain(&e))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered HTTP {}", response.status()))
    }
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
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

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids in hex, 64-bit numbers as
/// strings), written straight into one buffer.
fn encode(spans: &[SpanRecord]) -> Bytes {
    let mut out = String::with_capacity(256 + spans.len() * 600);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"switchyard"}},{"key":"service.version","value":{"stringValue":""#);
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str(r#""}}]},"scopeSpans":[{"scope":{"name":"switchyard"},"spans":["#);
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"traceId":""#);
        push_hex(&mut out, &s.trace.trace_id);
        out.push_str(r#"","spanId":""#);
        push_hex(&mut out, &s.trace.span_id);
        out.push('"');
        if let Some(parent) = &s.trace.parent_id {
            out.push_str(r#","parentSpanId":""#);
            push_hex(&mut out, parent);
            out.push('"');
        }
        out.push_str(r#","name":"#);
        let name = match &s.name {
            SpanName::Request(method, path) => format!("{method} {path}"),
            SpanName::Call(model, provider) => format!("chat {model} ({provider})"),
            SpanName::Phase(name) => (*name).to_owned(),
        };
        push_str(&mut out, &name);
        let start = nanos(s.start);
        let _ = write!(
            out,
            r#","kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
            s.kind,
            start,
            start + s.duration.as_nanos()
        );
        for (j, (key, value)) in s.attributes.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(r#"{"key":"#);
            push_str(&mut out, key);
            out.push_str(r#","value":{"#);
            match value {
                Attr::Text(t) => {
                    out.push_str(r#""stringValue":"#);
                    push_str(&mut out, t);
                }
                Attr::Static(t) => {
                    out.push_str(r#""stringValue":"#);
                    push_str(&mut out, t);
                }
                Attr::Int(n) => {
                    let _ = write!(out, r#""intValue":"{n}""#);
                }
                Attr::Bool(b) => {
                    let _ = write!(out, r#""boolValue":{b}"#);
                }
            }
            out.push_str("}}");
        }
        out.push_str(r#"],"status":"#);
        match &s.error {
            None => out.push_str(r#"{"code":1}"#),
            Some(message) => {
                out.push_str(r#"{"code":2,"message":"#);
                push_str(&mut out, message);
                out.push('}');
            }
        }
        out.push('}');
    }
    out.push_str("]}]}]}");
    Bytes::from(out)
}

/// What the request log and the provider calls record spans into: forwards to the exporter
/// while the serving configuration enables export, and does nothing otherwise (it is installed
/// once, with the inbound stack; reloads switch it).
#[derive(Debug, Default)]
pub struct SpanSink {
    exporter: std::sync::OnceLock<Arc<Exporter>>,
    enabled: std::sync::atomic::AtomicBool,
}

impl SpanSink {
    /// Turns export on through `make` (called once, the first time) or off.
    pub fn configure(&self, enabled: bool, make: impl FnOnce() -> Arc<Exporter>) {
        if enabled {
            self.exporter.get_or_init(make);
        }
        self.enabled
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    fn exporter(&self) -> Option<&Exporter> {
        if self.enabled.load(std::sync::atomic::Ordering::Relaxed) {
            self.exporter.get().map(|e| e.as_ref())
        } else {
            None
        }
    }

    /// See [`Exporter::attempt`].
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &self,
        trace: TraceContext,
        model: &Arc<str>,
        provider: &Arc<str>,
        stream: bool,
        start: SystemTime,
        duration: Duration,
        error: Option<String>,
    ) {
        if let Some(e) = self.exporter() {
            e.attempt(trace, model, provider, stream, start, duration, error);
        }
    }
}

impl RequestSink for SpanSink {
    fn finished(&self, request: &FinishedRequest<'_>) {
        if let Some(e) = self.exporter() {
            e.finished(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_encode_as_otlp_json() {
        let trace = TraceContext::for_request(None).child();
        let span = SpanRecord {
            trace,
            name: SpanName::Call("m\"x".into(), "p".into()),
            kind: 3,
            start: UNIX_EPOCH + Duration::from_secs(1),
            duration: Duration::from_millis(2),
            attributes: vec![
                ("a", Attr::Text("t\n".into())),
                ("b", Attr::Int(7)),
                ("c", Attr::Bool(true)),
                ("d", Attr::Static("s")),
            ],
            error: Some("boom".into()),
        };
        let body: serde_json::Value = serde_json::from_slice(&encode(&[span])).unwrap();
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], trace.trace_id_hex());
        assert_eq!(s["parentSpanId"], trace.parent_id_hex().unwrap());
        assert_eq!(s["name"], "chat m\"x (p)");
        assert_eq!(s["startTimeUnixNano"], "1000000000");
        assert_eq!(s["endTimeUnixNano"], "1002000000");
        assert_eq!(s["attributes"][0]["value"]["stringValue"], "t\n");
        assert_eq!(s["attributes"][1]["value"]["intValue"], "7");
        assert_eq!(s["attributes"][2]["value"]["boolValue"], true);
        assert_eq!(s["status"]["code"], 2);
    }
}
