//! OpenTelemetry trace export (`[gateway.export.otlp.traces]`): a server span per request and a
//! client span per provider or relay call, sent to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` over
//! OTLP/HTTP with the JSON encoding.
//!
//! Recording a span is a `try_send` on a bounded queue: a full queue (a collector that is down
//! or slow) drops spans and counts them, it never makes a request wait. A background task sends
//! batches (up to [`MAX_BATCH`] spans, or whatever arrived within [`FLUSH_EVERY`]); a failed
//! export is logged and counted, and the spans are dropped.
//!
//! Attributes follow the OpenTelemetry GenAI conventions (`gen_ai.*`) or, with
//! `format = "openinference"`, OpenInference's (`llm.*`). Never prompt text, never keys.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use serde_json::{Value, json};
use switchyard_layers::metrics::{Counter, Family};
use switchyard_layers::request_log::{FinishedRequest, RequestSink};
use switchyard_layers::trace_context::TraceContext;
use tokio::sync::mpsc;

use crate::config::gateway::{OtlpFormat, OtlpTracesConfig};
use crate::http_client::HttpClient;

/// The most spans sent in one export.
pub const MAX_BATCH: usize = 512;
/// How long spans wait for a batch to fill.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The most spans waiting to be sent; more are dropped.
const QUEUE: usize = 8192;
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// One finished span.
#[derive(Debug)]
pub struct SpanRecord {
    trace: TraceContext,
    name: String,
    /// 2 = server, 3 = client (OTLP's `SpanKind`).
    kind: u8,
    start: SystemTime,
    duration: Duration,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
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
        model: &str,
        provider: &str,
        stream: bool,
        start: SystemTime,
        duration: Duration,
        error: Option<String>,
    ) {
        let mut attributes = vec![("switchyard.stream", json!(stream))];
        match self.format {
            OtlpFormat::Opentelemetry => {
                attributes.push(("gen_ai.operation.name", json!("chat")));
                attributes.push(("gen_ai.request.model", json!(model)));
                attributes.push(("gen_ai.provider.name", json!(provider)));
            }
            OtlpFormat::Openinference => {
                attributes.push(("openinference.span.kind", json!("LLM")));
                attributes.push(("llm.model_name", json!(model)));
                attributes.push(("llm.provider", json!(provider)));
            }
        }
        self.record(SpanRecord {
            trace,
            name: format!("chat {model} ({provider})"),
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
        let mut attributes = vec![
            ("http.request.method", json!(r.method.as_str())),
            ("url.path", json!(r.path)),
            ("http.response.status_code", json!(r.status)),
            ("switchyard.outcome", json!(r.outcome)),
        ];
        let text = |v: &Option<Arc<str>>| v.as_deref().map(|s| json!(s));
        let (input, output) = info.stats.as_deref().map_or((None, None), |s| s.tokens());
        let genai = [
            ("switchyard.function", text(&info.function)),
            ("switchyard.variant", text(&info.variant)),
            (
                "tensorzero.api_key_public_id",
                text(&info.api_key_public_id),
            ),
        ];
        let conventions: [(&'static str, Option<Value>); 4] = match self.format {
            OtlpFormat::Opentelemetry => [
                ("gen_ai.request.model", text(&info.model)),
                ("gen_ai.provider.name", text(&info.provider)),
                ("gen_ai.usage.input_tokens", input.map(|n| json!(n))),
                ("gen_ai.usage.output_tokens", output.map(|n| json!(n))),
            ],
            OtlpFormat::Openinference => [
                ("llm.model_name", text(&info.model)),
                ("llm.provider", text(&info.provider)),
                ("llm.token_count.prompt", input.map(|n| json!(n))),
                ("llm.token_count.completion", output.map(|n| json!(n))),
            ],
        };
        attributes.extend(
            genai
                .into_iter()
                .chain(conventions)
                .filter_map(|(k, v)| v.map(|v| (k, v))),
        );
        if info.function.is_some() && self.format == OtlpFormat::Openinference {
            attributes.push(("openinference.span.kind", json!("CHAIN")));
        }
        self.record(SpanRecord {
            trace: *r.trace,
            name: format!("{} {}", r.method, r.path),
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
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(first) = rx.recv().await else { return };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let body = encode(&batch);
        let count = batch.len();
        batch.clear();
        let result = tokio::time::timeout(EXPORT_TIMEOUT, send(&client, &endpoint, &headers, body))
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        match result {
            Ok(()) => outcomes.with(&["ok"]).inc(),
            Err(why) => {
                outcomes.with(&["error"]).inc();
                tracing::warn!(endpoint = %endpoint, spans = count, error = %why, "OTLP trace export failed; spans dropped");
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

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

fn attribute_value(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_u64() || n.is_i64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    }
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids in hex, times as strings).
fn encode(spans: &[SpanRecord]) -> Bytes {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace.trace_id_hex(),
                "spanId": s.trace.span_id_hex(),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.start + s.duration),
                "attributes": s.attributes.iter().map(|(k, v)| json!({ "key": k, "value": attribute_value(v) })).collect::<Vec<_>>(),
                "status": match &s.error {
                    None => json!({ "code": 1 }),
                    Some(message) => json!({ "code": 2, "message": message }),
                },
            });
            if let Some(parent) = s.trace.parent_id_hex() {
                span["parentSpanId"] = json!(parent);
            }
            span
        })
        .collect();
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "switchyard" } },
                { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } }
            ] },
            "scopeSpans": [{ "scope": { "name": "switchyard" }, "spans": spans }]
        }]
    });
    Bytes::from(body.to_string())
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
        model: &str,
        provider: &str,
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
