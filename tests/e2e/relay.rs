//! Two tiers, as in the seed's relay guide: an edge that holds no provider key relays model
//! calls to a relay that injects its own; `skip_relay` models call providers from the edge.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::json;
use switchyard_mock::MockProvider;

use crate::harness::{gateway, inference, key_file, send};

/// The relay: owns the provider key (from a file), falls back from a failing provider.
const RELAY: &str = r#"
[models.mock]
routing = ["openai"]
[models.mock.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "path::{relay_key}"

[models.fallback]
routing = ["broken", "slow", "good"]
[models.fallback.providers.broken]
type = "openai"
api_base = "{mock}"
model_name = "error-503"
api_key_location = "none"
[models.fallback.providers.slow]
type = "openai"
api_base = "{mock}"
model_name = "slow-3000"
api_key_location = "none"
timeouts = { non_streaming = { total_ms = 200 } }
[models.fallback.providers.good]
type = "openai"
api_base = "{mock}"
model_name = "good"
api_key_location = "none"

[models.customer]
routing = ["openai"]
[models.customer.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "customer"
api_key_location = "dynamic::customer_key"

[models.drip]
routing = ["openai"]
[models.drip.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "drip-50"
api_key_location = "none"

[models.json]
routing = ["openai"]
[models.json.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "json"
api_key_location = "none"

[models.tool]
routing = ["openai"]
[models.tool.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "tool"
api_key_location = "none"

[embedding_models.embed]
routing = ["down", "up"]
[embedding_models.embed.providers.down]
type = "openai"
api_base = "{mock}"
model_name = "error-503"
api_key_location = "none"
[embedding_models.embed.providers.up]
type = "openai"
api_base = "{mock}"
model_name = "embed-model"
api_key_location = "path::{relay_key}"
"#;

/// The edge: relays everything except `local`; its providers name keys it does not have.
const EDGE: &str = r#"
[gateway.relay]
gateway_url = "{relay}"

[models.mock]
routing = ["openai"]
[models.mock.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "edge-must-not-call-this"
api_key_location = "env::SWITCHYARD_EDGE_HAS_NO_SUCH_KEY"

[models.fallback]
routing = ["x"]
[models.fallback.providers.x]
type = "openai"
model_name = "x"
api_key_location = "env::SWITCHYARD_EDGE_HAS_NO_SUCH_KEY"

[models.customer]
routing = ["x"]
[models.customer.providers.x]
type = "openai"
model_name = "x"

[models.drip]
routing = ["x"]
[models.drip.providers.x]
type = "openai"
model_name = "x"

[models.local]
routing = ["openai"]
skip_relay = true
[models.local.providers.openai]
type = "openai"
api_base = "{mock}"
model_name = "local-model"
api_key_location = "path::{edge_key}"

[functions.chat]
type = "chat"
[functions.chat.variants.v]
type = "chat_completion"
model = "mock"
max_tokens = 64
extra_body = [{ pointer = "/from_edge_variant", value = true }]

"#;

/// What the two-tier tests add to the edge: a templated json function and an embedding
/// model, whose providers the edge cannot call.
const EDGE_FUNCTIONS: &str = r#"
[models.json]
routing = ["x"]
[models.json.providers.x]
type = "openai"
model_name = "x"
api_key_location = "env::SWITCHYARD_EDGE_HAS_NO_SUCH_KEY"

[functions.templated]
type = "json"
user_schema = "{templates}/user.json"
output_schema = "{templates}/answer.json"
[functions.templated.variants.v]
type = "chat_completion"
model = "json"
user_template = "{templates}/user.minijinja"
json_mode = "strict"

[models.tool]
routing = ["x"]
[models.tool.providers.x]
type = "openai"
model_name = "x"
api_key_location = "env::SWITCHYARD_EDGE_HAS_NO_SUCH_KEY"

[tools.get_weather]
description = "The weather in a city."
parameters = "{templates}/weather.json"

[functions.assistant]
type = "chat"
tools = ["get_weather"]
[functions.assistant.variants.v]
type = "chat_completion"
model = "tool"

[functions.locate]
type = "json"
output_schema = "{templates}/weather.json"
[functions.locate.variants.implicit]
type = "chat_completion"
model = "tool"
json_mode = "implicit_tool"

[functions.ensemble]
type = "chat"
[functions.ensemble.variants.c1]
type = "chat_completion"
model = "mock"
[functions.ensemble.variants.c2]
type = "chat_completion"
model = "mock"
[functions.ensemble.variants.mon]
type = "experimental_mixture_of_n"
candidates = ["c1", "c2"]
[functions.ensemble.variants.mon.fuser]
model = "mock"

[embedding_models.embed]
routing = ["x"]
[embedding_models.embed.providers.x]
type = "openai"
model_name = "x"
api_key_location = "env::SWITCHYARD_EDGE_HAS_NO_SUCH_KEY"
"#;

struct Tiers {
    mock: MockProvider,
    relay: switchyard::RunningGateway,
    edge: switchyard::RunningGateway,
    _dirs: Vec<tempfile::TempDir>,
}

async fn tiers() -> Tiers {
    let mock = MockProvider::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let relay_key = key_file(&keys, "relay.key", "sk-relay-key");
    let edge_key = key_file(&keys, "edge.key", "sk-edge-key");
    crate::harness::write_files(
        &keys,
        &[
            (
                "user.json",
                r#"{"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}"#,
            ),
            (
                "answer.json",
                r#"{"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}"#,
            ),
            ("user.minijinja", "Topic: {{ topic }}"),
            (
                "weather.json",
                r#"{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"#,
            ),
        ],
    );
    let templates = keys.path().to_str().unwrap().to_owned();
    let base = mock.api_base();
    let (relay, d1) = gateway(RELAY, &[("{mock}", &base), ("{relay_key}", &relay_key)]).await;
    let relay_url = relay.url();
    let (edge, d2) = gateway(
        &format!("{EDGE}{EDGE_FUNCTIONS}"),
        &[
            ("{mock}", &base),
            ("{relay}", &relay_url),
            ("{edge_key}", &edge_key),
            ("{templates}", &templates),
        ],
    )
    .await;
    Tiers {
        mock,
        relay,
        edge,
        _dirs: vec![keys, d1, d2],
    }
}

async fn post(
    gw: &switchyard::RunningGateway,
    path: &str,
    body: &serde_json::Value,
) -> crate::harness::Reply {
    send(
        Method::POST,
        &format!("{}{path}", gw.url()),
        Bytes::from(body.to_string()),
        &[],
    )
    .await
}

#[tokio::test]
async fn the_edge_has_no_key_and_the_relay_injects_its_own() {
    let t = tiers().await;
    let r = post(&t.edge, "/inference", &inference("mock", "via relay")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["content"][0]["text"], "mock reply to: via relay");
    assert_eq!(v["variant_name"], "mock");
    let seen = t.mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body["model"], "mock-model",
        "the relay's provider was called, not the edge's"
    );
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-relay-key"));
}

#[tokio::test]
async fn skip_relay_models_use_the_edges_own_key() {
    let t = tiers().await;
    let r = post(&t.edge, "/inference", &inference("local", "direct")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = t.mock.requests();
    assert_eq!(seen[0].body["model"], "local-model");
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-edge-key"));
}

#[tokio::test]
async fn dynamic_credentials_reach_the_provider_through_the_relay() {
    let t = tiers().await;
    let mut body = inference("customer", "mine");
    body["credentials"] = json!({ "customer_key": "sk-customer-1" });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        t.mock.requests()[0].header("authorization"),
        Some("Bearer sk-customer-1")
    );

    // Without it, the relay's 400 reaches the client as a 400 that names the credential.
    let r = post(&t.edge, "/inference", &inference("customer", "mine")).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let e = r.error();
    assert!(
        e.contains("Error forwarding request in relay mode: HTTP Error (status code 400)"),
        "{e}"
    );
    assert!(
        e.contains("Dynamic api key `customer_key` is missing"),
        "{e}"
    );
}

#[tokio::test]
async fn the_relay_falls_back_on_5xx_and_timeouts() {
    let t = tiers().await;
    let r = post(&t.edge, "/inference", &inference("fallback", "x")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let models: Vec<String> = t
        .mock
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, ["error-503", "slow-3000", "good"]);
}

#[tokio::test]
async fn streaming_through_the_relay_uses_the_edges_ids() {
    let t = tiers().await;
    let mut body = inference("mock", "stream me");
    body["stream"] = json!(true);
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200);
    let events = r.json_events();
    let text: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "mock reply to: stream me");
    let last = events.last().unwrap();
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["usage"]["output_tokens"], 5);
    let ids: std::collections::BTreeSet<String> = events
        .iter()
        .map(|e| e["inference_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1);

    // And through the OpenAI route with the usage chunk.
    let r = post(&t.edge, "/openai/v1/chat/completions", &json!({
        "model": "tensorzero::model_name::mock", "stream": true, "stream_options": { "include_usage": true },
        "messages": [{ "role": "user", "content": "hi" }]
    })).await;
    let events = r.json_events();
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn variant_and_request_extra_body_are_forwarded_and_applied_by_the_relay() {
    let t = tiers().await;
    let body = json!({
        "function_name": "chat",
        "input": { "messages": [{ "role": "user", "content": "x" }] },
        "extra_body": [
            { "model_name": "mock", "provider_name": "openai", "pointer": "/from_request", "value": 7 },
            { "model_name": "other", "pointer": "/not_for_us", "value": 1 }
        ],
        "tags": { "team": "search" }
    });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sent = &t.mock.requests()[0].body;
    assert_eq!(sent["from_edge_variant"], true);
    assert_eq!(sent["from_request"], 7);
    assert!(sent.get("not_for_us").is_none());
    assert_eq!(
        sent["max_tokens"],
        serde_json::Value::Null,
        "openai type sends max_completion_tokens"
    );
    assert_eq!(sent["max_completion_tokens"], 64);
}

#[tokio::test]
async fn the_wire_request_to_the_relay_follows_the_reference() {
    // A mock provider as the "relay" records exactly what the edge sends (and answers 404).
    let mock = MockProvider::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let edge_key = key_file(&keys, "k", "sk-edge");
    let edge = EDGE.replace(
        "gateway_url = \"{relay}\"",
        "gateway_url = \"{relay}\"\napi_key_location = \"dynamic::relay_key\"",
    );
    let prefix = format!("http://{}/team-a/", mock.addr);
    let (gw, _d) = gateway(
        &edge,
        &[
            ("{relay}", &prefix),
            ("{mock}", &mock.api_base()),
            ("{edge_key}", &edge_key),
        ],
    )
    .await;
    let body = json!({
        "model_name": "mock",
        "episode_id": uuid::Uuid::now_v7(),
        "input": { "system": "sys", "messages": [
            { "role": "user", "content": "hello" },
            { "role": "assistant", "content": [{ "type": "tool_call", "id": "c1", "name": "t", "arguments": "{}" }] },
            { "role": "user", "content": [{ "type": "tool_result", "id": "c1", "name": "t", "result": "ok" }] }
        ] },
        "stream": false,
        "params": { "chat_completion": { "temperature": 0.4, "max_tokens": 9 } },
        "tags": { "user_id": "u-1" },
        "credentials": { "customer_key": "sk-c", "relay_key": "sk-t0-relay" },
        "additional_tools": [{ "name": "t", "description": "d", "parameters": { "type": "object" } }],
        "tool_choice": "required"
    });
    let r = post(&gw, "/inference", &body).await;
    // The mock answers 404 to /inference: the relay's status and message reach the client.
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error()
            .contains("HTTP Error (status code 404): unknown route on the mock provider"),
        "{}",
        r.error()
    );
    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    let req = &sent[0];
    assert_eq!(
        req.path, "/team-a/inference",
        "the path prefix of gateway_url is kept"
    );
    assert_eq!(req.header("authorization"), Some("Bearer sk-t0-relay"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let b = &req.body;
    assert_eq!(b["function_name"], serde_json::Value::Null);
    assert_eq!(b["model_name"], "mock");
    assert_eq!(
        b["episode_id"],
        serde_json::Value::Null,
        "the relay makes its own episode"
    );
    assert_eq!(b["variant_name"], serde_json::Value::Null);
    assert_eq!(b["internal"], false);
    assert_eq!(b["stream"], false);
    assert_eq!(b["input"]["system"], "sys");
    assert_eq!(
        b["input"]["messages"][1]["content"][0],
        json!({ "type": "tool_call", "id": "c1", "name": "t", "arguments": "{}" })
    );
    assert_eq!(
        b["input"]["messages"][2]["content"][0],
        json!({ "type": "tool_result", "id": "c1", "name": "t", "result": "ok" })
    );
    assert_eq!(b["params"]["chat_completion"]["temperature"], 0.4);
    assert_eq!(b["params"]["chat_completion"]["max_tokens"], 9);
    assert_eq!(b["params"]["chat_completion"]["json_mode"], "off");
    assert_eq!(b["tags"], json!({ "user_id": "u-1" }));
    assert_eq!(
        b["credentials"],
        json!({ "customer_key": "sk-c", "relay_key": "sk-t0-relay" })
    );
    assert_eq!(b["additional_tools"][0]["name"], "t");
    assert_eq!(b["tool_choice"], "required");
    drop(keys);
}

#[tokio::test]
async fn an_unreachable_relay_is_a_502_naming_the_url() {
    let url = format!("http://{}", crate::harness::REFUSING);
    let (gw, _d) = gateway(
        EDGE,
        &[
            ("{relay}", &url),
            ("{mock}", "http://127.0.0.1:1/v1/"),
            ("{edge_key}", "/dev/null"),
        ],
    )
    .await;
    let r = post(&gw, "/inference", &inference("mock", "x")).await;
    assert_eq!(r.status, 502);
    let e = r.error();
    assert!(
        e.contains("Error forwarding request in relay mode: could not reach the relay at")
            && e.contains(&url),
        "{e}"
    );
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_call_through_the_relay() {
    let t = tiers().await;
    let mut body = inference("drip", "x");
    body["stream"] = json!(true);
    let client = switchyard::http_client::build();
    let req = http::Request::post(format!("{}/inference", t.edge.url()))
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let mut res_body = res.into_body();
    crate::harness::read_frames(&mut res_body, 3).await;
    drop(res_body);
    drop(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while t.mock.aborted_streams() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.mock.aborted_streams(),
        1,
        "the provider stream outlived the client"
    );
    let _ = &t.relay;
}

#[tokio::test]
async fn model_timeouts_on_the_edge_cover_relayed_calls() {
    let mock = MockProvider::start().await.unwrap();
    let relay_cfg = "[models.slow]\nrouting = [\"p\"]\n[models.slow.providers.p]\ntype = \"openai\"\napi_base = \"{mock}\"\nmodel_name = \"slow-3000\"\napi_key_location = \"none\"\n";
    let (relay, _d1) = gateway(relay_cfg, &[("{mock}", &mock.api_base())]).await;
    let edge_cfg = "[gateway.relay]\ngateway_url = \"{relay}\"\n[models.slow]\nrouting = [\"p\"]\ntimeouts = { non_streaming = { total_ms = 300 } }\n[models.slow.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\n";
    let relay_url = relay.url();
    let (edge, _d2) = gateway(edge_cfg, &[("{relay}", &relay_url)]).await;
    let r = post(&edge, "/inference", &inference("slow", "x")).await;
    assert!(
        r.error().contains(
            "Model slow timed out due to configured `non_streaming.total_ms` timeout (300 ms)"
        ),
        "{}",
        r.error()
    );
    // The edge gave up, so the relay's provider call was cancelled too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while mock.cancelled_requests() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.cancelled_requests(), 1);
}

#[tokio::test]
async fn the_edge_renders_templates_and_the_relay_sees_only_the_model_call() {
    let t = tiers().await;
    let body = json!({
        "function_name": "templated",
        "input": { "messages": [{ "role": "user", "content": [{ "type": "template", "name": "user", "arguments": { "topic": "rust" } }] }] }
    });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["variant_name"], "v");
    assert_eq!(v["output"]["parsed"], json!({ "answer": 42 }));
    let sent = &t.mock.requests()[0];
    assert_eq!(sent.body["messages"][0]["content"], "Topic: rust");
    assert_eq!(sent.body["response_format"]["type"], "json_schema");
    assert_eq!(
        sent.body["response_format"]["json_schema"]["schema"]["required"],
        json!(["answer"])
    );

    // Streaming through both tiers.
    let mut body = body;
    body["stream"] = json!(true);
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let raw: String = r
        .json_events()
        .iter()
        .filter_map(|e| e["raw"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(raw, "{\"answer\":42}");

    // A schema violation is the edge's own 400: the relay is never called.
    let before = t.mock.requests().len();
    let bad = json!({
        "function_name": "templated",
        "input": { "messages": [{ "role": "user", "content": [{ "type": "template", "name": "user", "arguments": { "topic": 1 } }] }] }
    });
    let r = post(&t.edge, "/inference", &bad).await;
    assert_eq!(r.status, 400);
    assert_eq!(t.mock.requests().len(), before);
}

#[tokio::test]
async fn embeddings_are_relayed_and_the_relay_falls_back() {
    let t = tiers().await;
    let body = json!({ "input": ["one", "two three"], "model": "tensorzero::embedding_model_name::embed" });
    let r = post(&t.edge, "/openai/v1/embeddings", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["model"], "tensorzero::embedding_model_name::embed");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let seen = t.mock.requests();
    assert_eq!(seen.len(), 2, "the relay tried `down`, then `up`");
    assert_eq!(seen[1].body["model"], "embed-model");
    assert_eq!(seen[1].header("authorization"), Some("Bearer sk-relay-key"));
}

#[tokio::test]
async fn tools_and_ensembles_work_through_the_relay() {
    let t = tiers().await;
    let ask = json!({ "role": "user", "content": "weather in Paris?" });
    let body = json!({ "function_name": "assistant", "input": { "messages": [ask] } });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let call = r.json()["content"][0].clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(
        call["arguments"],
        json!({ "city": "Paris" }),
        "checked on the edge"
    );
    let sent = t.mock.requests()[0].body.clone();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");

    let body = json!({ "function_name": "assistant", "input": { "messages": [
        ask,
        { "role": "assistant", "content": [call] },
        { "role": "user", "content": [{ "type": "tool_result", "id": call["id"], "name": "get_weather", "result": "sunny" }] }
    ] } });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sent = t.mock.requests()[1].body.clone();
    assert_eq!(sent["messages"][2]["role"], "tool");
    assert_eq!(sent["messages"][2]["content"], "sunny");

    // implicit_tool: the edge asks for it, the relay does the forced tool call.
    let before = t.mock.requests().len();
    let body = json!({ "function_name": "locate", "input": { "messages": [{ "role": "user", "content": "where?" }] } });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["output"]["parsed"], json!({ "city": "Paris" }));
    let sent = &t.mock.requests()[before].body;
    assert_eq!(sent["tool_choice"]["function"]["name"], "respond");

    // Mixture-of-n on the edge: each candidate and the fuser is its own relayed model call.
    let before = t.mock.requests().len();
    let body = json!({ "function_name": "ensemble", "variant_name": "mon", "input": { "messages": [{ "role": "user", "content": "hello" }] } });
    let r = post(&t.edge, "/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["variant_name"], "mon");
    let calls = &t.mock.requests()[before..];
    assert_eq!(calls.len(), 3, "two candidates and the fuser");
    assert!(
        calls
            .iter()
            .all(|c| c.header("authorization") == Some("Bearer sk-relay-key"))
    );
    let fuser = &calls[2].body;
    assert!(
        fuser["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("<candidate index=\"1\">"),
        "{fuser}"
    );
}

#[tokio::test]
async fn the_clients_trace_reaches_the_provider_through_both_tiers() {
    let t = tiers().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = send(
        Method::POST,
        &format!("{}/inference", t.edge.url()),
        Bytes::from(inference("mock", "traced").to_string()),
        &[("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = t.mock.requests();
    let header = seen[0]
        .header("traceparent")
        .expect("the provider got a traceparent");
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(
        parts[1], trace_id,
        "one trace across edge, relay and provider"
    );
    assert_ne!(parts[2], "00f067aa0ba902b7", "each hop has its own span");
    assert_eq!(parts[3], "01");

    // Without one, the edge starts a trace and the provider still sees a single one.
    post(&t.edge, "/inference", &inference("mock", "untraced")).await;
    let header = t.mock.requests()[1]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert_eq!(header.len(), 55, "{header}");
}
