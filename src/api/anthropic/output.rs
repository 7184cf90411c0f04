//! The Messages API's answer: the `message` object, and its event stream.
//!
//! A stream opens with `message_start` and a `ping`; each content block is opened
//! (`content_block_start`), filled (`content_block_delta`: `text_delta`, `input_json_delta`,
//! `thinking_delta`, `signature_delta`) and closed (`content_block_stop`) before the next; it
//! ends with `message_delta` (the stop reason and usage) and `message_stop`, or with an `error`
//! event when the provider failed mid-stream.

use serde_json::{Value, json};

use super::super::stream::StreamFormat;
use crate::error::{Error, anthropic_error_type};
use crate::inference::InferenceMeta;
use crate::inference::functions::output_text;
use crate::model_call::{
    ChunkBlock, FinishReason, ModelChunk, ModelResponse, OutputBlock, RawUsage, Usage,
};

fn stop_reason(finish: Option<FinishReason>) -> &'static str {
    match finish {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCall) => "tool_use",
        Some(FinishReason::StopSequence) => "stop_sequence",
        Some(FinishReason::ContentFilter) => "refusal",
        _ => "end_turn",
    }
}

/// A tool call's arguments as the object Anthropic's `input` is; text that is not a JSON
/// object (a model's mistake) is kept under `_raw` rather than lost.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({ "_raw": arguments }),
    }
}

fn message_id(meta: &InferenceMeta) -> String {
    format!("msg_{}", meta.inference_id.simple())
}

/// A whole answer as a `message` object.
pub(super) fn message_object(model: &str, meta: &InferenceMeta, r: &ModelResponse) -> Value {
    let content: Vec<Value> = if meta.is_json {
        vec![json!({ "type": "text", "text": output_text(&r.content) })]
    } else {
        r.content
            .iter()
            .map(|b| match b {
                OutputBlock::Text(t) => json!({ "type": "text", "text": t }),
                OutputBlock::ToolCall(c) => json!({
                    "type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments)
                }),
                OutputBlock::Thought(t) => json!({
                    "type": "thinking",
                    "thinking": t.text.as_deref().unwrap_or_default(),
                    "signature": t.signature.as_deref().unwrap_or_default(),
                }),
            })
            .collect()
    };
    json!({
        "id": message_id(meta),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(r.finish_reason),
        "stop_sequence": null,
        "usage": {
            "input_tokens": r.usage.input_tokens.unwrap_or(0),
            "output_tokens": r.usage.output_tokens.unwrap_or(0),
            "tensorzero_cost": r.usage.cost,
        },
    })
}

/// What the open content block is, and the chunk block it comes from.
enum OpenBlock {
    Text(String),
    ToolUse(String),
    Thinking(String),
}

/// The Messages event stream of one answer.
pub(in crate::api) struct MessagesStream {
    model: String,
    id: String,
    /// Blocks opened so far (the next one's index).
    opened: usize,
    open: Option<OpenBlock>,
}

impl MessagesStream {
    /// The stream of `meta`'s answer, named `model` as the client asked.
    pub(super) fn new(model: String, meta: &InferenceMeta) -> Self {
        Self {
            model,
            id: message_id(meta),
            opened: 0,
            open: None,
        }
    }

    fn close(&mut self, events: &mut Vec<Value>) {
        if self.open.take().is_some() {
            events.push(json!({ "type": "content_block_stop", "index": self.opened - 1 }));
        }
    }

    fn open(&mut self, block: OpenBlock, start: Value, events: &mut Vec<Value>) {
        self.close(events);
        events.push(
            json!({ "type": "content_block_start", "index": self.opened, "content_block": start }),
        );
        self.opened += 1;
        self.open = Some(block);
    }

    fn delta(&self, delta: Value) -> Value {
        json!({ "type": "content_block_delta", "index": self.opened - 1, "delta": delta })
    }
}

impl StreamFormat for MessagesStream {
    const NAMED_EVENTS: bool = true;
    const DONE_MARKER: bool = false;

    fn start(&mut self) -> Vec<Value> {
        vec![
            json!({ "type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": 0, "output_tokens": 0 },
            } }),
            json!({ "type": "ping" }),
        ]
    }

    fn chunk(&mut self, chunk: &ModelChunk) -> Vec<Value> {
        let mut events = Vec::new();
        for block in &chunk.content {
            match block {
                ChunkBlock::Text { id, text } => {
                    if !matches!(&self.open, Some(OpenBlock::Text(b)) if b == id) {
                        self.open(
                            OpenBlock::Text(id.clone()),
                            json!({ "type": "text", "text": "" }),
                            &mut events,
                        );
                    }
                    if !text.is_empty() {
                        events.push(self.delta(json!({ "type": "text_delta", "text": text })));
                    }
                }
                ChunkBlock::ToolCall {
                    id,
                    raw_name,
                    raw_arguments,
                } => {
                    if !matches!(&self.open, Some(OpenBlock::ToolUse(b)) if b == id) {
                        self.open(
                            OpenBlock::ToolUse(id.clone()),
                            json!({ "type": "tool_use", "id": id, "name": raw_name, "input": {} }),
                            &mut events,
                        );
                    }
                    if !raw_arguments.is_empty() {
                        events.push(self.delta(
                            json!({ "type": "input_json_delta", "partial_json": raw_arguments }),
                        ));
                    }
                }
                ChunkBlock::Thought {
                    id,
                    text,
                    signature,
                } => {
                    if !matches!(&self.open, Some(OpenBlock::Thinking(b)) if b == id) {
                        self.open(
                            OpenBlock::Thinking(id.clone()),
                            json!({ "type": "thinking", "thinking": "", "signature": "" }),
                            &mut events,
                        );
                    }
                    if let Some(t) = text.as_deref().filter(|t| !t.is_empty()) {
                        events.push(self.delta(json!({ "type": "thinking_delta", "thinking": t })));
                    }
                    if let Some(s) = signature.as_deref().filter(|s| !s.is_empty()) {
                        events
                            .push(self.delta(json!({ "type": "signature_delta", "signature": s })));
                    }
                }
            }
        }
        events
    }

    fn finish(
        &mut self,
        usage: Usage,
        _raw_usage: &[RawUsage],
        finish_reason: Option<FinishReason>,
    ) -> Vec<Value> {
        let mut events = Vec::new();
        self.close(&mut events);
        events.push(json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason(finish_reason), "stop_sequence": null },
            "usage": {
                "input_tokens": usage.input_tokens.unwrap_or(0),
                "output_tokens": usage.output_tokens.unwrap_or(0),
                "tensorzero_cost": usage.cost,
            },
        }));
        events.push(json!({ "type": "message_stop" }));
        events
    }

    fn error(&mut self, error: &Error) -> Value {
        json!({ "type": "error", "error": {
            "type": anthropic_error_type(error.status()),
            "message": error.to_string(),
        } })
    }

    const PANIC_EVENTS: &'static str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the gateway failed while streaming this answer (an internal error, logged); the answer is incomplete\"}}\n\n";
}
