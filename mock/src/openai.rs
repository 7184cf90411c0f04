//! The OpenAI format: chat completions (JSON and SSE, every behaviour the crate docs list,
//! and the hostile modes) and embeddings.

use super::*;

/// `POST .../embeddings`.
pub(crate) async fn embeddings(body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return openai_error(status, &format!("mock error {code}"), "server_error");
    }
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(items) if items.iter().all(Value::is_u64) => vec![body["input"].clone()],
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let dimensions = body["dimensions"].as_u64().unwrap_or(4).clamp(1, 4096) as usize;
    let base64 = body["encoding_format"] == "base64";
    let mut tokens = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let text = match input {
                Value::String(s) => {
                    tokens += s.split_whitespace().count() as u64;
                    s.clone()
                }
                other => {
                    tokens += other.as_array().map_or(1, |a| a.len() as u64);
                    other.to_string()
                }
            };
            // A deterministic vector: each dimension from a running hash of the text.
            let mut h: u64 = 1469598103934665603;
            let vector: Vec<f32> = (0..dimensions)
                .map(|d| {
                    for b in text.bytes().chain([d as u8]) {
                        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
                    }
                    ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let embedding = if base64 {
                use base64::Engine;
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    )
}

pub(crate) async fn complete(state: Arc<MockState>, body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);

    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(answer) = super::quirks::answer(&model, &body, stream) {
        return answer;
    }
    let nth = {
        let mut seen = state.seen.lock().expect("mock lock");
        let n = seen.entry(model.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if let (Some(ms), 1) = (number_after(&model, "busy-"), nth) {
        let mut res = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "busy, come back later",
            "rate_limit_error",
        );
        res.headers_mut()
            .insert("retry-after-ms", http::HeaderValue::from(ms));
        return res;
    }
    if model.contains("flaky") && nth == 1 {
        return openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "mock provider briefly unavailable",
            "server_error",
        );
    }
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return openai_error(
            status,
            &format!("mock provider error {code}"),
            "server_error",
        );
    }
    if model.contains("rate-limited") {
        let mut res = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for mock requests",
            "rate_limit_error",
        );
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("2"));
        return res;
    }
    if let Some(response) = hostile(&model, stream) {
        return response;
    }
    if model.contains("garbage") {
        let mut res = Response::new(full("<html>definitely not json</html>"));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return res;
    }

    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
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
    let text = if model.contains("json") {
        "{\"answer\":42}".to_owned()
    } else if let Some(n) = number_after(&model, "choose-") {
        format!("{{\"thinking\":\"candidate {n} is best\",\"answer_choice\":{n}}}")
    } else if model.contains("cot") {
        "{\"thinking\":\"six times seven\",\"response\":{\"answer\":42}}".to_owned()
    } else {
        format!("mock reply to: {last_user}")
    };
    let prompt_tokens = (body["messages"].to_string().len() / 4) as u64 + 1;
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["tool_choice"]["function"]["name"]
        .as_str()
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());

    if !stream {
        let mut message =
            json!({ "role": "assistant", "content": if tool { Value::Null } else { json!(text) } });
        if tool {
            message["tool_calls"] = json!([{
                "id": "call_mock_1", "type": "function",
                "function": { "name": tool_name, "arguments": "{\"city\":\"Paris\"}" }
            }]);
        }
        let completion_tokens = if tool {
            9
        } else {
            text.split_whitespace().count() as u64
        };
        let answer = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "message": message, "finish_reason": if tool { "tool_calls" } else { "stop" } }],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }
        });
        if model.contains("break") {
            let text = answer.to_string();
            return Response::new(full(text[..text.len() / 2].to_owned()));
        }
        return json_response(StatusCode::OK, &answer);
    }

    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
        })
    };
    let mut events: Vec<Value> = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    let mut completion_tokens = 0u64;
    if tool {
        events.push(chunk(
            json!({ "tool_calls": [{ "index": 0, "id": "call_mock_1", "type": "function", "function": { "name": tool_name, "arguments": "" } }] }),
            Value::Null,
        ));
        for piece in ["{\"city\"", ":\"Par", "is\"}"] {
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                Value::Null,
            ));
            completion_tokens += 3;
        }
        events.push(chunk(json!({}), json!("tool_calls")));
    } else {
        let drip = number_after(&model, "drip-");
        let words: Vec<String> = if drip.is_some() {
            (0..200).map(|i| format!("w{i} ")).collect()
        } else {
            let mut words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
            if words.is_empty() {
                words.push(String::new());
            }
            words
        };
        for w in words {
            completion_tokens += 1;
            events.push(chunk(json!({ "content": w }), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
    }
    if include_usage {
        events.push(json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }
        }));
    }

    enum Step {
        Event(Value),
        Done,
        Break,
        Error,
    }
    let mut steps: Vec<Step> = events.into_iter().map(Step::Event).collect();
    if model.contains("first-error") {
        // A 200 whose first event is an error.
        steps = vec![Step::Error];
    } else if model.contains("stream-error") || model.contains("leak-key") {
        steps.truncate(2);
        steps.push(Step::Error);
    } else if model.contains("break") {
        steps.truncate(3);
        steps.push(Step::Break);
    } else {
        steps.push(Step::Done);
    }
    let gap = number_after(&model, "drip-").map(Duration::from_millis);
    let leaked: Option<String> = body["__mock_leaked_key"].as_str().map(str::to_owned);
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (steps.into_iter(), guard, true),
        move |(mut steps, mut guard, first)| {
            let leaked = leaked.clone();
            async move {
                let step = steps.next()?;
                if let (Some(gap), false) = (gap, first) {
                    tokio::time::sleep(gap).await;
                }
                let frame: Result<Frame<Bytes>, std::io::Error> = match step {
                    Step::Event(e) => Ok(Frame::data(Bytes::from(format!("data: {e}\n\n")))),
                    Step::Error => Ok(Frame::data(Bytes::from(format!(
                        "data: {}\n\n",
                        json!({ "error": { "message": match &leaked {
                    Some(key) => format!("mock provider failed mid-stream for key {key}"),
                    None => "mock provider failed mid-stream".to_owned(),
                }, "type": "server_error" } })
                    )))),
                    Step::Done => {
                        guard.finished = true;
                        Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n")))
                    }
                    Step::Break => {
                        // Let the chunks already written reach the client first, so the break lands
                        // mid-stream rather than before the first chunk.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        guard.finished = true;
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "mock provider broke the stream",
                        ))
                    }
                };
                Some((frame, (steps, guard, false)))
            }
        },
    )
    .boxed();
    streamed(frames, "text/event-stream")
}

