//! The Anthropic Messages adapter against the mock's Anthropic wire format.

use serde_json::json;

use crate::harness::{Harness, inference, last_request};

fn model(name: &str, provider_model: &str) -> String {
    format!(
        "[models.{name}]\nrouting = [\"a\"]\n[models.{name}.providers.a]\ntype = \"anthropic\"\napi_base = \"{{mock}}\"\nmodel_name = \"{provider_model}\"\napi_key_location = \"path::KEYFILE\"\n"
    )
}

async fn start(models: &[(&str, &str)]) -> (Harness, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key = crate::harness::key_file(&keys, "anthropic.key", "sk-ant-test");
    let cfg: String = models
        .iter()
        .map(|(n, m)| model(n, m))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("KEYFILE", &key);
    (Harness::start(&cfg).await, keys)
}

#[tokio::test]
async fn messages_api_request_and_response() {
    let (h, _k) = start(&[("claude", "claude-mock")]).await;
    let body = json!({
        "model_name": "claude",
        "input": {
            "system": "be brief",
            "messages": [
                { "role": "user", "content": "first" },
                { "role": "user", "content": "second" },
                { "role": "assistant", "content": [{ "type": "tool_call", "id": "t1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" }] },
                { "role": "user", "content": [{ "type": "tool_result", "id": "t1", "name": "get_weather", "result": "cold" }, { "type": "text", "text": "and now?" }] }
            ]
        },
        "params": { "chat_completion": { "temperature": 0.2, "stop_sequences": ["END"], "thinking_budget_tokens": 1024 } },
        "additional_tools": [{ "name": "get_weather", "description": "w", "parameters": { "type": "object" } }],
        "tool_choice": "required",
        "parallel_tool_calls": false
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["content"][0]["text"], "mock reply to: and now?");
    assert_eq!(v["finish_reason"], "stop");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = last_request(&h.mock);
    assert!(sent.path.ends_with("/messages"), "{}", sent.path);
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let b = &sent.body;
    assert_eq!(b["system"], "be brief");
    assert_eq!(
        b["max_tokens"], 4096,
        "Anthropic needs max_tokens; the default is sent"
    );
    assert_eq!(
        b["messages"][0]["content"].as_array().unwrap().len(),
        2,
        "consecutive user turns are merged"
    );
    assert_eq!(
        b["messages"][1]["content"][0],
        json!({ "type": "tool_use", "id": "t1", "name": "get_weather", "input": { "city": "Oslo" } })
    );
    assert_eq!(
        b["messages"][2]["content"][0],
        json!({ "type": "tool_result", "tool_use_id": "t1", "content": "cold" })
    );
    assert_eq!(b["tools"][0]["input_schema"], json!({ "type": "object" }));
    assert_eq!(
        b["tool_choice"],
        json!({ "type": "any", "disable_parallel_tool_use": true })
    );
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(
        b["thinking"],
        json!({ "type": "enabled", "budget_tokens": 1024 })
    );
}

#[tokio::test]
async fn tool_use_and_thinking_come_back() {
    let (h, _k) = start(&[("claude", "think-tool")]).await;
    let r = h.post("/inference", &inference("claude", "weather?")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        v["content"][0],
        json!({ "type": "thought", "text": "let me think", "signature": "sig-mock" })
    );
    assert_eq!(v["content"][1]["name"], "get_weather");
    assert_eq!(v["content"][1]["arguments"], json!({ "city": "Paris" }));
    assert_eq!(v["finish_reason"], "tool_call");
}

#[tokio::test]
async fn streams_text_tool_calls_thinking_and_usage() {
    let (h, _k) = start(&[("claude", "claude-mock"), ("tools", "think-tool")]).await;
    let mut body = inference("claude", "stream please");
    body["stream"] = json!(true);
    let events = h.post("/inference", &body).await.json_events();
    let text: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "mock reply to: stream please");
    let last = events.last().unwrap();
    assert_eq!(last["finish_reason"], "stop");
    assert!(
        last["usage"]["input_tokens"].as_u64().unwrap() > 0 && last["usage"]["output_tokens"] == 5
    );

    let mut body = inference("tools", "weather?");
    body["stream"] = json!(true);
    let events = h.post("/inference", &body).await.json_events();
    let blocks: Vec<serde_json::Value> = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "thought" && b["text"] == "let me think")
    );
    let args: String = blocks
        .iter()
        .filter(|b| b["type"] == "tool_call")
        .map(|b| b["raw_arguments"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert!(blocks.iter().any(|b| b["type"] == "tool_call"
        && b["raw_name"] == "get_weather"
        && b["id"] == "toolu_mock_1"));
    assert_eq!(events.last().unwrap()["finish_reason"], "tool_call");
}

#[tokio::test]
async fn errors_name_the_provider_and_its_message() {
    let (h, _k) = start(&[
        ("down", "error-529"),
        ("limited", "rate-limited"),
        ("broken", "stream-error"),
    ])
    .await;
    let e = h.post("/inference", &inference("down", "x")).await.error();
    assert!(
        e.contains("anthropic provider `a` (HTTP 529): mock provider error 529"),
        "{e}"
    );
    let e = h
        .post("/inference", &inference("limited", "x"))
        .await
        .error();
    assert!(
        e.contains("HTTP 429") && e.contains("exceeded your rate limit"),
        "{e}"
    );
    let mut body = inference("broken", "x");
    body["stream"] = json!(true);
    let events = h.post("/inference", &body).await.events();
    let error = &events[events.len() - 2];
    assert!(error.contains("Overloaded"), "{events:?}");
}

#[tokio::test]
async fn falls_back_from_openai_to_anthropic() {
    let keys = tempfile::tempdir().unwrap();
    let key = crate::harness::key_file(&keys, "k", "sk-ant");
    let cfg = format!(
        "[models.m]\nrouting = [\"openai\", \"claude\"]\n[models.m.providers.openai]\ntype = \"openai\"\napi_base = \"{{mock}}\"\nmodel_name = \"error-503\"\napi_key_location = \"none\"\n[models.m.providers.claude]\ntype = \"anthropic\"\napi_base = \"{{mock}}\"\nmodel_name = \"claude\"\napi_key_location = \"path::{key}\"\n"
    );
    let h = Harness::start(&cfg).await;
    let r = h.post("/openai/v1/chat/completions", &json!({ "model": "tensorzero::model_name::m", "messages": [{ "role": "user", "content": "hi" }] })).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "mock reply to: hi"
    );
    let paths: Vec<String> = h.mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths[0].ends_with("/chat/completions") && paths[1].ends_with("/messages"),
        "{paths:?}"
    );
}

