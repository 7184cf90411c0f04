//! `POST /openai/v1/chat/completions`.

use serde_json::json;

use crate::harness::{BASIC, Harness, last_request};

fn chat(model: &str) -> serde_json::Value {
    json!({
        "model": model,
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "developer", "content": "and kind" },
            { "role": "user", "content": "hello" }
        ]
    })
}

#[tokio::test]
async fn chat_completion_has_the_openai_shape() {
    let h = Harness::start(BASIC).await;
    let mut body = chat("tensorzero::model_name::mock");
    body["temperature"] = json!(0.5);
    body["max_tokens"] = json!(40);
    body["max_completion_tokens"] = json!(30);
    body["stop"] = json!("STOP");
    body["seed"] = json!(7);
    body["tensorzero::tags"] = json!({ "user_id": "u1" });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "tensorzero::model_name::mock");
    assert_eq!(
        v["choices"][0]["message"],
        json!({ "role": "assistant", "content": "mock reply to: hello" })
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    let sent = last_request(&h.mock);
    // System messages are merged, in order, into one.
    assert_eq!(
        sent.body["messages"][0],
        json!({ "role": "system", "content": "be brief\nand kind" })
    );
    assert_eq!(sent.body["temperature"], 0.5);
    assert_eq!(
        sent.body["max_completion_tokens"], 30,
        "the smaller of max_tokens and max_completion_tokens"
    );
    assert_eq!(sent.body["stop"], json!(["STOP"]));
    assert_eq!(sent.body["seed"], 7);
}

#[tokio::test]
async fn streams_chunks_and_a_usage_chunk_when_asked() {
    let h = Harness::start(BASIC).await;
    let mut body = chat("tensorzero::model_name::mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200);
    let events = r.json_events();
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(events[1..].iter().all(|e| {
        e["choices"]
            .as_array()
            .is_none_or(|c| c.is_empty() || c[0]["delta"].get("role").is_none())
    }));
    let text: String = events
        .iter()
        .filter_map(|e| {
            e["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "mock reply to: hello");
    assert!(
        events.iter().all(|e| e["object"] == "chat.completion.chunk"
            && e.as_object().unwrap().contains_key("usage"))
    );
    let finish = &events[events.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = events.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);

    // Without include_usage, every chunk's usage is null.
    body["stream_options"] = json!({ "include_usage": false });
    let events = h
        .post("/openai/v1/chat/completions", &body)
        .await
        .json_events();
    assert!(events.iter().all(|e| e["usage"].is_null()));
}

#[tokio::test]
async fn tools_and_tool_calls_round_trip() {
    let h = Harness::start(&BASIC.replace("mock-model", "mock-tool")).await;
    let mut body = json!({
        "model": "tensorzero::model_name::mock",
        "messages": [
            { "role": "user", "content": "weather?" },
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "c0", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Rome\"}" } }] },
            { "role": "tool", "tool_call_id": "c0", "content": "sunny" },
            { "role": "user", "content": "and Paris?" }
        ],
        "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }],
        "tool_choice": { "type": "function", "function": { "name": "get_weather" } },
        "parallel_tool_calls": false
    });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    let sent = last_request(&h.mock);
    assert_eq!(
        sent.body["messages"][2],
        json!({ "role": "tool", "tool_call_id": "c0", "content": "sunny" })
    );
    assert_eq!(
        sent.body["tool_choice"],
        json!({ "type": "function", "function": { "name": "get_weather" } })
    );
    assert_eq!(sent.body["parallel_tool_calls"], false);

    body["stream"] = json!(true);
    let events = h
        .post("/openai/v1/chat/completions", &body)
        .await
        .json_events();
    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| {
            e["choices"]
                .get(0)
                .and_then(|c| c["delta"]["tool_calls"].as_array().cloned())
        })
        .flatten()
        .collect();
    assert_eq!(calls[0]["id"], "call_mock_1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(
        calls[1..]
            .iter()
            .all(|c| c["index"] == 0 && c.get("id").is_none())
    );
    let args: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
}

#[tokio::test]
async fn response_format_maps_to_json_mode() {
    let h = Harness::start(BASIC).await;
    let mut body = chat("tensorzero::model_name::mock");
    body["response_format"] = json!({ "type": "json_schema", "json_schema": { "name": "x", "schema": { "type": "object" } } });
    assert_eq!(
        h.post("/openai/v1/chat/completions", &body).await.status,
        200
    );
    let sent = last_request(&h.mock);
    assert_eq!(sent.body["response_format"]["type"], "json_schema");
    assert_eq!(
        sent.body["response_format"]["json_schema"]["schema"],
        json!({ "type": "object" })
    );
    assert_eq!(sent.body["response_format"]["json_schema"]["strict"], true);
}

#[tokio::test]
async fn function_target_names_function_and_variant() {
    let h = Harness::start(&format!(
        "{BASIC}\n[functions.f]\ntype = \"chat\"\n[functions.f.variants.v1]\ntype = \"chat_completion\"\nmodel = \"mock\"\n"
    ))
    .await;
    let r = h
        .post(
            "/openai/v1/chat/completions",
            &chat("tensorzero::function_name::f"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["model"],
        "tensorzero::function_name::f::variant_name::v1"
    );
}

#[tokio::test]
async fn bad_model_prefix_and_unknown_fields() {
    let h = Harness::start(BASIC).await;
    let r = h.post("/openai/v1/chat/completions", &chat("gpt-4o")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error()
            .contains("must start with `tensorzero::function_name::`"),
        "{}",
        r.error()
    );
    assert!(
        r.json()["error"].is_object(),
        "OpenAI routes use the OpenAI error shape"
    );

    let mut body = chat("tensorzero::model_name::mock");
    body["frobnicate"] = json!(1);
    assert_eq!(
        h.post("/openai/v1/chat/completions", &body).await.status,
        200,
        "unknown fields are ignored by default"
    );
    body["tensorzero::deny_unknown_fields"] = json!(true);
    body["zebra"] = json!(2);
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("[frobnicate, zebra]"), "{}", r.error());

    let mut body = chat("tensorzero::model_name::mock");
    body["n"] = json!(2);
    assert_eq!(
        h.post("/openai/v1/chat/completions", &body).await.status,
        400
    );
    assert_eq!(
        h.mock.requests().len(),
        1,
        "only the one valid request reached the provider"
    );
}
