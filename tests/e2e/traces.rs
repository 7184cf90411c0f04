//! OTLP trace export: an edge and a relay export to a small in-test collector (OTLP/HTTP,
//! JSON); one call through both tiers is one trace whose spans nest across them, with the
//! relay's rate-limit decision as a step inside its request. A client's
//! `tensorzero-otlp-traces-extra-*` headers reach its spans and their exports. (OTLP/gRPC, the
//! default, and OTLP/HTTP protobuf are checked against the reference protobuf and gRPC
//! implementations in tests/python/test_traces.py.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use switchyard::config::LoadedConfig;
use switchyard::{Environment, RunningGateway};
use switchyard_mock::MockProvider;

use crate::harness::{inference, send};

/// A collector that keeps every export it receives.
pub struct Collector {
    pub url: String,
    exports: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exports: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let store = exports.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            async move {
                                let auth = req
                                    .headers()
                                    .get("x-collector-token")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let value: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                store.lock().unwrap().push((auth, value));
                                Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                    Bytes::from_static(b"{}"),
                                )))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector {
            url: format!("http://{addr}/v1/traces"),
            exports,
        }
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        self.exports
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, e)| {
                e["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    pub async fn wait_for_spans(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            v.get("stringValue")
                .or_else(|| v.get("intValue"))
                .or_else(|| v.get("boolValue"))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .unwrap_or(Value::Null)
}

async fn gateway(toml: &str, endpoint: &str) -> (RunningGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, toml).unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let env = Environment {
        otlp_traces_endpoint: Some(endpoint.to_owned()),
        otlp_traces_protocol: Some("http/json".into()),
        ..Environment::default()
    };
    let gw = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (gw, dir)
}

/// A model `mock` served by `mock`'s OpenAI route.
fn mock_model(mock: &MockProvider) -> String {
    format!(
        "[models.mock]\nrouting = [\"openai\"]\n[models.mock.providers.openai]\ntype = \"openai\"\napi_base = \"{}\"\nmodel_name = \"mock-model\"\napi_key_location = \"none\"\n",
        mock.api_base()
    )
}

const EXPORT: &str = r#"
[gateway.export.otlp.traces]
enabled = true
extra_headers = { "x-collector-token" = "t0ken" }
"#;

