//! Each OpenAI-compatible provider's real quirks, against mock modes that reproduce them
//! (`quirk-*` models, see the mock's `quirks` module): without the codec's handling, each of
//! these requests fails or loses data the way it would against the real provider.

use serde_json::{Value, json};

use crate::harness::{Harness, last_request};

fn provider(name: &str, provider_type: &str, model: &str) -> String {
    format!(
        "[models.{name}]\nrouting = [\"p\"]\n[models.{name}.providers.p]\ntype = \"{provider_type}\"\napi_base = \"{{mock}}\"\nmodel_name = \"{model}\"\napi_key_location = \"none\"\n"
    )
}

async fn start() -> Harness {
    let config = [
        provider("mistral", "mistral", "quirk-mistral"),
        provider("deepseek", "deepseek", "quirk-deepseek"),
        provider("vllm", "vllm", "quirk-reasoning-field"),
        provider("openrouter", "openrouter", "quirk-reasoning-details"),
        provider("together", "together", "quirk-think-tags"),
        provider("fireworks", "fireworks", "quirk-think-tags"),
        provider("xai", "xai", "quirk-xai-grok-4"),
        provider("groq", "groq", "quirk-groq"),
        "[models.tgi]\nrouting = [\"p\"]\n[models.tgi.providers.p]\ntype = \"tgi\"\napi_base = \"{mock}\"\napi_key_location = \"none\"\n".to_owned(),
    ]
    .join("\n");
    Harness::start(&config).await
}

fn tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model_name": model, "input": {"messages": [{"role": "user", "content": text}]}})
}

fn text_of(v: &Value) -> String {
    v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect()
}

fn thought_of(v: &Value) -> String {
    v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "thought")
        .filter_map(|b| b["text"].as_str())
        .collect()
}

/// A streamed inference's text and thought, joined over its chunks.
fn streamed(events: &[Value]) -> (String, String) {
    let blocks: Vec<Value> = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .collect();
    let join = |kind: &str| {
        blocks
            .iter()
            .filter(|b| b["type"] == kind)
            .filter_map(|b| b["text"].as_str())
            .collect()
    };
    (join("text"), join("thought"))
}

#[tokio::test]
async fn mistral_gets_nine_character_tool_ids_any_and_random_seed() {
    let h = start().await;
    let mut body = ask("mistral", "Weather?");
    body["additional_tools"] = tools();
    body["tool_choice"] = json!("required");
    body["params"] = json!({"chat_completion": {"seed": 7}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["content"][0]["id"],
        "D681PevKs",
        "Mistral's own ids pass through"
    );
    let sent = last_request(&h.mock).body;
    assert_eq!(sent["tool_choice"], "any");
    assert_eq!(sent["random_seed"], 7);
    assert!(sent.get("seed").is_none());
    // A conversation whose tool call has another provider's id: mapped, the same both times.
    let mut body = ask("mistral", "x");
    body["additional_tools"] = tools();
    body["input"]["messages"] = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_call", "id": "call_from_openai_123", "name": "get_weather", "arguments": "{}"}]},
        {"role": "user", "content": [{"type": "tool_result", "id": "call_from_openai_123", "name": "get_weather", "result": "sunny"}]}
    ]);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock).body;
    let call_id = sent["messages"][1]["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(call_id.len(), 9);
    assert_eq!(sent["messages"][2]["tool_call_id"], call_id.as_str());
}

#[tokio::test]
async fn deepseek_reasoning_comes_back_and_goes_back_with_tools() {
    let h = start().await;
    let mut first = ask("deepseek", "Weather?");
    first["additional_tools"] = tools();
    let r = h.post("/inference", &first).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(thought_of(&v), "let me reason");
    let call = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_call")
        .unwrap()
        .clone();
    let mut second = ask("deepseek", "x");
    second["additional_tools"] = tools();
    second["input"]["messages"] = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "thought", "text": "let me reason"},
            {"type": "tool_call", "id": call["id"], "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}]},
        {"role": "user", "content": [{"type": "tool_result", "id": call["id"], "name": "get_weather", "result": "sunny"}]}
    ]);
    let r = h.post("/inference", &second).await;
    assert_eq!(
        r.status,
        200,
        "DeepSeek refuses a tool turn without its reasoning: {}",
        r.text()
    );
    assert_eq!(
        last_request(&h.mock).body["messages"][1]["reasoning_content"],
        "let me reason"
    );
}

#[tokio::test]
async fn reasoning_fields_and_think_tags_become_thoughts() {
    let h = start().await;
    for model in ["vllm", "openrouter", "together", "fireworks"] {
        let r = h.post("/inference", &ask(model, "hi")).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(thought_of(&v), "let me reason", "{model}: {v}");
        assert_eq!(
            text_of(&v),
            "mock reply to: hi",
            "{model}: no tags in the answer: {v}"
        );
        let mut body = ask(model, "hi");
        body["stream"] = json!(true);
        let events = h.post("/inference", &body).await.json_events();
        let (text, thought) = streamed(&events);
        assert_eq!(thought, "let me reason", "{model} streamed");
        assert_eq!(text, "mock reply to: hi", "{model} streamed");
    }
}

