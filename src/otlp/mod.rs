//! OpenTelemetry trace export (`[gateway.export.otlp.traces]`): a server span per request, an
//! internal span per step inside it (API-key check, rate-limit decisions) and a client span per
//! provider or relay call, sent to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` over OTLP/gRPC (the
//! default, as in the TensorZero Gateway) or OTLP/HTTP with protobuf or JSON bodies
//! ([`transport`]).
//!
//! Recording a span is a `try_send` on a bounded queue: a full queue (a collector that is down
//! or slow) drops spans and counts them, it never makes a request wait. A background task wakes
//! every [`FLUSH_EVERY`] and sends what is queued in batches of up to [`MAX_BATCH`] spans; a
//! failed export is logged and counted, and its spans are dropped.
//!
//! Attributes follow the OpenTelemetry GenAI conventions (`gen_ai.*`) or, with
//! `format = "openinference"`, OpenInference's (`llm.*`). Never prompt text, never keys. A
//! client can add attributes, resource attributes and export headers to its request's spans
//! with `tensorzero-otlp-traces-extra-*` headers ([`TraceExtras`]); spans that need different
//! headers or resources go out in different exports.

mod json;
mod protobuf;
pub mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use switchyard_layers::metrics::{Counter, Family};
use switchyard_layers::request_log::{FinishedRequest, RequestSink};
use switchyard_layers::trace_context::{TraceContext, TraceExtras};
use tokio::sync::mpsc;

use arc_swap::ArcSwapOption;

use crate::config::gateway::{OtlpFormat, OtlpTracesConfig};
use crate::http_client::HttpClient;
use transport::Transport;

/// The most spans sent in one export.
pub const MAX_BATCH: usize = 512;
/// How often queued spans are sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
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
    /// What the client asked to attach to its request's spans.
    extras: Option<Arc<TraceExtras>>,
}

impl SpanRecord {
    /// The attributes the client added to its request's spans.
    fn extra_attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extras
            .iter()
            .flat_map(|e| e.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Whether the two can go in one export: their requests asked for the same export headers
    /// and resource attributes (attributes are per span).
    fn shares_export_with(&self, other: &SpanRecord) -> bool {
        match (self.extras.as_deref(), other.extras.as_deref()) {
            (Some(a), Some(b)) => a.headers == b.headers && a.resources == b.resources,
            (Some(e), None) | (None, Some(e)) => e.headers.is_empty() && e.resources.is_empty(),
            (None, None) => true,
        }
    }
}

/// The spans of one export, and what their requests asked to attach to it.
struct Export<'a> {
    spans: Vec<&'a SpanRecord>,
    extras: Option<&'a TraceExtras>,
}

impl Export<'_> {
    /// The resource's attributes: ours, then the requests'.
    fn resource(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            ("service.name", "switchyard"),
            ("service.version", env!("CARGO_PKG_VERSION")),
        ]
        .into_iter()
        .chain(
            self.extras
                .iter()
                .flat_map(|e| e.resources.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
    }

    /// The headers the requests asked the export to carry.
    fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        self.extras.map_or(&[], |e| &e.headers)
    }
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

impl fmt::Display for SpanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(method, path) => write!(f, "{method} {path}"),
            Self::Call(model, provider) => write!(f, "chat {model} ({provider})"),
            Self::Phase(name) => f.write_str(name),
        }
    }
}

/// An attribute value.
#[derive(Debug)]
enum Attr {
    Text(Arc<str>),
    Static(&'static str),
    Int(u64),
    Double(f64),
    Bool(bool),
}

/// Where spans go: a queue in front of the exporting task.
#[derive(Debug)]
pub struct Exporter {
    queue: mpsc::Sender<SpanRecord>,
    settings: ExportSettings,
    format: OtlpFormat,
    dropped: Arc<Counter>,
}

impl Exporter {
    /// Starts the exporting task for `settings` (sending through `client` for OTLP/HTTP).
    /// `outcomes` counts exports by result (`ok`, `error`, `dropped` spans). Fails, saying
    /// why, on an endpoint or configured header that cannot be used.
    pub fn start(
        settings: ExportSettings,
        client: &HttpClient,
        outcomes: Arc<Family<Counter>>,
    ) -> Result<Arc<Self>, String> {
        let transport = Transport::new(
            settings.protocol,
            &settings.endpoint,
            &settings.config.extra_headers,
            client,
        )?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(export_loop(rx, transport, outcomes.clone()));
        Ok(Arc::new(Self {
            queue: tx,
            format: settings.config.format,
            settings,
            dropped: outcomes.with(&["dropped"]),
        }))
    }

