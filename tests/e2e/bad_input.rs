//! Every bad input gets a clear error with the right status, and nothing reaches the provider.

use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::harness::{BASIC, Harness, inference, send};

#[tokio::test]
async fn malformed_json_says_where() {
    let h = Harness::start(BASIC).await;
    let r = send(
        Method::POST,
        &h.url("/inference"),
        Bytes::from_static(b"{\"model_name\": \"mock\",\n \"input\": {"),
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    let e = r.error();
    assert!(e.contains("Malformed JSON") && e.contains("line 2"), "{e}");
    let r = send(
        Method::POST,
        &h.url("/openai/v1/chat/completions"),
        Bytes::from_static(b"{oops}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("column 2"), "{}", r.error());
    let r = send(Method::POST, &h.url("/inference"), Bytes::new(), &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("empty"), "{}", r.error());
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn wrong_types_and_unknown_fields_name_the_field() {
    let h = Harness::start(BASIC).await;
    let mut body = inference("mock", "hi");
    body["stream"] = json!("yes");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("`stream`") && r.error().contains("expected a boolean"),
        "{}",
        r.error()
    );

    let mut body = inference("mock", "hi");
    body["params"] = json!({ "chat_completion": { "temperature": "hot" } });
    let r = h.post("/inference", &body).await;
    assert!(
        r.error().contains("params.chat_completion.temperature"),
        "{}",
        r.error()
    );

    let mut body = inference("mock", "hi");
    body["modle_name"] = json!("x");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("unknown field `modle_name`"),
        "{}",
        r.error()
    );

    let body = json!({ "model_name": "mock", "input": { "messages": [{ "role": "user", "content": [{ "type": "txet", "text": "x" }] }] } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("input.messages[0].content[0]") && r.error().contains("txet"),
        "{}",
        r.error()
    );
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn unknown_model_and_function_are_named() {
    let h = Harness::start(BASIC).await;
    let r = h.post("/inference", &inference("gpt-9", "hi")).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("'gpt-9'"), "{}", r.error());
    let r = h
        .post("/inference", &inference("nosuchprovider::m", "hi"))
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .post(
            "/inference",
            &json!({ "function_name": "ghost", "input": { "messages": [] } }),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "Unknown function: ghost");
    let r = h
        .post(
            "/openai/v1/chat/completions",
            &json!({ "model": "tensorzero::model_name::gpt-9", "messages": [] }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("gpt-9"));
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn exactly_one_target() {
    let h = Harness::start(BASIC).await;
    let both = json!({ "model_name": "mock", "function_name": "f", "input": { "messages": [] } });
    let r = h.post("/inference", &both).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("Only one of"), "{}", r.error());
    let neither = json!({ "input": { "messages": [] } });
    let r = h.post("/inference", &neither).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("Either `function_name` or `model_name`"),
        "{}",
        r.error()
    );
    let pinned = json!({ "model_name": "mock", "variant_name": "v", "input": { "messages": [] } });
    assert_eq!(h.post("/inference", &pinned).await.status, 400);
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn reserved_tags_are_refused() {
    let h = Harness::start(BASIC).await;
    let mut body = inference("mock", "hi");
    body["tags"] = json!({ "tensorzero::api_key_public_id": "spoofed" });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("tensorzero::"), "{}", r.error());
    let r = h.post("/openai/v1/chat/completions", &json!({
        "model": "tensorzero::model_name::mock", "messages": [{ "role": "user", "content": "x" }],
        "tensorzero::tags": { "tensorzero::x": "y" }
    })).await;
    assert_eq!(r.status, 400);
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn episode_ids_must_be_uuid_v7() {
    let h = Harness::start(BASIC).await;
    let mut body = inference("mock", "hi");
    body["episode_id"] = json!(uuid::Uuid::new_v4());
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("UUIDv7"), "{}", r.error());
    let id = uuid::Uuid::now_v7();
    body["episode_id"] = json!(id);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.json()["episode_id"], json!(id));
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start(BASIC).await;
    // Declared too large: refused from the header alone. Not one byte of the body is sent, so
    // a gateway that tried to read it would answer nothing (or a 408 after the body timeout)
    // before the deadline, never a 413.
    let addr = h.url("").trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(
            b"POST /inference HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("no answer before the body: the gateway waited for it")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_request_body_bytes"), "{answer}");
    let limit = switchyard::config::gateway::LimitsConfig::default().max_request_body_bytes;
    let big = Bytes::from(vec![b' '; limit + 1]);
    let r = send(Method::POST, &h.url("/inference"), big, &[]).await;
    assert_eq!(r.status, 413);
    assert!(r.error().contains(&limit.to_string()), "{}", r.error());
    assert!(
        r.error().contains("gateway.limits.max_request_body_bytes"),
        "{}",
        r.error()
    );
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = Harness::start(BASIC).await;
    let r = h.get("/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "Route not found: GET /nope");
    let r = h.get("/openai/v1/files").await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"].is_string(),
        "OpenAI-shaped under /openai/v1"
    );
    let r = h.get("/inference").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
}

#[tokio::test]
async fn template_arguments_without_templates_are_refused_clearly() {
    let h = Harness::start(BASIC).await;
    let body = json!({ "model_name": "mock", "input": { "messages": [{ "role": "user", "content": [{ "type": "template", "name": "t", "arguments": {} }] }] } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("template arguments"), "{}", r.error());
    assert!(h.mock.requests().is_empty());
}

mod properties {
    //! Arbitrary JSON bodies on every route: each gets an answer (a JSON error when refused),
    //! never a 500 or a dropped connection, and the gateway serves normally afterwards.

    use bytes::Bytes;
    use http::Method;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::{Map, Value, json};

    use crate::harness::{BASIC, Harness, inference, send};

    /// Field names the routes know, so random objects reach deep into the parsers.
    const KEYS: &[&str] = &[
        "model_name",
        "function_name",
        "variant_name",
        "episode_id",
        "input",
        "messages",
        "system",
        "role",
        "content",
        "type",
        "text",
        "arguments",
        "name",
        "id",
        "raw_name",
        "raw_arguments",
        "result",
        "stream",
        "params",
        "chat_completion",
        "max_tokens",
        "temperature",
        "tags",
        "tools",
        "additional_tools",
        "allowed_tools",
        "tool_choice",
        "parameters",
        "function",
        "output_schema",
        "credentials",
        "extra_body",
        "extra_headers",
        "pointer",
        "value",
        "delete",
        "model",
        "model_provider_name",
        "variant_name",
        "response_format",
        "json_schema",
        "schema",
        "tensorzero::tags",
        "tensorzero::episode_id",
        "tensorzero::extra_body",
        "tensorzero::credentials",
        "stream_options",
        "include_usage",
        "image_url",
        "url",
        "file",
        "mime_type",
        "data",
        "tool_calls",
        "tool_call_id",
        "dimensions",
        "encoding_format",
        "n",
        "stop",
        "seed",
        "top_p",
        "parallel_tool_calls",
        "include_original_response",
        "dryrun",
        "tensorzero::dryrun",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "mock",
                "tensorzero::model_name::mock",
                "tensorzero::function_name::f",
                "user",
                "assistant",
                "system",
                "text",
                "tool_call",
                "tool_result",
                "raw_text",
                "thought",
                "file",
                "image_url",
                "json_schema",
                "json_object",
                "auto",
                "none",
                "required",
                "object",
                "string",
                "dynamic::x",
                "openai::m",
                "",
                "tensorzero::embedding_model_name::mock",
                "0196c1d1-7de4-7a41-a7a4-1c2e5b7a0c11",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            "\\PC{0,20}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                            "[a-z_:]{1,12}",
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// A valid body for the route with random fields laid over it, or random JSON outright.
    fn body(base: Value) -> impl Strategy<Value = Value> {
        prop_oneof![
            value(),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 0..4).prop_map(
                move |fields| {
                    let mut body = base.clone();
                    for (k, v) in fields {
                        body[k] = v;
                    }
                    body
                }
            ),
        ]
    }

    #[test]
    fn no_body_on_any_route_gets_a_500_or_an_empty_reply() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = format!(
            "{BASIC}\n[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"mock\"\n\
             [embedding_models.mock]\nrouting = [\"p\"]\n[embedding_models.mock.providers.p]\ntype = \"openai\"\napi_base = \"{{mock}}\"\nmodel_name = \"e\"\napi_key_location = \"none\"\n"
        );
        let h = rt.block_on(Harness::start(&config));
        let routes = [
            ("/inference", inference("mock", "hi")),
            (
                "/openai/v1/chat/completions",
                json!({ "model": "tensorzero::model_name::mock", "messages": [{ "role": "user", "content": "hi" }] }),
            ),
            (
                "/openai/v1/embeddings",
                json!({ "model": "tensorzero::embedding_model_name::mock", "input": "hi" }),
            ),
        ];
        for (path, base) in routes {
            let mut runner = TestRunner::new(Config {
                cases: 200,
                failure_persistence: None,
                ..Config::default()
            });
            let url = h.url(path);
            runner
                .run(&body(base), |body| {
                    let r =
                        rt.block_on(send(Method::POST, &url, Bytes::from(body.to_string()), &[]));
                    prop_assert!(r.status != 500, "{path} {body}: 500 {}", r.text());
                    if r.status.as_u16() >= 400 {
                        prop_assert!(
                            !r.error().is_empty(),
                            "{path} {body}: {} without an error message: {}",
                            r.status,
                            r.text()
                        );
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let r = rt.block_on(h.post("/inference", &inference("mock", "still here")));
        assert_eq!(r.status, 200);
    }
}
