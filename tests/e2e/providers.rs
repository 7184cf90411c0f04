//! Provider behaviour: errors, fallback, credentials, timeouts, broken streams, cancellation.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Harness, inference, last_request};

fn model(name: &str, provider_model: &str) -> String {
    format!(
        "[models.{name}]\nrouting = [\"p\"]\n[models.{name}.providers.p]\ntype = \"openai\"\napi_base = \"{{mock}}\"\nmodel_name = \"{provider_model}\"\napi_key_location = \"none\"\n"
    )
}

#[tokio::test]
async fn provider_5xx_names_the_provider_and_its_message() {
    let h = Harness::start(&model("broken", "error-503")).await;
    let r = h.post("/inference", &inference("broken", "hi")).await;
    assert_eq!(r.status, 502);
    let e = r.error();
    assert!(
        e.starts_with("All variants failed with errors: broken: All model providers failed"),
        "{e}"
    );
    assert!(
        e.contains("openai provider `p` (HTTP 503): mock provider error 503"),
        "{e}"
    );
}

#[tokio::test]
async fn provider_garbage_and_truncation_are_reported() {
    let h = Harness::start(&format!(
        "{}{}",
        model("junk", "garbage"),
        model("cut", "break")
    ))
    .await;
    let r = h.post("/inference", &inference("junk", "hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let e = r.error();
    assert!(
        e.contains("not an OpenAI chat completion") && e.contains("definitely not json"),
        "{e}"
    );
    let r = h.post("/inference", &inference("cut", "hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let e = r.error();
    assert!(e.contains("provider `p`"), "{e}");
}

#[tokio::test]
async fn unreachable_provider_is_named() {
    let refusing = crate::harness::REFUSING;
    let port = refusing.rsplit(':').next().unwrap();
    let cfg = format!(
        "[models.gone]\nrouting = [\"p\"]\n[models.gone.providers.p]\ntype = \"openai\"\napi_base = \"http://{refusing}/v1\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n"
    );
    let h = Harness::start(&cfg).await;
    let r = h.post("/inference", &inference("gone", "hi")).await;
    assert_eq!(r.status, 502);
    let e = r.error();
    assert!(
        e.contains("could not reach") && e.contains(&port.to_string()),
        "{e}"
    );
}

#[tokio::test]
async fn falls_back_to_the_next_provider() {
    let cfg = r#"
[models.m]
routing = ["first", "second"]
[models.m.providers.first]
type = "openai"
api_base = "{mock}"
model_name = "error-500"
api_key_location = "none"
[models.m.providers.second]
type = "vllm"
api_base = "{mock}"
model_name = "good"
api_key_location = "none"
"#;
    let h = Harness::start(cfg).await;
    let r = h.post("/inference", &inference("m", "hi")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let models: Vec<_> = h
        .mock
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, ["error-500", "good"]);
    // vLLM takes `max_tokens`, not `max_completion_tokens`.
    let mut body = inference("m", "hi");
    body["params"] = json!({ "chat_completion": { "max_tokens": 5 } });
    h.post("/inference", &body).await;
    assert_eq!(last_request(&h.mock).body["max_tokens"], 5);
}

#[tokio::test]
async fn keys_from_files_and_dynamic_credentials_go_to_the_provider_only() {
    // (Keys from `env::` are covered by the CLI tests, which can set a child's environment.)
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("openai.key");
    std::fs::write(&key_file, "sk-from-file-123\n").unwrap();
    let cfg = r#"
[models.env]
routing = ["p"]
[models.env.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "m"
api_key_location = "path::KEY_FILE"

[models.dyn]
routing = ["p"]
[models.dyn.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "m"
api_key_location = "dynamic::customer_key"
"#
    .replace("KEY_FILE", key_file.to_str().unwrap());
    let h = Harness::start(&cfg).await;
    let r = crate::harness::send(
        http::Method::POST,
        &h.url("/inference"),
        inference("env", "hi").to_string().into(),
        &[("authorization", "Bearer client-secret-must-not-leak")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        last_request(&h.mock).header("authorization"),
        Some("Bearer sk-from-file-123")
    );

    let r = h.post("/inference", &inference("dyn", "hi")).await;
    assert_eq!(
        r.status, 400,
        "a missing dynamic credential is the client's to fix"
    );
    assert!(
        r.error()
            .contains("Dynamic api key `customer_key` is missing"),
        "{}",
        r.error()
    );

    let mut body = inference("dyn", "hi");
    body["credentials"] = json!({ "customer_key": "sk-dynamic-456" });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200);
    assert!(
        !String::from_utf8_lossy(&r.body).contains("sk-dynamic-456"),
        "credentials are never echoed"
    );
    assert_eq!(
        last_request(&h.mock).header("authorization"),
        Some("Bearer sk-dynamic-456")
    );

    let r = h.post("/openai/v1/chat/completions", &json!({
        "model": "tensorzero::model_name::dyn", "messages": [{ "role": "user", "content": "x" }],
        "tensorzero::credentials": { "customer_key": "sk-openai-route-789" }
    })).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        last_request(&h.mock).header("authorization"),
        Some("Bearer sk-openai-route-789")
    );
    for req in h.mock.requests() {
        assert!(
            req.headers
                .iter()
                .all(|(_, v)| !v.contains("client-secret-must-not-leak"))
        );
    }
}

#[tokio::test]
async fn azure_uses_its_url_and_api_key_header() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("azure.key");
    std::fs::write(&key_file, "azure-key-1").unwrap();
    let cfg = r#"
[models.az]
routing = ["a"]
[models.az.providers.a]
type = "azure"
endpoint = "{mock}"
deployment_id = "my-deployment"
api_key_location = "path::KEY_FILE"
"#
    .replace("KEY_FILE", key_file.to_str().unwrap());
    let h = Harness::start(&cfg).await;
    let r = h.post("/inference", &inference("az", "hi")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sent = last_request(&h.mock);
    assert!(
        sent.path
            .contains("/openai/deployments/my-deployment/chat/completions?api-version="),
        "{}",
        sent.path
    );
    assert_eq!(sent.header("api-key"), Some("azure-key-1"));
    assert_eq!(sent.header("authorization"), None);
}

#[tokio::test]
async fn provider_timeouts_fall_back() {
    let cfg = r#"
[models.m]
routing = ["slow", "fast"]
[models.m.providers.slow]
type = "openai"
api_base = "{mock}"
model_name = "slow-3000"
api_key_location = "none"
timeouts = { non_streaming = { total_ms = 200 }, streaming = { ttft_ms = 200 } }
[models.m.providers.fast]
type = "openai"
api_base = "{mock}"
model_name = "fast"
api_key_location = "none"
"#;
    let h = Harness::start(cfg).await;
    let r = h.post("/inference", &inference("m", "hi")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["content"][0]["text"], "mock reply to: hi");

    let only_slow = cfg.replace("routing = [\"slow\", \"fast\"]", "routing = [\"slow\"]").replace("[models.m.providers.fast]\ntype = \"openai\"\napi_base = \"{mock}\"\nmodel_name = \"fast\"\napi_key_location = \"none\"\n", "");
    let h = Harness::start(&only_slow).await;
    let r = h.post("/inference", &inference("m", "hi")).await;
    assert_eq!(r.status, 502);
    assert!(
        r.error()
            .contains("timed out due to configured `non_streaming.total_ms` timeout (200 ms)"),
        "{}",
        r.error()
    );
}

#[tokio::test]
async fn stream_errors_before_the_first_chunk_are_plain_errors() {
    let h = Harness::start(&model("bad", "error-500")).await;
    let mut body = inference("bad", "hi");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let h = Harness::start(&format!(
        "{}{}",
        model("cut", "break"),
        model("err", "stream-error")
    ))
    .await;
    for (name, expect) in [
        ("cut", "broke off"),
        ("err", "mock provider failed mid-stream"),
    ] {
        let mut body = inference(name, "hi");
        body["stream"] = json!(true);
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 200);
        let events = r.events();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let error = &events[events.len() - 2];
        assert!(
            error.contains("\"error\"") && error.contains(expect),
            "{name}: {events:?}"
        );

        let r = h.post("/openai/v1/chat/completions", &json!({
            "model": format!("tensorzero::model_name::{name}"), "stream": true, "messages": [{ "role": "user", "content": "x" }]
        })).await;
        let events = r.events();
        let error: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert!(
            error["error"]["message"].as_str().unwrap().contains(expect),
            "{error}"
        );
    }
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_provider_call() {
    let h = Harness::start(&model("drip", "drip-50")).await;
    let mut body = inference("drip", "hi");
    body["stream"] = json!(true);
    let client = switchyard::http_client::build();
    let req = http::Request::post(h.url("/inference"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let mut res_body = res.into_body();
    // Read a few events, then go away.
    crate::harness::read_frames(&mut res_body, 3).await;
    drop(res_body);
    drop(client);
    // The 200-chunk stream takes 10 s to finish; the mock sees it abandoned well before that.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while h.mock.aborted_streams() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        h.mock.aborted_streams(),
        1,
        "the upstream stream was not cancelled"
    );
    assert_eq!(h.mock.completed_streams(), 0);
}

#[tokio::test]
async fn client_disconnect_while_waiting_cancels_the_provider_call() {
    let h = Harness::start(&model("slow", "slow-5000")).await;
    let client = switchyard::http_client::build();
    let req = http::Request::post(h.url("/inference"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            inference("slow", "hi").to_string(),
        )))
        .unwrap();
    // Give up after the request has reached the provider.
    let _ = tokio::time::timeout(Duration::from_millis(500), client.request(req)).await;
    drop(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while h.mock.cancelled_requests() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.mock.requests().len(), 1);
    assert_eq!(
        h.mock.cancelled_requests(),
        1,
        "the provider call outlived the client"
    );
}

fn with_variant(model_name: &str, variant_extra: &str) -> String {
    format!(
        "{}\n[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"m\"\n{variant_extra}\n",
        model("m", model_name)
    )
}

#[tokio::test]
async fn retries_honour_retry_after_when_it_fits() {
    let h = Harness::start(&with_variant(
        "busy-300",
        "retries = { num_retries = 1, max_delay_s = 1 }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(h.mock.requests().len(), 2, "one 429, then one retry");

    // When the provider asks for a longer wait than max_delay_s allows, the gateway gives up
    // at once rather than retry early.
    let h = Harness::start(&with_variant(
        "busy-5000",
        "retries = { num_retries = 3, max_delay_s = 1 }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(h.mock.requests().len(), 1);
    assert!(r.error().contains("HTTP 429"), "{}", r.error());
}

#[tokio::test]
async fn server_errors_are_retried_and_bad_requests_are_not() {
    let h = Harness::start(&with_variant(
        "flaky",
        "retries = { num_retries = 2, max_delay_s = 0.05 }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(h.mock.requests().len(), 2);

    let h = Harness::start(&with_variant(
        "error-400",
        "retries = { num_retries = 2, max_delay_s = 0.05 }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(h.mock.requests().len(), 1, "a 400 is not retried");
    assert!(r.error().contains("HTTP 400"), "{}", r.error());

    let h = Harness::start(&with_variant(
        "error-500",
        "retries = { num_retries = 2, max_delay_s = 0.05 }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(h.mock.requests().len(), 3);
    assert!(
        r.error().contains("All retries failed with errors:"),
        "{}",
        r.error()
    );
}

#[tokio::test]
async fn streams_are_retried_until_the_first_chunk() {
    let h = Harness::start(&with_variant(
        "flaky",
        "retries = { num_retries = 1, max_delay_s = 0.05 }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "stream": true, "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json_events().last().unwrap()["finish_reason"], "stop");
    assert_eq!(h.mock.requests().len(), 2);
}

#[tokio::test]
async fn a_silent_stream_fails_with_an_idle_timeout_event() {
    let cfg = r#"
[models.m]
routing = ["p"]
[models.m.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "drip-1000"
api_key_location = "none"
timeouts = { streaming = { idle_ms = 150 } }
"#;
    let h = Harness::start(cfg).await;
    let mut body = inference("m", "x");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200);
    let events = r.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let error = &events[events.len() - 2];
    assert!(
        error.contains("timed out due to configured `streaming.idle_ms` timeout (150 ms)"),
        "{events:?}"
    );
}

#[tokio::test]
async fn streaming_total_ms_bounds_the_whole_stream() {
    let cfg = r#"
[models.m]
routing = ["p"]
timeouts = { streaming = { ttft_ms = 2000, total_ms = 400 } }
[models.m.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "drip-50"
api_key_location = "none"
"#;
    let h = Harness::start(cfg).await;
    let mut body = inference("m", "x");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    let events = r.events();
    let error = &events[events.len() - 2];
    assert!(
        error.contains("Model m timed out due to configured `streaming.total_ms` timeout (400 ms)"),
        "{error}"
    );
    assert!(events.len() > 3, "some chunks arrived before the deadline");
}

#[tokio::test]
async fn extra_body_and_headers_follow_the_documented_precedence() {
    let cfg = r#"
[models.m]
routing = ["p", "q"]
[models.m.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "error-500"
api_key_location = "none"
extra_body = [{ pointer = "/level", value = "provider" }, { pointer = "/provider_only", value = 1 }]
extra_headers = [{ name = "x-level", value = "provider" }]
[models.m.providers.q]
type = "openai"
api_base = "{mock}"
model_name = "good"
api_key_location = "none"
extra_body = [{ pointer = "/level", value = "provider-q" }, { pointer = "/temperature", delete = true }]

[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "m"
temperature = 0.5
extra_body = [{ pointer = "/level", value = "variant" }, { pointer = "/variant_only", value = true }]
extra_headers = [{ name = "x-level", value = "variant" }, { name = "x-variant", value = "yes" }]
"#;
    let h = Harness::start(cfg).await;
    let body = json!({
        "function_name": "f",
        "input": { "messages": [{ "role": "user", "content": "x" }] },
        "extra_body": [
            { "variant_name": "v", "pointer": "/request_variant", "value": "applies" },
            { "variant_name": "other", "pointer": "/request_other_variant", "value": "must not apply" },
            { "model_name": "m", "provider_name": "p", "pointer": "/level", "value": "request-for-p" }
        ],
        "extra_headers": [{ "name": "x-variant", "delete": true }]
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sent = h.mock.requests();
    let (p, q) = (&sent[0], &sent[1]);
    // Provider p: the request's entry for p wins over the provider's, which wins over the variant's.
    assert_eq!(p.body["level"], "request-for-p");
    assert_eq!(p.body["provider_only"], 1);
    assert_eq!(p.body["variant_only"], true);
    assert_eq!(p.body["request_variant"], "applies");
    assert!(p.body.get("request_other_variant").is_none());
    assert_eq!(p.header("x-level"), Some("provider"));
    assert_eq!(p.header("x-variant"), None, "the request deleted it");
    // Provider q: its own entries, and the variant's temperature deleted.
    assert_eq!(q.body["level"], "provider-q");
    assert!(q.body.get("temperature").is_none());
    assert!(q.body.get("provider_only").is_none());
}

#[tokio::test]
async fn variant_timeouts_bound_all_retries_together() {
    let cfg = with_variant(
        "slow-400",
        "retries = { num_retries = 5, max_delay_s = 0.01 }\ntimeouts = { non_streaming = { total_ms = 1000 } }",
    );
    let h = Harness::start(&cfg.replace(
        "[models.m.providers.p]",
        "[models.m.providers.p]\ntimeouts = { non_streaming = { total_ms = 300 } }",
    ))
    .await;
    let r = h.post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert!(
        r.error().contains(
            "Variant `v` timed out due to configured `non_streaming.total_ms` timeout (1000 ms)"
        ),
        "{}",
        r.error()
    );
    let attempts = h.mock.requests().len();
    assert!(
        (2..6).contains(&attempts),
        "retries ran until the variant's limit: {attempts} attempts"
    );
}

#[tokio::test]
async fn implicit_tool_json_mode_works_with_every_native_format() {
    let cfg = "[models.openai]\nrouting = [\"p\"]\n[models.openai.providers.p]\ntype = \"openai\"\napi_base = \"{mock}\"\nmodel_name = \"tool\"\napi_key_location = \"none\"\n\n\
               [models.anthropic]\nrouting = [\"p\"]\n[models.anthropic.providers.p]\ntype = \"anthropic\"\napi_base = \"{mock}\"\nmodel_name = \"tool\"\napi_key_location = \"{key}\"\n\n\
               [models.gemini]\nrouting = [\"p\"]\n[models.gemini.providers.p]\ntype = \"google_ai_studio_gemini\"\napi_base = \"{mock}\"\nmodel_name = \"tool\"\napi_key_location = \"{key}\"\n";
    let h = Harness::start(cfg).await;
    for model in ["openai", "anthropic", "gemini"] {
        for stream in [false, true] {
            let mut body = inference(model, "answer in JSON");
            body["params"] = json!({ "chat_completion": { "json_mode": "implicit_tool" } });
            body["output_schema"] =
                json!({ "type": "object", "properties": { "city": { "type": "string" } } });
            body["stream"] = json!(stream);
            let r = h.post("/inference", &body).await;
            assert_eq!(
                r.status,
                200,
                "{model}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let (text, finish) = if stream {
                let events = r.json_events();
                let text: String = events
                    .iter()
                    .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
                    .filter_map(|b| b["text"].as_str().map(str::to_owned))
                    .collect();
                (text, events.last().unwrap()["finish_reason"].clone())
            } else {
                let v = r.json();
                assert_eq!(v["content"].as_array().unwrap().len(), 1, "{model}: {v}");
                (
                    v["content"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    v["finish_reason"].clone(),
                )
            };
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
                json!({ "city": "Paris" }),
                "{model} (stream {stream}): {text}"
            );
            assert_eq!(finish, "stop", "{model} (stream {stream})");
        }
    }
    // Each provider was made to call `respond`, whose parameters are the output schema.
    let sent = h.mock.requests();
    let anthropic = sent.iter().find(|r| r.path.ends_with("/messages")).unwrap();
    assert_eq!(anthropic.body["tool_choice"]["name"], "respond");
    assert_eq!(
        anthropic.body["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    let gemini = sent
        .iter()
        .find(|r| r.path.contains(":generateContent"))
        .unwrap();
    assert_eq!(
        gemini.body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"],
        json!(["respond"])
    );
    let openai = sent
        .iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .unwrap();
    assert_eq!(openai.body["tool_choice"]["function"]["name"], "respond");
    assert!(openai.body.get("response_format").is_none());
}

#[tokio::test]
async fn json_mode_through_the_openai_route_reaches_each_native_format() {
    let cfg = "[models.anthropic]\nrouting = [\"p\"]\n[models.anthropic.providers.p]\ntype = \"anthropic\"\napi_base = \"{mock}\"\nmodel_name = \"claude\"\napi_key_location = \"{key}\"\n\n\
               [models.gemini]\nrouting = [\"p\"]\n[models.gemini.providers.p]\ntype = \"google_ai_studio_gemini\"\napi_base = \"{mock}\"\nmodel_name = \"gem\"\napi_key_location = \"{key}\"\n";
    let h = Harness::start(cfg).await;
    let schema = json!({ "type": "object", "properties": { "answer": { "type": "integer" } }, "required": ["answer"] });
    for model in ["anthropic", "gemini"] {
        let body = json!({
            "model": format!("tensorzero::model_name::{model}"),
            "messages": [{ "role": "user", "content": "answer in JSON" }],
            "response_format": { "type": "json_schema", "json_schema": { "name": "answer", "schema": schema, "strict": true } }
        });
        let r = h.post("/openai/v1/chat/completions", &body).await;
        assert_eq!(
            r.status,
            200,
            "{model}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let sent = last_request(&h.mock);
        match model {
            // Anthropic has no JSON switch: the schema goes into the system prompt.
            "anthropic" => {
                let system = sent.body["system"].as_str().unwrap_or_default();
                assert!(system.contains("\"required\":[\"answer\"]"), "{system}");
            }
            _ => {
                assert_eq!(
                    sent.body["generationConfig"]["responseMimeType"],
                    "application/json"
                );
                assert_eq!(
                    sent.body["generationConfig"]["responseJsonSchema"]["required"],
                    json!(["answer"])
                );
            }
        }
    }
}

#[tokio::test]
async fn provider_type_default_api_base_reroutes_shorthands_and_configured_providers() {
    let h = Harness::start(
        "[provider_types.openai.defaults]\napi_base = \"{mock}\"\napi_key_location = \"none\"\n\n\
         [provider_types.anthropic.defaults]\napi_base = \"{mock}\"\napi_key_location = \"{key}\"\n\n\
         [models.plain]\nrouting = [\"p\"]\n[models.plain.providers.p]\ntype = \"openai\"\nmodel_name = \"configured\"\n",
    )
    .await;
    for (model, seen) in [
        ("openai::gpt-5-mini", "gpt-5-mini"),
        ("plain", "configured"),
        ("anthropic::claude-haiku", "claude-haiku"),
    ] {
        let r = h.post("/inference", &inference(model, "hi")).await;
        assert_eq!(
            r.status,
            200,
            "{model}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(last_request(&h.mock).body["model"], seen);
    }
}

#[tokio::test]
async fn each_mock_refuses_what_its_real_api_refuses() {
    // A field the real API does not know, slipped in with `extra_body`: the mock answers as
    // the API would (its status, its shape, the field named), and the gateway passes that on.
    let cfg = "[models.anthropic]\nrouting = [\"p\"]\n[models.anthropic.providers.p]\ntype = \"anthropic\"\napi_base = \"{mock}\"\nmodel_name = \"claude\"\napi_key_location = \"{key}\"\n\n\
               [models.gemini]\nrouting = [\"p\"]\n[models.gemini.providers.p]\ntype = \"google_ai_studio_gemini\"\napi_base = \"{mock}\"\nmodel_name = \"gem\"\napi_key_location = \"{key}\"\n\n\
               [models.gemini_nokey]\nrouting = [\"p\"]\n[models.gemini_nokey.providers.p]\ntype = \"google_ai_studio_gemini\"\napi_base = \"{mock}\"\nmodel_name = \"gem\"\napi_key_location = \"none\"\n";
    let h = Harness::start(cfg).await;
    let with_extra = |model: &str, pointer: &str| {
        let mut body = inference(model, "hi");
        body["extra_body"] = json!([{ "pointer": pointer, "value": 1 }]);
        body
    };
    for (model, pointer, expected) in [
        (
            "anthropic",
            "/frobnicate",
            "HTTP 400): frobnicate: Extra inputs are not permitted",
        ),
        ("anthropic", "/max_tokens", ""),
        (
            "gemini",
            "/frobnicate",
            "HTTP 400): Invalid JSON payload received. Unknown name \"frobnicate\": Cannot find field.",
        ),
        (
            "gemini",
            "/generationConfig/frobnicate",
            "Unknown name \"frobnicate\" at 'generation_config'",
        ),
    ] {
        let r = h.post("/inference", &with_extra(model, pointer)).await;
        if expected.is_empty() {
            // A valid value for a known field is accepted.
            assert_eq!(r.status, 200, "{model} {pointer}: {}", r.text());
            continue;
        }
        assert_eq!(r.status, 502, "{model} {pointer}: {}", r.text());
        assert!(
            r.error().contains(expected),
            "{model} {pointer}: {}",
            r.error()
        );
    }
    let r = h.post("/inference", &inference("gemini_nokey", "hi")).await;
    assert!(
        r.error()
            .contains("HTTP 403): Method doesn't allow unregistered callers"),
        "{}",
        r.error()
    );
    // What the mock refused never counted as an answer: every request was recorded.
    assert_eq!(h.mock.requests().len(), 5);
}

#[tokio::test]
async fn the_global_outbound_timeout_bounds_every_exchange_and_says_so() {
    let config = format!(
        "[gateway]\nglobal_outbound_http_timeout_ms = 300\n{}\n\
         [embedding_models.slow]\nrouting = [\"p\"]\n[embedding_models.slow.providers.p]\ntype = \"openai\"\napi_base = \"{{mock}}\"\nmodel_name = \"slow-2000\"\napi_key_location = \"none\"\n",
        model("slow", "slow-2000")
    );
    let h = Harness::start(&config).await;
    let r = h.post("/inference", &inference("slow", "hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.error()
            .contains("no answer within `gateway.global_outbound_http_timeout_ms` (300 ms)"),
        "{}",
        r.error()
    );
    let r = h
        .post(
            "/openai/v1/embeddings",
            &json!({ "model": "tensorzero::embedding_model_name::slow", "input": "hi" }),
        )
        .await;
    assert!(r.status.is_server_error(), "{}", r.text());
    let e = r.text();
    assert!(
        e.contains("no answer from `")
            && e.contains("within `gateway.global_outbound_http_timeout_ms` (300 ms)"),
        "{e}"
    );
}