    fn record(&self, span: SpanRecord) {
        if span.trace.sampled && self.queue.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    /// Records a provider (or relay) call.
    pub fn attempt(&self, call: CallSpan<'_>) {
        let CallSpan {
            trace,
            extras,
            model,
            provider,
            stream,
            start,
            duration,
            error,
        } = call;
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
            error: error.map(|e| e.to_string()),
            extras: extras.cloned(),
        });
    }
}

/// A provider or relay call made for a request, as its span records it.
pub struct CallSpan<'a> {
    /// The call's own span (a child of the request's).
    pub trace: TraceContext,
    /// What the request asked to attach to its spans.
    pub extras: Option<&'a Arc<TraceExtras>>,
    /// The model.
    pub model: &'a Arc<str>,
    /// The provider (`tensorzero::relay` for a relayed call).
    pub provider: &'a Arc<str>,
    /// Whether the call streams.
    pub stream: bool,
    /// When it started.
    pub start: SystemTime,
    /// How long it took (to the first chunk for a stream).
    pub duration: Duration,
    /// Why it failed; turned into text only when export is on.
    pub error: Option<&'a dyn fmt::Display>,
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
        if let Some(cost) = info.stats.as_deref().and_then(|s| s.cost()) {
            attributes.push(("switchyard.cost", Attr::Double(cost)));
        }
        if let Some(stats) = info.stats.as_deref() {
            if stats.hedged() {
                attributes.push(("switchyard.hedged", Attr::Bool(true)));
            }
            let skipped = stats.skipped();
            if !skipped.is_empty() {
                attributes.push((
                    "switchyard.skipped_providers",
                    Attr::Text(Arc::from(skipped.join(","))),
                ));
            }
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
                extras: r.trace_extras.cloned(),
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
            extras: r.trace_extras.cloned(),
        });
    }
}

