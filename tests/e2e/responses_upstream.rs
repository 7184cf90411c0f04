//! The OpenAI Responses API as an upstream (`api_type = "responses"`, `openai::responses::M`):
//! requests in its item format, answers and typed event streams read back, and the reasoning
//! and function-call round trips a stateless client needs.

use serde_json::{Value, json};

use crate::harness::{Harness, last_request};

const CONFIG: &str = r#"
[models.r]
routing = ["openai"]
[models.r.providers.openai]
type = "openai"
api_type = "responses"
api_base = "{mock}"
model_name = "think-tool"
include_encrypted_reasoning = true
provider_tools = [{ type = "web_search" }]
api_key_location = "none"
cost = [
  { pointer = "/usage/input_tokens", cost_per_million = 1.0 },
  { pointer = "/usage/output_tokens", cost_per_million = 10.0 },
]

[provider_types.openai.defaults]
api_base = "{mock}"
api_key_location = "none"
"#;

fn weather_tool() -> Value {
    json!([{"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

#[tokio::test]
async fn reasoning_and_function_calls_round_trip() {
    let h = Harness::start(CONFIG).await;
    let first = json!({"model_name": "r", "additional_tools": weather_tool(),
        "input": {"messages": [{"role": "user", "content": "Weather in Paris?"}]}});
    let r = h.post("/inference", &first).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["content"][0],
        json!({"type": "thought", "text": "thinking it over", "signature": "rs_mock_1:ENCRYPTED-mock-1"})
    );
    assert_eq!(v["content"][1]["name"], "get_weather");
    assert_eq!(v["content"][1]["arguments"], json!({"city": "Paris"}));
    assert_eq!(v["finish_reason"], "tool_call");
    assert!(v["usage"]["output_tokens"].as_u64().is_some());
    assert!(
        v["usage"]["cost"].as_f64().is_some(),
        "cost from the Responses usage shape: {v}"
    );
    let sent = last_request(&h.mock);
    assert!(sent.path.ends_with("/responses"), "{}", sent.path);
    assert_eq!(sent.body["store"], false);
    assert_eq!(sent.body["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(
        sent.body["tools"][1],
        json!({"type": "web_search"}),
        "provider tools pass through"
    );
    assert_eq!(
        sent.body["input"][0]["content"][0],
        json!({"type": "input_text", "text": "Weather in Paris?"})
    );

    // The next turn sends the reasoning (with its encrypted content) and the call back.
    let second = json!({"model_name": "r", "additional_tools": weather_tool(),
    "input": {"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [v["content"][0].clone(),
            {"type": "tool_call", "id": v["content"][1]["id"], "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}]},
        {"role": "user", "content": [{"type": "tool_result", "id": v["content"][1]["id"], "name": "get_weather", "result": "18C"}]}
    ]}});
    let r = h.post("/inference", &second).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock);
    let items = sent.body["input"].as_array().unwrap().clone();
    assert_eq!(
        items[1],
        json!({"type": "reasoning", "id": "rs_mock_1", "summary": [{"type": "summary_text", "text": "thinking it over"}], "encrypted_content": "ENCRYPTED-mock-1"})
    );
    assert_eq!(items[2]["type"], "function_call");
    assert_eq!(
        items[3],
        json!({"type": "function_call_output", "call_id": "call_mock_1", "output": "18C"})
    );
    let text = r.json()["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("");
    assert!(
        text.contains("the tool said: 18C (reasoning seen: ENCRYPTED-mock-1)"),
        "{text}"
    );
}

#[tokio::test]
async fn streams_from_the_typed_events() {
    let h = Harness::start(CONFIG).await;
    let body = json!({"model_name": "r", "stream": true, "additional_tools": weather_tool(),
        "input": {"messages": [{"role": "user", "content": "Weather?"}]}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json_events();
    let blocks: Vec<Value> = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .collect();
    let thought: String = blocks
        .iter()
        .filter(|b| b["type"] == "thought")
        .filter_map(|b| b["text"].as_str())
        .collect();
    assert_eq!(thought, "thinking it over");
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "thought" && b["signature"] == "rs_mock_1:ENCRYPTED-mock-1"),
        "{blocks:#?}"
    );
    let arguments: String = blocks
        .iter()
        .filter(|b| b["type"] == "tool_call")
        .filter_map(|b| b["raw_arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "tool_call" && b["raw_name"] == "get_weather")
    );
    let last = events.last().unwrap();
    assert_eq!(last["finish_reason"], "tool_call");
    assert!(last["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // Plain text, through the shorthand (the type's default base URL is the mock).
    let body = json!({"model_name": "openai::responses::plain", "stream": true,
        "input": {"messages": [{"role": "user", "content": "stream me"}]}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text: String = r
        .json_events()
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "mock reply to: stream me");
    let r = h
        .post("/inference", &json!({"model_name": "openai::responses::plain", "input": {"messages": [{"role": "user", "content": "hi"}]}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "mock reply to: hi");
    // A provider error is the provider's.
    let r = h
        .post("/inference", &json!({"model_name": "openai::responses::error-503", "input": {"messages": [{"role": "user", "content": "hi"}]}}))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
}