#[tokio::test]
async fn one_call_through_edge_and_relay_is_one_trace() {
    let collector = Collector::start().await;
    let mock = MockProvider::start().await.unwrap();
    let relay_toml = format!(
        "{EXPORT}\n[rate_limiting]\nbackend = \"memory\"\n[[rate_limiting.rules]]\nalways = true\nmodel_inferences_per_hour = 1000\n{}",
        mock_model(&mock)
    );
    let (relay, _d1) = gateway(&relay_toml, &collector.url).await;
    let edge_toml = format!(
        "{EXPORT}\n[gateway.relay]\ngateway_url = \"{}\"\n[models.mock]\nrouting = [\"x\"]\n[models.mock.providers.x]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n",
        relay.url()
    );
    let (edge, _d2) = gateway(&edge_toml, &collector.url).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = send(
        Method::POST,
        &format!("{}/inference", edge.url()),
        Bytes::from(inference("mock", "a secret prompt").to_string()),
        &[("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let spans = collector.wait_for_spans(5).await;
    assert_eq!(spans.len(), 5, "{spans:#?}");
    assert!(spans.iter().all(|s| s["traceId"] == trace_id), "{spans:#?}");
    let server: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    let client: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    assert_eq!((server.len(), client.len()), (2, 2));
    // The edge's request span continues the client's; its call to the relay is its child; the
    // relay's request span is that call's child; the relay's provider call is the last.
    let edge_request = server
        .iter()
        .find(|s| s["parentSpanId"] == "00f067aa0ba902b7")
        .expect("the edge's request span");
    let edge_call = client
        .iter()
        .find(|s| s["parentSpanId"] == edge_request["spanId"])
        .expect("the edge's call to the relay");
    assert_eq!(attr(edge_call, "gen_ai.provider.name"), "tensorzero::relay");
    let relay_request = server
        .iter()
        .find(|s| s["parentSpanId"] == edge_call["spanId"])
        .expect("the relay's request span");
    let relay_call = client
        .iter()
        .find(|s| s["parentSpanId"] == relay_request["spanId"])
        .expect("the relay's provider call");
    assert_eq!(attr(relay_call, "gen_ai.provider.name"), "openai");
    // The relay's rate-limit decision is a step inside its request.
    let internal: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 1).collect();
    assert_eq!(internal.len(), 1, "{spans:#?}");
    assert_eq!(internal[0]["name"], "rate_limit");
    assert_eq!(internal[0]["parentSpanId"], relay_request["spanId"]);
    assert_eq!(attr(relay_call, "gen_ai.request.model"), "mock");
    assert_eq!(attr(edge_request, "gen_ai.request.model"), "mock");
    assert_eq!(
        attr(edge_request, "switchyard.function"),
        "tensorzero::default"
    );
    assert!(attr(edge_request, "gen_ai.usage.output_tokens").is_string());
    assert_eq!(attr(edge_request, "http.response.status_code"), "200");
    assert_eq!(edge_request["name"], "POST /inference");
    // The extra headers reach the collector; the prompt never does.
    let exports = collector.exports.lock().unwrap().clone();
    assert!(exports.iter().all(|(token, _)| token == "t0ken"));
    assert!(
        !exports
            .iter()
            .any(|(_, e)| e.to_string().contains("a secret prompt"))
    );
}

#[tokio::test]
async fn a_dead_collector_never_fails_a_request_and_is_counted() {
    let mock = MockProvider::start().await.unwrap();
    let endpoint = format!("http://{}/v1/traces", crate::harness::REFUSING);
    let toml = format!("{EXPORT}\n{}", mock_model(&mock));
    let (gw, _d) = gateway(&toml, &endpoint).await;
    for _ in 0..3 {
        let r = send(
            Method::POST,
            &format!("{}/inference", gw.url()),
            Bytes::from(inference("mock", "x").to_string()),
            &[],
        )
        .await;
        assert_eq!(r.status, 200);
    }
    // The failed export is counted (it happens after the flush interval).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = send(
            Method::GET,
            &format!("{}/metrics", gw.url()),
            Bytes::new(),
            &[],
        )
        .await;
        if metrics
            .text()
            .contains("switchyard_otlp_exports_total{outcome=\"error\"}")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{}", metrics.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A collector that accepts connections and reads what it is sent, but never answers.
async fn stalled_collector() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    count.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{addr}/v1/traces"), received)
}

#[tokio::test]
async fn a_stalled_collector_never_holds_a_request_and_its_overflow_is_counted() {
    let mock = MockProvider::start().await.unwrap();
    let (endpoint, received) = stalled_collector().await;
    let toml = format!("{EXPORT}\n{}", mock_model(&mock));
    let (gw, _d) = gateway(&toml, &endpoint).await;
    let url = format!("{}/inference", gw.url());
    // One client for thousands of requests (a new one per request costs more than the call).
    let client = switchyard::http_client::build();
    let ask = || {
        let request = Request::post(&url)
            .body(Full::new(Bytes::from(inference("mock", "x").to_string())))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status();
            response.into_body().collect().await.unwrap();
            status
        }
    };
    assert_eq!(ask().await, 200);
    // The first export reaches the collector, which never answers it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no export reached the collector");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // With that export pending, requests keep being answered, until the span queue is full
    // and its overflow is dropped and counted (the exporter holds one batch at a time).
    let mut answered = 1;
    loop {
        let batch = futures_util::future::join_all((0..200).map(|_| ask())).await;
        assert!(
            batch.iter().all(|s| *s == 200),
            "a request failed while the collector stalled"
        );
        answered += batch.len();
        let dropped = crate::harness::metric(
            &gw.url(),
            "switchyard_otlp_exports_total{outcome=\"dropped\"}",
        )
        .await;
        if dropped > 0.0 {
            break;
        }
        assert!(
            answered < 20_000,
            "no span dropped after {answered} requests"
        );
    }
    let metrics = send(
        Method::GET,
        &format!("{}/metrics", gw.url()),
        Bytes::new(),
        &[],
    )
    .await;
    assert!(
        !metrics
            .text()
            .contains("switchyard_otlp_exports_total{outcome=\"ok\"}"),
        "no export can have succeeded: the collector never answers"
    );
}

