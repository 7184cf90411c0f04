//! Answers in the OpenAI format: a chat completion, or its chunks.

use super::*;

pub(super) fn response_model(target: &Target, meta: &InferenceMeta) -> String {
    match target {
        Target::Model(m) => format!("{MODEL_PREFIX}{m}"),
        Target::Function(f) => format!("{FUNCTION_PREFIX}{f}::variant_name::{}", meta.variant_name),
    }
}

pub(super) fn finish_reason_str(r: Option<FinishReason>) -> &'static str {
    match r {
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ContentFilter) => "content_filter",
        Some(FinishReason::ToolCall) => "tool_calls",
        _ => "stop",
    }
}

pub(super) fn usage_json(u: Usage) -> Value {
    let prompt = u.input_tokens.unwrap_or(0);
    let completion = u.output_tokens.unwrap_or(0);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "tensorzero_cost": null,
    })
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn completion_json(meta: &InferenceMeta, r: &ModelResponse, model: &str) -> Value {
    let text = if meta.is_json {
        Some(output_text(&r.content))
    } else {
        let t: String = r
            .content
            .iter()
            .filter_map(|b| match b {
                OutputBlock::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        (!t.is_empty()).then_some(t)
    };
    let tool_calls: Vec<Value> = r
        .content
        .iter()
        .filter_map(|b| match b {
            OutputBlock::ToolCall(c) => Some(json!({
                "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments }
            })),
            _ => None,
        })
        .collect();
    let mut message = json!({ "role": "assistant", "content": text });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": meta.inference_id,
        "episode_id": meta.episode_id,
        "choices": [{ "index": 0, "finish_reason": finish_reason_str(r.finish_reason), "message": message, "logprobs": null }],
        "created": now_secs(),
        "model": model,
        "system_fingerprint": "",
        "service_tier": null,
        "object": "chat.completion",
        "usage": usage_json(r.usage),
    })
}

/// OpenAI `chat.completion.chunk` events.
pub(in crate::api) struct OpenAiStream {
    id: Uuid,
    episode_id: Uuid,
    model: String,
    created: u64,
    include_usage: bool,
    sent_role: bool,
    /// Tool call ids in order of first appearance: a call's position is its `index`.
    tool_ids: Vec<String>,
    is_json: bool,
}

impl OpenAiStream {
    /// The stream of `meta`'s answer, named `model`.
    pub(super) fn new(meta: &InferenceMeta, model: String, include_usage: bool) -> Self {
        Self {
            id: meta.inference_id,
            episode_id: meta.episode_id,
            model,
            created: now_secs(),
            include_usage,
            sent_role: false,
            tool_ids: Vec::new(),
            is_json: meta.is_json,
        }
    }

    fn event(&self, choices: Value, usage: Value) -> Value {
        json!({
            "id": self.id,
            "episode_id": self.episode_id,
            "choices": choices,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "",
            "service_tier": null,
            "object": "chat.completion.chunk",
            "usage": usage,
        })
    }

    fn delta(&mut self) -> serde_json::Map<String, Value> {
        let mut delta = serde_json::Map::new();
        if !self.sent_role {
            self.sent_role = true;
            delta.insert("role".into(), json!("assistant"));
        }
        delta
    }
}

impl StreamFormat for OpenAiStream {
    fn chunk(&mut self, chunk: &ModelChunk) -> Vec<Value> {
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in &chunk.content {
            match block {
                ChunkBlock::Text { text: t, .. } => text.push_str(t),
                ChunkBlock::ToolCall {
                    id,
                    raw_name,
                    raw_arguments,
                } if !self.is_json => {
                    let index = match self.tool_ids.iter().position(|known| known == id) {
                        Some(i) => i,
                        None => {
                            self.tool_ids.push(id.clone());
                            let i = self.tool_ids.len() - 1;
                            calls.push(json!({
                                "index": i, "id": id, "type": "function",
                                "function": { "name": raw_name, "arguments": raw_arguments }
                            }));
                            continue;
                        }
                    };
                    calls.push(
                        json!({ "index": index, "function": { "arguments": raw_arguments } }),
                    );
                }
                _ => {}
            }
        }
        let first = !self.sent_role;
        if text.is_empty() && calls.is_empty() && !first {
            return Vec::new();
        }
        let mut delta = self.delta();
        if !text.is_empty() {
            delta.insert("content".into(), json!(text));
        }
        if !calls.is_empty() {
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        let choices =
            json!([{ "index": 0, "finish_reason": null, "logprobs": null, "delta": delta }]);
        vec![self.event(choices, Value::Null)]
    }

    fn finish(&mut self, usage: Usage, finish_reason: Option<FinishReason>) -> Vec<Value> {
        let delta = self.delta();
        let choices = json!([{
            "index": 0, "finish_reason": finish_reason_str(finish_reason), "logprobs": null, "delta": delta
        }]);
        let mut events = vec![self.event(choices, Value::Null)];
        if self.include_usage {
            events.push(self.event(json!([]), usage_json(usage)));
        }
        events
    }

    fn error(&mut self, error: &Error) -> Value {
        json!({ "error": { "message": error.to_string() } })
    }

    const PANIC_EVENTS: &'static str = "data: {\"error\":{\"message\":\"the gateway failed while streaming this answer (an internal error, logged); the answer is incomplete\"}}\n\ndata: [DONE]\n\n";
}