async fn export_loop(
    mut rx: mpsc::Receiver<SpanRecord>,
    transport: Transport,
    outcomes: Arc<Family<Counter>>,
) {
    let transport = Arc::new(transport);
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
            let full = batch.len() == MAX_BATCH;
            // Encoding is plain CPU work: off the request workers.
            let protobuf = transport.protocol().is_protobuf();
            let Ok(exports) = tokio::task::spawn_blocking(move || encode(&batch, protobuf)).await
            else {
                continue;
            };
            for export in exports {
                let result = tokio::time::timeout(
                    EXPORT_TIMEOUT,
                    transport.send(export.body, &export.headers),
                )
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
                match result {
                    Ok(()) => outcomes.with(&["ok"]).inc(),
                    Err(why) => {
                        outcomes.with(&["error"]).inc();
                        tracing::warn!(protocol = %transport.protocol(), spans = export.spans, error = %why, "OTLP trace export failed; spans dropped");
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
}

/// One export, encoded: its body, the headers its requests asked for, how many spans it holds.
struct EncodedExport {
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    spans: usize,
}

/// Encodes `batch` as one export per distinct set of requested headers and resource attributes
/// (usually just one).
fn encode(batch: &[SpanRecord], protobuf: bool) -> Vec<EncodedExport> {
    let mut exports: Vec<Export<'_>> = Vec::new();
    for span in batch {
        match exports
            .iter_mut()
            .find(|e| e.spans[0].shares_export_with(span))
        {
            Some(export) => export.spans.push(span),
            None => exports.push(Export {
                spans: vec![span],
                extras: span.extras.as_deref(),
            }),
        }
    }
    exports
        .into_iter()
        .map(|export| EncodedExport {
            body: if protobuf {
                protobuf::encode(&export)
            } else {
                json::encode(&export)
            },
            headers: export.headers().to_vec(),
            spans: export.spans.len(),
        })
        .collect()
}

fn nanos(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

/// What an exporter was started with; a reload that changes none of it keeps the exporter
/// (and the spans in its queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSettings {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub endpoint: String,
    /// The transport.
    pub protocol: transport::Protocol,
    /// `[gateway.export.otlp.traces]`.
    pub config: OtlpTracesConfig,
}

/// What the request log and the provider calls record spans into: the exporter of the serving
/// configuration, or nothing while export is off. It is installed once, with the inbound
/// stack; a configuration that is swapped in sets it ([`SpanSink::set`]).
#[derive(Debug, Default)]
pub struct SpanSink {
    current: ArcSwapOption<Exporter>,
}

impl SpanSink {
    /// Exports through `exporter` from now on (`None`: export off). An exporter that is
    /// replaced sends what it has queued, then stops.
    pub fn set(&self, exporter: Option<Arc<Exporter>>) {
        self.current.store(exporter);
    }

    /// The exporter in use, if it was started with `settings`.
    pub fn reusable(&self, settings: &ExportSettings) -> Option<Arc<Exporter>> {
        self.current.load_full().filter(|e| e.settings == *settings)
    }

    /// Records a provider (or relay) call, while export is on.
    pub fn attempt(&self, call: CallSpan<'_>) {
        if let Some(e) = &*self.current.load() {
            e.attempt(call);
        }
    }
}

impl RequestSink for SpanSink {
    fn finished(&self, request: &FinishedRequest<'_>) {
        if let Some(e) = &*self.current.load() {
            e.finished(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(extras: Option<Arc<TraceExtras>>) -> SpanRecord {
        SpanRecord {
            trace: TraceContext::for_request(None).child(),
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
            extras,
        }
    }

    #[test]
    fn spans_encode_as_otlp_json() {
        let span = span(None);
        let trace = span.trace;
        let [export] = &encode(&[span], false)[..] else {
            panic!("one export")
        };
        let body: serde_json::Value = serde_json::from_slice(&export.body).unwrap();
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

    #[test]
    fn requests_that_ask_for_different_headers_or_resources_get_their_own_exports() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "tensorzero-otlp-traces-extra-header-x-tenant",
            HeaderValue::from_static("a"),
        );
        headers.insert(
            "tensorzero-otlp-traces-extra-attribute-user.id",
            HeaderValue::from_static("u1"),
        );
        let tenant_a = TraceExtras::from_headers(&headers);
        headers.insert(
            "tensorzero-otlp-traces-extra-attribute-user.id",
            HeaderValue::from_static("u2"),
        );
        // Same headers, another attribute: the same export.
        let tenant_a_other_user = TraceExtras::from_headers(&headers);
        headers.insert(
            "tensorzero-otlp-traces-extra-header-x-tenant",
            HeaderValue::from_static("b"),
        );
        let tenant_b = TraceExtras::from_headers(&headers);
        let batch = [
            span(None),
            span(tenant_a),
            span(tenant_b),
            span(tenant_a_other_user),
            span(None),
        ];
        let exports = encode(&batch, false);
        let summary: Vec<(usize, Vec<String>)> = exports
            .iter()
            .map(|e| {
                let values = e
                    .headers
                    .iter()
                    .map(|(_, v)| v.to_str().unwrap().to_owned())
                    .collect();
                (e.spans, values)
            })
            .collect();
        assert_eq!(
            summary,
            vec![(2, vec![]), (2, vec!["a".into()]), (1, vec!["b".into()])]
        );
        let body: serde_json::Value = serde_json::from_slice(&exports[1].body).unwrap();
        let spans = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
        let user = |i: usize| spans[i]["attributes"][4]["value"]["stringValue"].clone();
        assert_eq!((user(0), user(1)), ("u1".into(), "u2".into()));
    }
}
