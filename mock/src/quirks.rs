//! OpenAI-compatible providers' real quirks, each reproduced by a model name, so that a codec
//! that ignores one fails the way it would against the real provider:
//!
//! | model contains | behaves like | refuses |
//! |---|---|---|
//! | `quirk-mistral` | Mistral | tool-call ids that are not 9 letters/digits, `tool_choice: "required"` (it says `any`), `seed` (it says `random_seed`): 422 |
//! | `quirk-deepseek` | DeepSeek reasoner: `reasoning_content` | a tool-using assistant turn without its `reasoning_content`: 400 |
//! | `quirk-reasoning-field` | vLLM / Groq / SGLang: reasoning in `reasoning` | |
//! | `quirk-reasoning-details` | OpenRouter: `reasoning_details` parts | |
//! | `quirk-think-tags` | Together / Fireworks: `<think>...</think>` in the content (split across deltas when streamed) | |
//! | `quirk-xai` | xAI reasoning model: reasoning tokens outside `completion_tokens` | `presence_penalty`, `frequency_penalty`, `stop`: 400 |
//! | `quirk-groq` | Groq | JSON mode without the word "json" in a message, `store`, `logprobs`: 400 |
//! | `quirk-azure` | Azure: the first stream chunk has empty `choices` (content-filter results only) | |
//! | `quirk-vllm-error` | vLLM: an error inside a 200 stream as `{"object": "error", ...}` | |
//! | `quirk-openrouter-error` | OpenRouter: an error chunk with empty `choices` mid-stream | |
//! | `quirk-openrouter-402` | OpenRouter out of credits: 402 | everything |

use super::*;

