//! Answers in the OpenAI format: a chat completion, or its chunks.

use std::borrow::Cow;

use serde::Serialize;

use crate::model_call::{RawResponse, RawUsage, RawWanted};

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
    serde_json::to_value(UsageBody::from(u)).expect("usage serializes")
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A `chat.completion`, written straight from the model's answer. Fields are declared in
/// alphabetical order: the answer reads byte for byte as it did when it was built as a
/// `serde_json::Value` (whose objects sort their keys).
#[derive(Serialize)]
pub(super) struct Completion<'a> {
    choices: [Choice<'a>; 1],
    created: u64,
    episode_id: Uuid,
    id: Uuid,
    model: &'a str,
    object: &'static str,
    service_tier: Option<()>,
    system_fingerprint: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensorzero_raw_response: Option<&'a [RawResponse]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensorzero_raw_usage: Option<&'a [RawUsage]>,
    usage: UsageBody,
}

#[derive(Serialize)]
struct Choice<'a> {
    finish_reason: &'static str,
    index: u32,
    logprobs: Option<()>,
    message: CompletionMessage<'a>,
}

#[derive(Serialize)]
struct CompletionMessage<'a> {
    content: Option<Cow<'a, str>>,
    role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallBody<'a>>,
}

#[derive(Serialize)]
struct ToolCallBody<'a> {
    function: FunctionCallBody<'a>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct FunctionCallBody<'a> {
    arguments: &'a str,
    name: &'a str,
}

/// `usage` as OpenAI writes it, and `tensorzero_cost` (always written: `null` when unknown).
#[derive(Serialize)]
pub(super) struct UsageBody {
    completion_tokens: u32,
    prompt_tokens: u32,
    tensorzero_cost: Option<crate::cost::Dollars>,
    total_tokens: u32,
}

impl From<Usage> for UsageBody {
    fn from(u: Usage) -> Self {
        let prompt = u.input_tokens.unwrap_or(0);
        let completion = u.output_tokens.unwrap_or(0);
        Self {
            completion_tokens: completion,
            prompt_tokens: prompt,
            tensorzero_cost: u.cost,
            total_tokens: prompt.saturating_add(completion),
        }
    }
}

pub(super) fn completion<'a>(
    meta: &InferenceMeta,
    r: &'a ModelResponse,
    model: &'a str,
) -> Completion<'a> {
    let texts = || {
        r.content.iter().filter_map(|b| match b {
            OutputBlock::Text(t) => Some(t.as_str()),
            _ => None,
        })
    };
    let content = if meta.is_json {
        Some(output_text(&r.content).into())
    } else {
        let mut parts = texts();
        match (parts.next(), parts.next()) {
            (None, _) => None,
            (Some(""), None) => None,
            // One text block (the usual answer) is borrowed, not copied.
            (Some(only), None) => Some(Cow::Borrowed(only)),
            _ => Some(Cow::<str>::Owned(texts().collect())).filter(|t| !t.is_empty()),
        }
    };
    let tool_calls = r
        .content
        .iter()
        .filter_map(|b| match b {
            OutputBlock::ToolCall(c) => Some(ToolCallBody {
                function: FunctionCallBody {
                    arguments: &c.arguments,
                    name: &c.name,
                },
                id: &c.id,
                kind: "function",
            }),
            _ => None,
        })
        .collect();
    Completion {
        choices: [Choice {
            finish_reason: finish_reason_str(r.finish_reason),
            index: 0,
            logprobs: None,
            message: CompletionMessage {
                content,
                role: "assistant",
                tool_calls,
            },
        }],
        created: now_secs(),
        episode_id: meta.episode_id,
        id: meta.inference_id,
        model,
        object: "chat.completion",
        service_tier: None,
        system_fingerprint: "",
        tensorzero_raw_response: meta
            .raw_wanted
            .response
            .then(|| r.raw.as_ref().map_or(&[][..], |raw| &raw.responses[..])),
        tensorzero_raw_usage: meta
            .raw_wanted
            .usage
            .then(|| r.raw.as_ref().map_or(&[][..], |raw| &raw.usage[..])),
        usage: r.usage.into(),
    }
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
    raw_wanted: RawWanted,
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
            raw_wanted: meta.raw_wanted,
        }
    }

    /// Adds the raw records the client asked for to an event.
    fn with_raw(&self, mut event: Value, chunk: &ModelChunk) -> Value {
        if let Some(raw) = &chunk.raw {
            if self.raw_wanted.response {
                if let Some(text) = &raw.chunk {
                    event["tensorzero_raw_chunk"] = json!(text);
                }
                if !raw.responses.is_empty() {
                    event["tensorzero_raw_response"] = json!(raw.responses);
                }
            }
        }
        event
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
        let has_raw = chunk.raw.as_ref().is_some_and(|r| {
            self.raw_wanted.response && (r.chunk.is_some() || !r.responses.is_empty())
        });
        if text.is_empty() && calls.is_empty() && !first && !has_raw {
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
        vec![self.with_raw(self.event(choices, Value::Null), chunk)]
    }

    fn finish(
        &mut self,
        usage: Usage,
        raw_usage: &[RawUsage],
        finish_reason: Option<FinishReason>,
    ) -> Vec<Value> {
        let delta = self.delta();
        let choices = json!([{
            "index": 0, "finish_reason": finish_reason_str(finish_reason), "logprobs": null, "delta": delta
        }]);
        let mut events = vec![self.event(choices, Value::Null)];
        if self.include_usage {
            let mut event = self.event(json!([]), usage_json(usage));
            if self.raw_wanted.usage {
                event["tensorzero_raw_usage"] = json!(raw_usage);
            }
            events.push(event);
        }
        events
    }

    fn error(&mut self, error: &Error) -> Value {
        json!({ "error": { "message": error.to_string() } })
    }

    const PANIC_EVENTS: &'static str = "data: {\"error\":{\"message\":\"the gateway failed while streaming this answer (an internal error, logged); the answer is incomplete\"}}\n\ndata: [DONE]\n\n";
}