/// `reasoning_effort` asks Anthropic for adaptive thinking at that effort; combined with a
/// fixed `thinking_budget_tokens` it is refused, as in TensorZero.
#[tokio::test]
async fn reasoning_effort_is_adaptive_thinking() {
    let (h, _k) = start(&[("claude", "claude-mock")]).await;
    let mut body = inference("claude", "hi");
    body["params"] = json!({ "chat_completion": { "reasoning_effort": "low" } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock).body;
    assert_eq!(sent["thinking"], json!({ "type": "adaptive" }));
    assert_eq!(sent["output_config"], json!({ "effort": "low" }));

    let before = h.mock.requests().len();
    body["params"]["chat_completion"]["thinking_budget_tokens"] = json!(1024);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("cannot be combined"), "{}", r.text());
    assert_eq!(h.mock.requests().len(), before, "nothing was sent");
}

/// `provider_tools` (server-side tools such as web search) go in `tools` as written, beside the
/// function's own tools or alone.
#[tokio::test]
async fn provider_tools_are_sent_as_written() {
    let keys = tempfile::tempdir().unwrap();
    let key = crate::harness::key_file(&keys, "anthropic.key", "sk-ant-test");
    let cfg = model("claude", "claude-mock").replace("KEYFILE", &key)
        + "provider_tools = [{ type = \"web_search_20250305\", name = \"web_search\", max_uses = 3 }]\n";
    let h = Harness::start(&cfg).await;
    let r = h.post("/inference", &inference("claude", "news?")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        last_request(&h.mock).body["tools"],
        json!([{ "type": "web_search_20250305", "name": "web_search", "max_uses": 3 }])
    );
}
