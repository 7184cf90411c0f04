//! The Gemini format (`generateContent`, `streamGenerateContent?alt=sse`).

use super::*;

/// The Gemini API: the same behaviours, in Gemini's format (the model comes from the path).
pub(crate) async fn gemini(
    state: Arc<MockState>,
    body: Value,
    model: String,
    stream: bool,
) -> Response<Body> {
    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    // Google's canonical status names for the codes the mock is asked for.
    let google_status = |code: u64| match code {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_response(
            status,
            &json!({ "error": { "code": code, "message": format!("mock provider error {code}"), "status": google_status(code) } }),
        );
    }
    if model.contains("rate-limited") {
        // Gemini says when to come back in a RetryInfo detail, not in a header.
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({ "error": { "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
                     "details": [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s" }] } }),
        );
    }
    let last_user = last_user_text(&body["contents"], "parts");
    let text = format!("mock reply to: {last_user}");
    let prompt_tokens = (body["contents"].to_string().len() / 4) as u64 + 1;
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"][0]
        .as_str()
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());
    let thinking = model.contains("think");
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let usage = json!({ "promptTokenCount": prompt_tokens, "candidatesTokenCount": words.len(), "totalTokenCount": prompt_tokens + words.len() as u64 });
    let response = |parts: Value, finish: Option<&str>, usage: Option<&Value>| {
        let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        let mut r = json!({ "candidates": [candidate], "modelVersion": model });
        if let Some(u) = usage {
            r["usageMetadata"] = u.clone();
        }
        r
    };
    let mut parts = Vec::new();
    if thinking {
        parts.push(
            json!({ "text": "let me think", "thought": true, "thoughtSignature": "sig-mock" }),
        );
    }
    if tool {
        parts.push(json!({ "functionCall": { "name": tool_name, "args": { "city": "Paris" } } }));
    }
    if !stream {
        if !tool {
            parts.push(json!({ "text": text }));
        }
        return json_response(
            StatusCode::OK,
            &response(Value::Array(parts), Some("STOP"), Some(&usage)),
        );
    }
    let mut events: Vec<Value> = Vec::new();
    if !parts.is_empty() {
        events.push(response(Value::Array(parts), None, None));
    }
    if !tool {
        for w in &words {
            events.push(response(json!([{ "text": w }]), None, None));
        }
    }
    events.push(response(
        json!([{ "text": "" }]),
        Some("STOP"),
        Some(&usage),
    ));
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\r\n\r\n")))
        .collect();
    let overloaded = json!({ "error": { "code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE" } });
    if model.contains("first-error") {
        // A 200 whose first event is an error.
        frames = vec![Bytes::from(format!("data: {overloaded}\r\n\r\n"))];
    } else if model.contains("stream-error-raw") {
        // After two chunks, a pretty-printed error tail outside SSE framing, then the end.
        frames.truncate(2);
        frames.push(Bytes::from(
            serde_json::to_string_pretty(&overloaded).expect("json"),
        ));
    } else if model.contains("stream-error") {
        // After two chunks, an error as an SSE event on the same 200.
        frames.truncate(2);
        frames.push(Bytes::from(format!("data: {overloaded}\r\n\r\n")));
    }
    let broken = model.contains("break");
    if broken {
        frames.truncate(2);
    }
    let gap = number_after(&model, "drip-").map(Duration::from_millis);
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (frames.into_iter(), guard, broken, true),
        move |(mut frames, mut guard, broken, first)| async move {
            if let (Some(gap), false) = (gap, first) {
                tokio::time::sleep(gap).await;
            }
            match frames.next() {
                Some(frame) => Some((
                    Ok::<_, std::io::Error>(Frame::data(frame)),
                    (frames, guard, broken, false),
                )),
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.finished = true;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mock provider broke the stream",
                    );
                    Some((Err(error), (frames, guard, false, false)))
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