/// A provider that misbehaves on purpose (`hostile-*` in the model name), to check that the
/// gateway bounds every index, size and duration it is sent.
pub(crate) fn hostile(model: &str, stream: bool) -> Option<Response<Body>> {
    const HUGE_INDEX: u64 = 1 << 40;
    const BIG: usize = 64 * 1024 * 1024;
    // A body sent in the given pieces, as a provider's answer arrives on the wire.
    let framed = |frames: Vec<Bytes>, content_type: &'static str| {
        let body = futures_util::stream::iter(frames.into_iter().map(|b| Ok(Frame::data(b))));
        streamed(body, content_type)
    };
    let sse = |frames: Vec<Bytes>| framed(frames, "text/event-stream");
    let chunk = |delta: Value| {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({ "id": "x", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": null }] })
        ))
    };
    Some(if model.contains("hostile-index") {
        if stream {
            sse(vec![
                chunk(json!({ "role": "assistant", "content": "" })),
                chunk(
                    json!({ "tool_calls": [{ "index": HUGE_INDEX, "id": "call_1", "type": "function",
                                "function": { "name": "f", "arguments": "{}" } }] }),
                ),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ])
        } else {
            json_response(
                StatusCode::OK,
                &json!({ "id": "x", "object": "chat.completion", "created": 1, "model": model,
                         "choices": [{ "index": HUGE_INDEX, "message": { "role": "assistant", "content": "hi" }, "finish_reason": "stop" }] }),
            )
        }
    } else if model.contains("hostile-longline") {
        // Sent in 1 MiB pieces, as a real provider's stream would arrive.
        let piece = Bytes::from(vec![b'x'; 1 << 20]);
        let mut frames = vec![Bytes::from_static(b"data: {\"a\":\"")];
        frames.extend(std::iter::repeat_n(piece, BIG >> 20));
        if stream {
            sse(frames)
        } else {
            frames.push(Bytes::from_static(b"\"}"));
            framed(frames, "application/json")
        }
    } else if model.contains("hostile-utf8") {
        let mut text = b"{\"role\":\"assistant\",\"content\":\"bad \xff\xfe bytes\"}".to_vec();
        if stream {
            let mut event = b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":".to_vec();
            event.append(&mut text);
            event.extend_from_slice(b",\"finish_reason\":null}]}\n\n");
            sse(vec![
                Bytes::from(event),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ])
        } else {
            let mut body = b"{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":".to_vec();
            body.append(&mut text);
            body.extend_from_slice(b",\"finish_reason\":\"stop\"}]}");
            let mut res = Response::new(full(body));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            res
        }
    } else if model.contains("hostile-retry") {
        let mut res = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "come back in a googol seconds",
            "rate_limit_error",
        );
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1e300"));
        res.headers_mut()
            .insert("retry-after-ms", http::HeaderValue::from_static("inf"));
        res
    } else if model.contains("hostile-noblank") && stream {
        let a = chunk(json!({ "role": "assistant", "content": "one" }));
        let b = chunk(json!({ "content": "two" }));
        // Both events' `data:` lines with no blank line between them: one event of two lines.
        let joined = [&a[..a.len() - 1], &b[..]].concat();
        sse(vec![
            Bytes::from(joined),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ])
    } else {
        return None;
    })
}
