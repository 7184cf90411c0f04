//! The Anthropic Messages format (JSON and its SSE event sequence).

use super::*;

/// The Anthropic Messages API: the same behaviours as the OpenAI route, in Anthropic's format.
pub(crate) async fn anthropic(state: Arc<MockState>, body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return anthropic_error(status, "api_error", &format!("mock provider error {code}"));
    }
    if model.contains("rate-limited") {
        let mut res = anthropic_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        );
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("2"));
        return res;
    }
    let last_user = last_user_text(&body["messages"], "content");
    let text = format!("mock reply to: {last_user}");
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["tool_choice"]
        .get("name")
        .filter(|_| body["tool_choice"]["type"] == "tool")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());
    let thinking = model.contains("think");
    let input_tokens = (body["messages"].to_string().len() / 4) as u64 + 1;
    let output_tokens = if tool {
        9
    } else {
        text.split_whitespace().count() as u64
    };
    if !stream {
        let mut content = Vec::new();
        if thinking {
            content.push(
                json!({ "type": "thinking", "thinking": "let me think", "signature": "sig-mock" }),
            );
        }
        if tool {
            content.push(json!({ "type": "tool_use", "id": "toolu_mock_1", "name": tool_name, "input": { "city": "Paris" } }));
        } else {
            content.push(json!({ "type": "text", "text": text }));
        }
        return json_response(
            StatusCode::OK,
            &json!({
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if tool { "tool_use" } else { "end_turn" }, "stop_sequence": null,
                "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens }
            }),
        );
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({ "type": "message_start", "message": { "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "usage": { "input_tokens": input_tokens, "output_tokens": 1 } } }),
    )];
    // Anthropic sends pings anywhere in a stream; the real API puts one after message_start.
    events.push(("ping", json!({ "type": "ping" })));
    let mut index = 0;
    if thinking {
        events.push(("content_block_start", json!({ "type": "content_block_start", "index": index, "content_block": { "type": "thinking", "thinking": "" } })));
        events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "thinking_delta", "thinking": "let me think" } })));
        events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "signature_delta", "signature": "sig-mock" } })));
        events.push((
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
        index += 1;
    }
    if tool {
        events.push(("content_block_start", json!({ "type": "content_block_start", "index": index,
            "content_block": { "type": "tool_use", "id": "toolu_mock_1", "name": tool_name, "input": {} } })));
        for piece in ["{\"city\"", ":\"Par", "is\"}"] {
            events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": piece } })));
        }
    } else {
        events.push(("content_block_start", json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } })));
        for w in text.split_inclusive(' ') {
            events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": w } })));
        }
    }
    events.push((
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": index }),
    ));
    events.push(("message_delta", json!({ "type": "message_delta",
        "delta": { "stop_reason": if tool { "tool_use" } else { "end_turn" }, "stop_sequence": null },
        "usage": { "output_tokens": output_tokens } })));
    events.push(("message_stop", json!({ "type": "message_stop" })));
    let overloaded = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
    if model.contains("first-error") {
        // A 200 whose first event is an error (Anthropic's overload shape).
        events = vec![("error", overloaded)];
    } else if model.contains("stream-error") {
        events.truncate(4);
        events.push(("error", overloaded));
    } else if model.contains("hostile-index") {
        // A tool block at an index far past anything real, after the first text.
        events.insert(
            4,
            ("content_block_start", json!({ "type": "content_block_start", "index": 1u64 << 40,
                "content_block": { "type": "tool_use", "id": "toolu_x", "name": "get_weather", "input": {} } })),
        );
    }
    let broken = model.contains("break");
    if broken {
        events.truncate(4);
    }
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (events.into_iter(), guard, broken),
        |(mut events, mut guard, broken)| async move {
            match events.next() {
                Some((name, data)) => {
                    let frame: Result<Frame<Bytes>, std::io::Error> = Ok(Frame::data(Bytes::from(
                        format!("event: {name}\ndata: {data}\n\n"),
                    )));
                    Some((frame, (events, guard, broken)))
                }
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.finished = true;
                    let frame: Result<Frame<Bytes>, std::io::Error> = Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mock provider broke the stream",
                    ));
                    Some((frame, (events, guard, false)))
                }
                None => {
                    guard.finished = true;
                    drop(guard);
                    None
                }
            }
        },
    )
    .boxed();
    streamed(frames, "text/event-stream")
}
