//! AWS Bedrock Converse (JSON, and the binary event-stream framing).

use super::*;

pub(crate) fn bedrock_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let mut res = json_response(status, &json!({ "message": message }));
    if let Ok(v) = http::HeaderValue::from_str(kind) {
        res.headers_mut().insert("x-amzn-errortype", v);
    }
    res
}

/// Bedrock's Converse API: the same behaviours, the model coming from the path.
pub(crate) async fn bedrock(
    state: Arc<MockState>,
    body: Value,
    model: String,
    stream: bool,
) -> Response<Body> {
    use crate::eventstream::frame as encode_message;
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return bedrock_error(
            status,
            "InternalServerException",
            &format!("mock provider error {code}"),
        );
    }
    if model.contains("rate-limited") {
        return bedrock_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        );
    }
    let last_user = last_user_text(&body["messages"], "content");
    let text = format!("mock reply to: {last_user}");
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["toolConfig"]["toolChoice"]["tool"]["name"]
        .as_str()
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());
    let thinking = model.contains("think");
    let input_tokens = (body["messages"].to_string().len() / 4) as u64 + 1;
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let output_tokens = if tool { 9 } else { words.len() as u64 };
    let usage = json!({ "inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens });
    let stop_reason = if tool { "tool_use" } else { "end_turn" };
    if !stream {
        let mut content = Vec::new();
        if thinking {
            content.push(json!({ "reasoningContent": { "reasoningText": { "text": "let me think", "signature": "sig-mock" } } }));
        }
        if tool {
            content.push(json!({ "toolUse": { "toolUseId": "tooluse_mock_1", "name": tool_name, "input": { "city": "Paris" } } }));
        } else {
            content.push(json!({ "text": text }));
        }
        return json_response(
            StatusCode::OK,
            &json!({
                "output": { "message": { "role": "assistant", "content": content } },
                "stopReason": stop_reason, "usage": usage, "metrics": { "latencyMs": 1 }
            }),
        );
    }
    let mut events: Vec<(&str, Value)> = vec![("messageStart", json!({ "role": "assistant" }))];
    let mut index = 0;
    if thinking {
        events.push(("contentBlockDelta", json!({ "contentBlockIndex": index, "delta": { "reasoningContent": { "text": "let me think" } } })));
        events.push(("contentBlockDelta", json!({ "contentBlockIndex": index, "delta": { "reasoningContent": { "signature": "sig-mock" } } })));
        events.push(("contentBlockStop", json!({ "contentBlockIndex": index })));
        index += 1;
    }
    if tool {
        events.push(("contentBlockStart", json!({ "contentBlockIndex": index, "start": { "toolUse": { "toolUseId": "tooluse_mock_1", "name": tool_name } } })));
        for piece in ["{\"city\"", ":\"Par", "is\"}"] {
            events.push((
                "contentBlockDelta",
                json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": piece } } }),
            ));
        }
    } else {
        for w in &words {
            events.push((
                "contentBlockDelta",
                json!({ "contentBlockIndex": index, "delta": { "text": w } }),
            ));
        }
    }
    events.push(("contentBlockStop", json!({ "contentBlockIndex": index })));
    events.push(("messageStop", json!({ "stopReason": stop_reason })));
    events.push((
        "metadata",
        json!({ "usage": usage, "metrics": { "latencyMs": 1 } }),
    ));
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|(kind, payload)| {
            encode_message(
                &[
                    (":event-type", kind),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                payload.to_string().as_bytes(),
            )
        })
        .collect();
    if model.contains("hostile-index") {
        // A block index far past anything real: a parser that sizes a table by it dies.
        frames.insert(
            1,
            encode_message(
                &[
                    (":event-type", "contentBlockStart"),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                json!({ "contentBlockIndex": 1u64 << 40, "start": { "toolUse": { "toolUseId": "t", "name": "get_weather" } } })
                    .to_string()
                    .as_bytes(),
            ),
        );
    } else if model.contains("hostile-truncated") {
        // Two whole messages, then half of the third, then a clean end of the body.
        frames.truncate(3);
        let last = frames.pop().expect("three frames");
        frames.push(last.slice(..last.len() / 2));
    } else if model.contains("hostile-huge-frame") {
        // A prelude (with a correct checksum) that declares a 2 GiB message, then bytes that
        // never amount to it: the decoder must refuse, not wait and buffer.
        frames.truncate(1);
        let total: u32 = 2 << 30;
        let mut prelude = Vec::with_capacity(12);
        prelude.extend_from_slice(&total.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        frames.push(Bytes::from(prelude));
        frames.push(Bytes::from(vec![0u8; 1 << 20]));
    }
    if model.contains("stream-error") {
        frames.truncate(2);
        frames.push(encode_message(
            &[
                (":exception-type", "modelStreamErrorException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({ "message": "The model stream failed" })
                .to_string()
                .as_bytes(),
        ));
    }
    let broken = model.contains("break");
    if broken {
        frames.truncate(2);
    }
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (frames.into_iter(), guard, broken),
        |(mut frames, mut guard, broken)| async move {
            match frames.next() {
                Some(frame) => Some((Ok(Frame::data(frame)), (frames, guard, broken))),
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.finished = true;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mock provider broke the stream",
                    );
                    Some((Err(error), (frames, guard, false)))
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
    streamed(frames, "application/vnd.amazon.eventstream")
}
