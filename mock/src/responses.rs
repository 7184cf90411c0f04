//! The OpenAI Responses API (`POST .../responses`): a `response` object, or its typed event
//! stream (`response.created` ... `response.completed`, each event with `sequence_number`).
//!
//! Model names choose the behaviour: `think` puts a `reasoning` item first (with a summary,
//! and with `encrypted_content` when the request `include`s `reasoning.encrypted_content`);
//! `tool` answers with a `function_call` (the request's forced tool, else `get_weather`);
//! `error-NNN` answers that status. The answer's text says whether the request sent back a
//! reasoning item with encrypted content (`reasoning seen: ENC`), so tests can check the round
//! trip.

use super::*;

/// `POST .../responses`.
pub(crate) async fn responses(body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return openai_error(
            status,
            &format!("mock provider error {code}"),
            "server_error",
        );
    }
    if body["store"] != json!(false) {
        // What a stateless client must send; the mock insists, as an organisation whose data
        // must not be kept at OpenAI would.
        return openai_error(
            StatusCode::BAD_REQUEST,
            "this mock only serves `store: false` requests",
            "invalid_request_error",
        );
    }
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let last_user = input
        .iter()
        .rev()
        .find(|i| i["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        })
        .unwrap_or_default();
    let seen: Vec<&str> = input
        .iter()
        .filter(|i| i["type"] == "reasoning")
        .filter_map(|i| i["encrypted_content"].as_str())
        .collect();
    let tool_output = input
        .iter()
        .rev()
        .find(|i| i["type"] == "function_call_output")
        .and_then(|i| i["output"].as_str());
    let think = model.contains("think");
    let encrypted = body["include"]
        .as_array()
        .is_some_and(|i| i.iter().any(|x| x == "reasoning.encrypted_content"));
    let tool = model.contains("tool") && tool_output.is_none();
    let tool_name = body["tool_choice"]["name"]
        .as_str()
        .unwrap_or("get_weather")
        .to_owned();
    let mut text = match tool_output {
        Some(out) => format!("the tool said: {out}"),
        None => format!("mock reply to: {last_user}"),
    };
    if !seen.is_empty() {
        text.push_str(&format!(" (reasoning seen: {})", seen.join(",")));
    }
    let mut output = Vec::new();
    if think {
        let mut item = json!({
            "type": "reasoning", "id": "rs_mock_1",
            "summary": [{"type": "summary_text", "text": "thinking it over"}]
        });
        if encrypted {
            item["encrypted_content"] = json!("ENCRYPTED-mock-1");
        }
        output.push(item);
    }
    if tool {
        output.push(json!({
            "type": "function_call", "id": "fc_mock_1", "call_id": "call_mock_1",
            "name": tool_name, "arguments": "{\"city\":\"Paris\"}", "status": "completed"
        }));
    } else {
        output.push(json!({
            "type": "message", "id": "msg_mock_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]
        }));
    }
    let input_tokens = (body["input"].to_string().len() / 4) as u64 + 1;
    let output_tokens = text.split_whitespace().count() as u64;
    let response = json!({
        "id": "resp_mock", "object": "response", "created_at": 1_700_000_000, "status": "completed",
        "model": model, "output": output,
        "usage": {
            "input_tokens": input_tokens, "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "output_tokens_details": {"reasoning_tokens": if think { 5 } else { 0 }}
        }
    });
    if body["stream"] != json!(true) {
        return json_response(StatusCode::OK, &response);
    }
    // The typed event stream.
    let mut events = Vec::new();
    let in_progress =
        json!({"id": "resp_mock", "object": "response", "status": "in_progress", "output": []});
    events.push(json!({"type": "response.created", "response": in_progress}));
    events.push(json!({"type": "response.in_progress", "response": in_progress}));
    for (index, item) in output.iter().enumerate() {
        let mut added = item.clone();
        match item["type"].as_str() {
            Some("reasoning") => {
                added["summary"] = json!([]);
                added.as_object_mut().map(|o| o.remove("encrypted_content"));
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                events.push(json!({"type": "response.reasoning_summary_part.added", "item_id": item["id"], "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                for piece in ["thinking", " it over"] {
                    events.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": item["id"], "output_index": index, "summary_index": 0, "delta": piece}));
                }
                events.push(json!({"type": "response.reasoning_summary_text.done", "item_id": item["id"], "output_index": index, "summary_index": 0, "text": "thinking it over"}));
            }
            Some("function_call") => {
                added["arguments"] = json!("");
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                for piece in ["{\"city\":", "\"Paris\"}"] {
                    events.push(json!({"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": index, "delta": piece}));
                }
                events.push(json!({"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": index, "arguments": item["arguments"]}));
            }
            _ => {
                added["content"] = json!([]);
                events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                events.push(json!({"type": "response.content_part.added", "item_id": item["id"], "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": ""}}));
                for word in text.split_inclusive(' ') {
                    events.push(json!({"type": "response.output_text.delta", "item_id": item["id"], "output_index": index, "content_index": 0, "delta": word}));
                }
                events.push(json!({"type": "response.output_text.done", "item_id": item["id"], "output_index": index, "content_index": 0, "text": text}));
            }
        }
        events.push(
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
    }
    events.push(json!({"type": "response.completed", "response": response}));
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = events
        .into_iter()
        .enumerate()
        .map(|(n, mut e)| {
            e["sequence_number"] = json!(n);
            let kind = e["type"].as_str().unwrap_or_default().to_owned();
            Ok(Frame::data(Bytes::from(format!(
                "event: {kind}\ndata: {e}\n\n"
            ))))
        })
        .collect();
    streamed(futures_util::stream::iter(frames), "text/event-stream")
}
