//! The coding agents' routes over HTTP: golden event sequences of the Responses and Anthropic
//! streams (text, tool calls, thinking, a failure mid-stream), each route's bad inputs in its
//! own error shape, `x-api-key` auth, rate limits by `metadata.user_id`, and a hang-up reaching
//! the provider. (The official SDKs drive the same routes in `tests/python/test_coding_agents.py`.)

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::{Harness, Reply, send};

const CONFIG: &str = r#"
[models.gpt]
routing = ["mock"]
[models.gpt.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[models.gpt-tool]
routing = ["mock"]
[models.gpt-tool.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "tool"
api_key_location = "none"

[models.broken]
routing = ["mock"]
[models.broken.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "stream-error"
api_key_location = "none"

[models.drip]
routing = ["mock"]
[models.drip.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "drip-50"
api_key_location = "none"

[models.claude]
routing = ["anthropic"]
[models.claude.providers.anthropic]
type = "anthropic"
api_base = "{mock}"
model_name = "claude-think"
api_key_location = "{key}"

[rate_limiting]
backend = "memory"
[[rate_limiting.rules]]
priority = 1
model_inferences_per_hour = 1
scope = [{ tag_key = "user_id", tag_value = "tensorzero::each" }]
"#;

async fn start() -> Harness {
    Harness::start(CONFIG).await
}

/// The `(event:, data.type)` pairs of a named-event SSE body, checking they agree and that
/// nothing but named events is in it (no `[DONE]`).
fn named_events(r: &Reply) -> Vec<(String, Value)> {
    let text = r.text();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines = block.lines();
            let name = lines
                .next()
                .and_then(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("an event without its name: {block:?}"))
                .to_owned();
            let data: Value = serde_json::from_str(
                lines
                    .next()
                    .and_then(|l| l.strip_prefix("data: "))
                    .unwrap_or_else(|| panic!("an event without data: {block:?}")),
            )
            .unwrap();
            assert_eq!(data["type"], name.as_str(), "the name and the type agree");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn the_responses_text_stream_is_golden() {
    let h = start().await;
    let r = h
        .post(
            "/openai/v1/responses",
            &json!({"model": "gpt", "input": "one two", "stream": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = named_events(&r);
    // "mock reply to: one two" comes in five word pieces.
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(["response.output_text.delta"; 5]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names(&events), expected);
    for (i, (_, e)) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
    }
    let done = &events[events.len() - 4].1;
    assert_eq!(done["text"], "mock reply to: one two");
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        "mock reply to: one two"
    );
    assert_eq!(completed["usage"]["output_tokens"], 5);
    assert_eq!(
        completed["id"], events[0].1["response"]["id"],
        "one response id throughout"
    );
}

#[tokio::test]
async fn the_responses_tool_call_stream_is_golden() {
    let h = start().await;
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let r = h
        .post(
            "/openai/v1/responses",
            &json!({"model": "gpt-tool", "input": "weather?", "tools": tools, "stream": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = named_events(&r);
    let kinds = names(&events);
    assert_eq!(
        &kinds[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.function_call_arguments.delta")
        .count();
    assert!(deltas >= 1, "{kinds:?}");
    assert_eq!(
        &kinds[3 + deltas..],
        [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[2].1["item"]["type"], "function_call");
    assert_eq!(events[2].1["item"]["name"], "get_weather");
    let done = &events[3 + deltas].1;
    assert_eq!(
        serde_json::from_str::<Value>(done["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
}

#[tokio::test]
async fn the_anthropic_stream_with_thinking_is_golden() {
    let h = start().await;
    let r = h
        .post(
            "/anthropic/v1/messages",
            &json!({"model": "claude", "max_tokens": 100, "stream": true,
                    "thinking": {"type": "enabled", "budget_tokens": 50},
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = named_events(&r);
    let kinds = names(&events);
    assert_eq!(
        &kinds[..3],
        ["message_start", "ping", "content_block_start"]
    );
    assert_eq!(events[2].1["content_block"]["type"], "thinking");
    assert_eq!(events[2].1["index"], 0);
    // The thinking block: its text, its signature, closed; then the text block.
    let first_stop = kinds
        .iter()
        .position(|k| *k == "content_block_stop")
        .unwrap();
    let thinking: Vec<&str> = events[3..first_stop]
        .iter()
        .map(|(_, e)| e["delta"]["type"].as_str().unwrap())
        .collect();
    assert!(thinking.contains(&"thinking_delta") && thinking.contains(&"signature_delta"));
    assert_eq!(kinds[first_stop + 1], "content_block_start");
    assert_eq!(events[first_stop + 1].1["index"], 1);
    assert_eq!(events[first_stop + 1].1["content_block"]["type"], "text");
    let tail = &kinds[kinds.len() - 3..];
    assert_eq!(
        tail,
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(!r.text().contains("[DONE]"));
}

#[tokio::test]
async fn a_failure_mid_stream_is_the_apis_own_error_event() {
    let h = start().await;
    let r = h
        .post(
            "/openai/v1/responses",
            &json!({"model": "broken", "input": "x", "stream": true}),
        )
        .await;
    let events = named_events(&r);
    let (last, e) = events.last().unwrap();
    assert_eq!(last, "response.failed", "{:?}", names(&events));
    assert_eq!(e["response"]["status"], "failed");
    assert!(e["response"]["error"]["message"].as_str().unwrap().len() > 10);

    let r = h
        .post(
            "/anthropic/v1/messages",
            &json!({"model": "broken", "max_tokens": 10, "stream": true,
                    "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let events = named_events(&r);
    let (last, e) = events.last().unwrap();
    assert_eq!(last, "error", "{:?}", names(&events));
    assert_eq!(e["error"]["type"], "api_error");
}

#[tokio::test]
async fn bad_inputs_get_each_apis_error_shape() {
    let h = start().await;
    let responses = |body: Value| {
        let h = &h;
        async move { h.post("/openai/v1/responses", &body).await }
    };
    for (body, status, expected) in [
        (json!({"model": "gpt-99", "input": "x"}), 404, "gpt-99"),
        (
            json!({"model": "gpt", "input": [{"type": "item_reference", "id": "x"}]}),
            400,
            "item_reference",
        ),
        (
            json!({"model": "gpt", "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]}),
            400,
            "no `function_call` with that id",
        ),
        (json!({"model": "gpt", "input": "x", "n": 2}), 400, "`n`"),
        (
            json!({"model": "gpt", "input": "x", "tools": [{"type": "web_search"}]}),
            400,
            "web_search",
        ),
        (
            json!({"model": "gpt", "input": "x", "background": true}),
            400,
            "background",
        ),
        (json!({"model": "gpt", "input": 7}), 400, "`input`"),
    ] {
        let r = responses(body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let e = &r.json()["error"];
        assert!(
            e["message"].as_str().unwrap().contains(expected),
            "{body}: {e}"
        );
        assert!(e["type"].is_string(), "{e}");
    }
    for (body, status, kind, expected) in [
        (
            json!({"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found_error",
            "claude-x",
        ),
        (
            json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]}),
            400,
            "invalid_request_error",
            "toolu_1",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            400,
            "invalid_request_error",
            "system",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "tools": [{"type": "bash_20250124", "name": "bash"}],
                   "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request_error",
            "bash_20250124",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "messages": "x"}),
            400,
            "invalid_request_error",
            "messages",
        ),
    ] {
        let r = h.post("/anthropic/v1/messages", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(expected),
            "{body}: {v}"
        );
    }
    // Unknown paths and wrong methods keep the family's shape.
    let r = h.get("/anthropic/v1/nothing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = h.get("/anthropic/v1/messages").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["type"], "error");
}

/// `metadata.user_id` is a tag like any other: a per-user limit refuses a second call with
/// Anthropic's `rate_limit_error` and `retry-after`.
#[tokio::test]
async fn rate_limits_apply_by_metadata_user_id() {
    let h = start().await;
    let ask = |user: &str| {
        json!({"model": "claude", "max_tokens": 10, "metadata": {"user_id": user},
               "messages": [{"role": "user", "content": "x"}]})
    };
    let r = h.post("/anthropic/v1/messages", &ask("ann")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.post("/anthropic/v1/messages", &ask("ann")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.headers.contains_key("retry-after"));
    let r = h.post("/anthropic/v1/messages", &ask("bob")).await;
    assert_eq!(r.status, 200, "another user has their own bucket");
    // The Responses route's `metadata` scopes the same way.
    let r = h
        .post(
            "/openai/v1/responses",
            &json!({"model": "gpt", "input": "x", "metadata": {"user_id": "bob"}}),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

/// An agent that hangs up mid-stream cancels the provider call.
#[tokio::test]
async fn a_hang_up_reaches_the_provider() {
    let mock = MockProvider::start().await.unwrap();
    let h = Harness::start_with_mock(mock, CONFIG).await;
    for (path, body) in [
        (
            "/anthropic/v1/messages",
            json!({"model": "drip", "max_tokens": 500, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/openai/v1/responses",
            json!({"model": "drip", "input": "x", "stream": true}),
        ),
    ] {
        let before = h.mock.aborted_streams();
        let client = crate::harness::local_client();
        let request = http::Request::post(h.url(path))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let mut response = client.request(request).await.unwrap();
        crate::harness::read_frames(response.body_mut(), 3).await;
        drop(response);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.mock.aborted_streams() == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path}: the provider's stream was not cancelled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn the_model_lists_name_models_functions_and_shorthands() {
    let h = start().await;
    let r = h.get("/openai/v1/models").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["gpt", "claude", "openai::", "anthropic::"] {
        assert!(ids.contains(&id), "{id}: {ids:?}");
    }
    let r = h.get("/anthropic/v1/models").await;
    let v = r.json();
    assert_eq!(v["has_more"], false);
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["first_id"], v["data"][0]["id"]);
    let r = send(Method::POST, &h.url("/openai/v1/models"), Bytes::new(), &[]).await;
    assert_eq!(r.status, 405);
}

/// Reasoning from a provider that returns it (Anthropic's thinking, here) reaches the Responses
/// stream as a `reasoning` item before the message, and the Messages stream's tool calls as a
/// `tool_use` block filled by `input_json_delta`s.
#[tokio::test]
async fn reasoning_and_tool_use_streams_are_golden() {
    let h = start().await;
    let r = h
        .post(
            "/openai/v1/responses",
            &json!({"model": "claude", "input": "x", "stream": true, "reasoning": {"effort": "low"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = named_events(&r);
    let kinds = names(&events);
    assert_eq!(
        &kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added"
        ]
    );
    assert_eq!(events[2].1["item"]["type"], "reasoning");
    let reasoning_done = kinds
        .iter()
        .position(|k| *k == "response.output_item.done")
        .unwrap();
    assert_eq!(
        &kinds[reasoning_done - 2..=reasoning_done + 1],
        [
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added"
        ]
    );
    let item = &events[reasoning_done].1["item"];
    assert_eq!(item["summary"][0]["text"], "let me think");
    assert_eq!(item["encrypted_content"], "sig-mock");
    assert_eq!(events[reasoning_done + 1].1["item"]["type"], "message");
    assert_eq!(*kinds.last().unwrap(), "response.completed");

    let r = h
        .post(
            "/anthropic/v1/messages",
            &json!({"model": "gpt-tool", "max_tokens": 50, "stream": true,
                    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                    "messages": [{"role": "user", "content": "weather?"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = named_events(&r);
    let kinds = names(&events);
    assert_eq!(
        &kinds[..3],
        ["message_start", "ping", "content_block_start"]
    );
    assert_eq!(events[2].1["content_block"]["type"], "tool_use");
    assert_eq!(events[2].1["content_block"]["name"], "get_weather");
    let json: String = events
        .iter()
        .filter(|(k, _)| k == "content_block_delta")
        .map(|(_, e)| {
            assert_eq!(e["delta"]["type"], "input_json_delta");
            e["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );
}