/// The answer for a quirk model (`None`: not one).
pub(crate) fn answer(model: &str, body: &Value, stream: bool) -> Option<Response<Body>> {
    if !model.contains("quirk-") {
        return None;
    }
    if let Some(refusal) = refusal(model, body) {
        return Some(refusal);
    }
    if model.contains("openrouter-402") {
        return Some(json_response(
            StatusCode::PAYMENT_REQUIRED,
            &json!({"error": {"code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai/settings/credits"}}),
        ));
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let after_tool = messages.last().is_some_and(|m| m["role"] == "tool");
    let tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let reasoning = "let me reason";
    let text = if after_tool {
        "done with the tool".to_owned()
    } else {
        format!("mock reply to: {last_user}")
    };
    let call = (tools && !after_tool).then(|| {
        let id = if model.contains("mistral") {
            "D681PevKs"
        } else {
            "call_quirk_1"
        };
        json!([{ "id": id, "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }])
    });
    let mut message = json!({ "role": "assistant", "content": if call.is_some() { Value::Null } else { json!(text) } });
    let mut deltas: Vec<Value> = Vec::new();
    if model.contains("deepseek") {
        message["reasoning_content"] = json!(reasoning);
        deltas.push(json!({ "reasoning_content": reasoning }));
    } else if model.contains("reasoning-field") {
        message["reasoning"] = json!(reasoning);
        deltas.push(json!({ "reasoning": reasoning }));
    } else if model.contains("reasoning-details") {
        message["reasoning"] = json!(reasoning);
        message["reasoning_details"] = json!([{ "type": "reasoning.text", "text": reasoning, "format": "unknown", "index": 0 }]);
        deltas.push(json!({ "reasoning": reasoning, "reasoning_details": [{ "type": "reasoning.text", "text": reasoning, "index": 0 }] }));
    } else if model.contains("think-tags") && call.is_none() {
        message["content"] = json!(format!("<think>{reasoning}</think>{text}"));
        for piece in ["<thi", "nk>let me ", "reason</th", "ink>"] {
            deltas.push(json!({ "content": piece }));
        }
    }
    match &call {
        Some(call) => {
            message["tool_calls"] = call.clone();
            deltas.push(json!({ "tool_calls": [{ "index": 0, "id": call[0]["id"], "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] }));
        }
        None => {
            for word in text.split_inclusive(' ') {
                deltas.push(json!({ "content": word }));
            }
        }
    }
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let mut usage = json!({ "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13 });
    if model.contains("xai") {
        // xAI counts reasoning apart from the completion.
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": 50 });
        usage["total_tokens"] = json!(63);
    }
    if !stream {
        return Some(json_response(
            StatusCode::OK,
            &json!({
                "id": "chatcmpl-quirk", "object": "chat.completion", "created": 1_700_000_000, "model": model,
                "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
                "usage": usage
            }),
        ));
    }
    let chunk = |delta: Value, finish: Value| {
        json!({ "id": "chatcmpl-quirk", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };
    let mut events: Vec<Value> = deltas.into_iter().map(|d| chunk(d, Value::Null)).collect();
    if model.contains("azure") {
        events.insert(0, json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}));
    }
    if model.contains("vllm-error") {
        events.truncate(2);
        events.push(json!({"object": "error", "message": "The model's context window was exceeded mid-generation", "type": "BadRequestError", "param": null, "code": 400}));
    }
    if model.contains("openrouter-error") {
        events.truncate(2);
        events.push(json!({"id": "gen-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [],
            "error": {"code": 502, "message": "Provider returned error: upstream overloaded"}}));
    }
    events.push(chunk(json!({}), json!(finish)));
    events.push(json!({ "id": "chatcmpl-quirk", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [], "usage": usage }));
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = events
        .into_iter()
        .map(|e| Ok(Frame::data(Bytes::from(format!("data: {e}\n\n")))))
        .collect();
    frames.push(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))));
    Some(streamed(
        futures_util::stream::iter(frames),
        "text/event-stream",
    ))
}

/// What the provider would refuse, as it refuses it.
fn refusal(model: &str, body: &Value) -> Option<Response<Body>> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    if model.contains("mistral") {
        let ok_id = |id: &str| id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        let ids = messages.iter().flat_map(|m| {
            let mut ids: Vec<String> = m["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect();
            ids.extend(m["tool_call_id"].as_str().map(str::to_owned));
            ids
        });
        for id in ids {
            if !ok_id(&id) {
                return Some(openai_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!(
                        "Tool call id was {id} but must be a-z, A-Z, 0-9, with a length of 9."
                    ),
                    "invalid_request_error",
                ));
            }
        }
        if body["tool_choice"] == "required" {
            return Some(openai_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "tool_choice: Input should be 'auto', 'none', 'any' or 'required'... (the mock: Mistral says 'any')",
                "invalid_request_error",
            ));
        }
        if body.get("seed").is_some() {
            return Some(openai_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "seed: Extra inputs are not permitted",
                "invalid_request_error",
            ));
        }
    }
    if model.contains("deepseek") && body["tools"].as_array().is_some_and(|t| !t.is_empty()) {
        let missing = messages.iter().any(|m| {
            m["role"] == "assistant"
                && m.get("tool_calls").is_some()
                && m.get("reasoning_content").is_none()
        });
        if missing {
            return Some(openai_error(
                StatusCode::BAD_REQUEST,
                "Missing `reasoning_content` field in the assistant message at message index 2.",
                "invalid_request_error",
            ));
        }
    }
    if model.contains("xai") {
        for key in ["presence_penalty", "frequency_penalty", "stop"] {
            if body.get(key).is_some() {
                return Some(openai_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Argument not supported on this model: {key}"),
                    "invalid_request_error",
                ));
            }
        }
    }
    if model.contains("groq") {
        for key in ["store", "logprobs"] {
            if body.get(key).is_some() {
                return Some(openai_error(
                    StatusCode::BAD_REQUEST,
                    &format!("property '{key}' is unsupported"),
                    "invalid_request_error",
                ));
            }
        }
        let json_mode = body["response_format"]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("json"));
        let says_json = messages.iter().any(|m| {
            m["content"]
                .to_string()
                .to_ascii_lowercase()
                .contains("json")
        });
        if json_mode && !says_json {
            return Some(openai_error(
                StatusCode::BAD_REQUEST,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                "invalid_request_error",
            ));
        }
    }
    None
}