#[tokio::test]
async fn openinference_attributes_and_a_missing_endpoint_is_a_start_up_error() {
    let collector = Collector::start().await;
    let mock = MockProvider::start().await.unwrap();
    let toml = format!(
        "[gateway.export.otlp.traces]\nenabled = true\nformat = \"openinference\"\n{}",
        mock_model(&mock)
    );
    let (gw, _d) = gateway(&toml, &collector.url).await;
    let r = send(
        Method::POST,
        &format!("{}/inference", gw.url()),
        Bytes::from(inference("mock", "x").to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let spans = collector.wait_for_spans(2).await;
    let call = spans
        .iter()
        .find(|s| s["kind"] == 3)
        .expect("a provider call");
    assert_eq!(attr(call, "openinference.span.kind"), "LLM");
    assert_eq!(attr(call, "llm.model_name"), "mock");
    let request = spans.iter().find(|s| s["kind"] == 2).unwrap();
    assert!(
        attr(request, "llm.token_count.completion").is_string(),
        "{request}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, "[gateway.export.otlp.traces]\nenabled = true\n").unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let err = match switchyard::start(&loaded, SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(_) => panic!("started without an endpoint"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{err}");
}

#[tokio::test]
async fn client_headers_add_export_headers_span_attributes_and_resource_attributes() {
    let collector = Collector::start().await;
    let mock = MockProvider::start().await.unwrap();
    let toml = format!("{EXPORT}\n{}", mock_model(&mock));
    let (gw, _d) = gateway(&toml, &collector.url).await;
    let url = format!("{}/inference", gw.url());
    let body = || Bytes::from(inference("mock", "x").to_string());
    let tagged = send(
        Method::POST,
        &url,
        body(),
        &[
            (
                "tensorzero-otlp-traces-extra-header-x-collector-token",
                "tenant-7",
            ),
            ("tensorzero-otlp-traces-extra-attribute-user.id", "u-42"),
            (
                "tensorzero-otlp-traces-extra-resource-deployment.environment",
                "staging",
            ),
        ],
    )
    .await;
    assert_eq!(tagged.status, 200, "{}", tagged.text());
    let plain = send(Method::POST, &url, body(), &[]).await;
    assert_eq!(plain.status, 200);
    assert_eq!(collector.wait_for_spans(4).await.len(), 4);

    let exports = collector.exports.lock().unwrap().clone();
    // One request's spans may be flushed in more than one export (the exporter sends every
    // 100 ms): gather every export sent with each token.
    let exports_for = |token: &str| {
        let found: Vec<Value> = exports
            .iter()
            .filter(|(t, _)| t == token)
            .map(|(_, e)| e.clone())
            .collect();
        assert!(
            !found.is_empty(),
            "no export with token {token}: {exports:#?}"
        );
        found
    };
    // The request's own header wins over the configured one, for its spans only.
    let tenant = exports_for("tenant-7");
    let configured = exports_for("t0ken");
    let resource = |e: &Value| e["resourceSpans"][0]["resource"].clone();
    for export in &tenant {
        assert_eq!(attr(&resource(export), "deployment.environment"), "staging");
        assert_eq!(attr(&resource(export), "service.name"), "switchyard");
    }
    for export in &configured {
        assert_eq!(
            attr(&resource(export), "deployment.environment"),
            Value::Null
        );
    }
    let spans = |exports: &[Value]| -> Vec<Value> {
        exports
            .iter()
            .flat_map(|e| {
                e["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect()
    };
    let tagged_spans = spans(&tenant);
    assert_eq!(tagged_spans.len(), 2, "the request and its provider call");
    assert!(tagged_spans.iter().all(|s| attr(s, "user.id") == "u-42"));
    assert!(
        spans(&configured)
            .iter()
            .all(|s| attr(s, "user.id").is_null())
    );
}

#[tokio::test]
async fn unusable_export_settings_are_start_up_errors_that_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    let start = |config: &str, endpoint: &str, protocol: Option<&str>| {
        std::fs::write(&path, config).unwrap();
        let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
        let env = Environment {
            otlp_traces_endpoint: Some(endpoint.into()),
            otlp_traces_protocol: protocol.map(Into::into),
            ..Environment::default()
        };
        async move {
            match switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env).await
            {
                Ok(_) => panic!("started"),
                Err(e) => e.to_string(),
            }
        }
    };
    let enabled = "[gateway.export.otlp.traces]\nenabled = true\n";
    let err = start(enabled, "http://127.0.0.1:4317", Some("thrift")).await;
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is `thrift`"),
        "{err}"
    );
    let err = start(enabled, "collector:4317", None).await;
    assert!(err.contains("needs a scheme and a host"), "{err}");
    let err = start(enabled, "ftp://collector:4317", None).await;
    assert!(err.contains("must be http or https"), "{err}");
    let bad_header = "[gateway.export.otlp.traces]\nenabled = true\nextra_headers = { \"bad header\" = \"x\" }\n";
    let err = start(bad_header, "http://127.0.0.1:4317", None).await;
    assert!(
        err.contains("extra_headers: `bad header` is not a valid header name"),
        "{err}"
    );
}
