//! A provider that echoes the key it was sent: the key never reaches the client's error body,
//! the log (at debug level, with `gateway.debug` on) or an exported trace. The real binary runs
//! with its credentials and its collector from the environment.

use bytes::Bytes;
use http::Method;
use serde_json::json;
use switchyard_mock::MockProvider;

use crate::harness::{GatewayProcess, inference, send};
use crate::traces::Collector;

const STATIC_KEY: &str = "sk-echo-static-0123456789abcdef";
const DYNAMIC_KEY: &str = "sk-echo-dynamic-fedcba9876543210";

#[tokio::test]
async fn a_provider_echoing_the_key_never_gets_it_out() {
    let mock = MockProvider::start().await.unwrap();
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tensorzero.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\ndebug = true\n[gateway.export.otlp.traces]\nenabled = true\n\n\
             [models.echo]\nrouting = [\"p\"]\n[models.echo.providers.p]\ntype = \"openai\"\napi_base = \"{base}\"\nmodel_name = \"echo-key\"\napi_key_location = \"env::ECHO_KEY\"\n\n\
             [models.echo_dynamic]\nrouting = [\"p\"]\n[models.echo_dynamic.providers.p]\ntype = \"openai\"\napi_base = \"{base}\"\nmodel_name = \"echo-key\"\napi_key_location = \"dynamic::k\"\n\n\
             [models.leak]\nrouting = [\"p\"]\n[models.leak.providers.p]\ntype = \"openai\"\napi_base = \"{base}\"\nmodel_name = \"leak-key\"\napi_key_location = \"env::ECHO_KEY\"\n\n\
             [models.leak_dynamic]\nrouting = [\"p\"]\n[models.leak_dynamic.providers.p]\ntype = \"openai\"\napi_base = \"{base}\"\nmodel_name = \"leak-key\"\napi_key_location = \"dynamic::k\"\n\n\
             [embedding_models.echo]\nrouting = [\"p\"]\n[embedding_models.echo.providers.p]\ntype = \"openai\"\napi_base = \"{base}\"\nmodel_name = \"echo-key\"\napi_key_location = \"env::ECHO_KEY\"\n",
            base = mock.api_base()
        ),
    )
    .unwrap();
    let gw = GatewayProcess::start(
        &config,
        &[],
        &[
            ("ECHO_KEY", STATIC_KEY),
            ("RUST_LOG", "debug"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url.as_str()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ],
        dir.path().join("gateway.log"),
    )
    .await;
    let post = |path: &'static str, body: serde_json::Value| {
        let url = format!("{}{path}", gw.url);
        async move { send(Method::POST, &url, Bytes::from(body.to_string()), &[]).await }
    };
    let mut bodies = Vec::new();
    for stream in [false, true] {
        let mut body = inference("echo", "hi");
        body["stream"] = json!(stream);
        bodies.push(post("/inference", body).await);
    }
    let mut dynamic = inference("echo_dynamic", "hi");
    dynamic["credentials"] = json!({ "k": DYNAMIC_KEY });
    bodies.push(post("/inference", dynamic).await);
    bodies.push(
        post(
            "/openai/v1/chat/completions",
            json!({ "model": "tensorzero::model_name::echo", "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .await,
    );
    bodies.push(
        post(
            "/openai/v1/embeddings",
            json!({ "model": "tensorzero::embedding_model_name::echo", "input": "hi" }),
        )
        .await,
    );
    assert_eq!(
        mock.requests().len(),
        5,
        "every call reached the echoing provider"
    );
    for r in &bodies {
        let text = r.text();
        assert!(
            r.status.is_client_error() || r.status.is_server_error(),
            "{text}"
        );
        assert!(
            !text.contains(STATIC_KEY) && !text.contains(DYNAMIC_KEY),
            "a key in an error body: {text}"
        );
        assert!(
            text.contains("Incorrect API key provided: [redacted]"),
            "the provider's message, masked: {text}"
        );
    }
    // A provider that repeats the key in an error event inside a 200 stream: masked there too,
    // on both routes.
    let mut streams = Vec::new();
    for (model, dynamic) in [("leak", false), ("leak_dynamic", true)] {
        let mut body = inference(model, "hi");
        body["stream"] = json!(true);
        if dynamic {
            body["credentials"] = json!({ "k": DYNAMIC_KEY });
        }
        streams.push(post("/inference", body).await);
    }
    streams.push(
        post(
            "/openai/v1/chat/completions",
            json!({ "model": "tensorzero::model_name::leak", "stream": true, "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .await,
    );
    for r in &streams {
        let text = r.text();
        assert_eq!(r.status, 200, "{text}");
        assert!(
            !text.contains(STATIC_KEY) && !text.contains(DYNAMIC_KEY),
            "a key in a stream's error event: {text}"
        );
        assert!(
            text.contains("failed mid-stream for key [redacted]"),
            "the provider's mid-stream error, masked: {text}"
        );
    }
    let spans = collector.wait_for_spans(10).await;
    let exported = serde_json::to_string(&spans).unwrap();
    assert!(
        exported.contains("[redacted]"),
        "the errors were exported: {exported}"
    );
    assert!(
        !exported.contains(STATIC_KEY) && !exported.contains(DYNAMIC_KEY),
        "a key in a trace"
    );
    let logs = gw.stop();
    assert!(
        logs.contains("provider attempt"),
        "gateway.debug logs each attempt"
    );
    assert!(
        !logs.contains(STATIC_KEY) && !logs.contains(DYNAMIC_KEY),
        "a key in the log:\n{logs}"
    );
}