#[tokio::test]
async fn xai_reasoning_models_drop_penalties_and_count_reasoning_tokens() {
    let h = start().await;
    let mut body = ask("xai", "hi");
    body["params"] = json!({"chat_completion": {"presence_penalty": 0.5, "frequency_penalty": 0.1, "stop_sequences": ["END"]}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["usage"]["output_tokens"],
        53,
        "3 completion + 50 reasoning tokens"
    );
    body["stream"] = json!(true);
    let events = h.post("/inference", &body).await.json_events();
    assert_eq!(events.last().unwrap()["usage"]["output_tokens"], 53);
}

#[tokio::test]
async fn groq_gets_the_word_json_and_no_unsupported_fields() {
    let h = start().await;
    let mut body = ask("groq", "give me an object");
    body["params"] = json!({"chat_completion": {"json_mode": "on"}});
    body["extra_body"] =
        json!([{"pointer": "/store", "value": true}, {"pointer": "/logprobs", "value": true}]);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock).body;
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("JSON"),
        "{sent}"
    );
    assert!(sent.get("store").is_none() && sent.get("logprobs").is_none());
}

#[tokio::test]
async fn tgi_refuses_streamed_tools_and_json_mode_clearly() {
    let h = start().await;
    let mut body = ask("tgi", "hi");
    body["stream"] = json!(true);
    body["additional_tools"] = tools();
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.error()
            .contains("TGI does not support tools while streaming"),
        "{}",
        r.error()
    );
    let mut body = ask("tgi", "hi");
    body["params"] = json!({"chat_completion": {"json_mode": "on"}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("TGI has no JSON mode"), "{}", r.error());
}

#[tokio::test]
async fn errors_inside_a_200_stream_are_errors_and_empty_chunks_are_skipped() {
    let config = [
        provider("vllm", "vllm", "quirk-vllm-error"),
        provider("openrouter", "openrouter", "quirk-openrouter-error"),
        provider("broke", "openrouter", "quirk-openrouter-402"),
        "[models.azure]\nrouting = [\"p\"]\n[models.azure.providers.p]\ntype = \"azure\"\nendpoint = \"{mock}\"\ndeployment_id = \"quirk-azure\"\napi_version = \"2024-10-21\"\napi_key_location = \"none\"\n".to_owned(),
    ]
    .join("\n");
    let h = Harness::start(&config).await;
    for (model, says) in [
        ("vllm", "context window was exceeded"),
        ("openrouter", "upstream overloaded"),
    ] {
        let mut body = ask(model, "hi there friend");
        body["stream"] = json!(true);
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let events = r.json_events();
        let last = events.last().unwrap();
        assert!(
            last["error"].as_str().is_some_and(|e| e.contains(says)),
            "{model}: the stream ends with the provider's error, never silently: {events:?}"
        );
    }
    // Out of credits: the provider's 402 and its message reach the client.
    let r = h.post("/inference", &ask("broke", "hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.error().contains("402") && r.error().contains("Insufficient credits"),
        "{}",
        r.error()
    );
    // Azure: the empty first chunk is not passed on; the configured api-version is used.
    let mut body = ask("azure", "hi");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json_events();
    assert!(
        events[0]["content"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "the first chunk the client sees has content: {events:?}"
    );
    assert_eq!(streamed(&events).0, "mock reply to: hi");
    assert!(
        last_request(&h.mock)
            .path
            .contains("api-version=2024-10-21")
    );
}

#[tokio::test]
async fn openrouter_attribution_headers_are_configurable_and_vllm_gets_response_format() {
    let config = format!(
        "{}extra_headers = [{{ name = \"HTTP-Referer\", value = \"https://acme.example\" }}, {{ name = \"X-Title\", value = \"Acme assistant\" }}]\n{}",
        provider("openrouter", "openrouter", "mock-model"),
        provider("vllm", "vllm", "mock-model")
    );
    let h = Harness::start(&config).await;
    let r = h.post("/inference", &ask("openrouter", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock);
    let header = |n: &str| {
        sent.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("http-referer").as_deref(),
        Some("https://acme.example")
    );
    assert_eq!(header("x-title").as_deref(), Some("Acme assistant"));
    // vLLM: structured output through `response_format`, never the removed `guided_json`.
    let mut body = ask("vllm", "hi");
    body["output_schema"] = json!({"type": "object"});
    body["params"] = json!({"chat_completion": {"json_mode": "strict"}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock).body;
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert!(sent.get("guided_json").is_none());
}
