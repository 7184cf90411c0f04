//! The Google AI Studio Gemini adapter against the mock's Gemini wire format.

use serde_json::json;

use crate::harness::{Harness, inference, last_request};

async fn start(models: &[(&str, &str)]) -> (Harness, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key = crate::harness::key_file(&keys, "gemini.key", "gemini-test-key");
    let cfg: String = models
        .iter()
        .map(|(n, m)| {
            format!(
                "[models.{n}]\nrouting = [\"g\"]\n[models.{n}.providers.g]\ntype = \"google_ai_studio_gemini\"\napi_base = \"{{mock}}\"\nmodel_name = \"{m}\"\napi_key_location = \"path::{key}\"\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    (Harness::start(&cfg).await, keys)
}

#[tokio::test]
async fn generate_content_request_and_response() {
    let (h, _k) = start(&[("gem", "gemini-mock")]).await;
    let body = json!({
        "model_name": "gem",
        "input": {
            "system": "be brief",
            "messages": [
                { "role": "user", "content": "weather?" },
                { "role": "assistant", "content": [{ "type": "tool_call", "id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" }] },
                { "role": "user", "content": [{ "type": "tool_result", "id": "c1", "name": "get_weather", "result": "cold" }, { "type": "text", "text": "thanks" }] }
            ]
        },
        "params": { "chat_completion": { "temperature": 0.3, "max_tokens": 64, "json_mode": "on", "stop_sequences": ["END"] } },
        "additional_tools": [{ "name": "get_weather", "description": "w", "parameters": { "type": "object" } }],
        "tool_choice": { "specific": "get_weather" }
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["content"][0]["text"], "mock reply to: thanks");
    assert_eq!(v["finish_reason"], "stop");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = last_request(&h.mock);
    assert!(
        sent.path.ends_with("/models/gemini-mock:generateContent"),
        "{}",
        sent.path
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("gemini-test-key"));
    assert!(!sent.path.contains("key="), "the key never goes in the URL");
    let b = &sent.body;
    assert_eq!(
        b["systemInstruction"],
        json!({ "parts": [{ "text": "be brief" }] })
    );
    assert_eq!(
        b["contents"][1],
        json!({ "role": "model", "parts": [{ "functionCall": { "name": "get_weather", "args": { "city": "Oslo" } } }] })
    );
    assert_eq!(
        b["contents"][2]["parts"][0],
        json!({ "functionResponse": { "name": "get_weather", "response": { "result": "cold" } } })
    );
    assert_eq!(b["generationConfig"]["maxOutputTokens"], 64);
    assert_eq!(
        b["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(b["generationConfig"]["stopSequences"], json!(["END"]));
    assert_eq!(
        b["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(
        b["toolConfig"],
        json!({ "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["get_weather"] } })
    );
}

#[tokio::test]
async fn function_calls_thoughts_and_streams() {
    let (h, _k) = start(&[("tools", "think-tool"), ("gem", "gemini-mock")]).await;
    let r = h.post("/inference", &inference("tools", "weather?")).await;
    let v = r.json();
    assert_eq!(
        v["content"][0],
        json!({ "type": "thought", "text": "let me think", "signature": "sig-mock" })
    );
    assert_eq!(v["content"][1]["name"], "get_weather");
    assert_eq!(v["content"][1]["arguments"], json!({ "city": "Paris" }));
    assert_eq!(v["finish_reason"], "tool_call");

    let mut body = inference("gem", "stream it");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    let events = r.json_events();
    let text: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "mock reply to: stream it");
    let last = events.last().unwrap();
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["usage"]["output_tokens"], 5);
    assert!(
        last_request(&h.mock)
            .path
            .ends_with(":streamGenerateContent?alt=sse")
    );
}

#[tokio::test]
async fn errors_name_the_provider_and_its_message() {
    let (h, _k) = start(&[("down", "error-503")]).await;
    let e = h.post("/inference", &inference("down", "x")).await.error();
    assert!(
        e.contains("google_ai_studio_gemini provider `g` (HTTP 503): mock provider error 503"),
        "{e}"
    );
}

/// `reasoning_effort` becomes Gemini's `thinkingLevel` (a budget, when also given, wins).
#[tokio::test]
async fn reasoning_effort_is_the_thinking_level() {
    let (h, _k) = start(&[("gem", "gemini-mock")]).await;
    let mut body = crate::harness::inference("gem", "hi");
    body["params"] = serde_json::json!({ "chat_completion": { "reasoning_effort": "high" } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = crate::harness::last_request(&h.mock).body;
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        serde_json::json!({ "thinkingLevel": "high", "includeThoughts": true })
    );
    body["params"]["chat_completion"]["thinking_budget_tokens"] = serde_json::json!(512);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = crate::harness::last_request(&h.mock).body;
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        serde_json::json!({ "thinkingBudget": 512, "includeThoughts": true })
    );
}
