//! The Responses API's answer: the `response` object, and its typed event stream.
//!
//! A stream opens with `response.created` and `response.in_progress`; each output item (a
//! message, a function call, reasoning) is announced (`response.output_item.added`), filled
//! by its deltas and closed (`.done` events, then `response.output_item.done`) before the next
//! one opens; the stream ends with `response.completed` (or `response.incomplete` when the token
//! limit cut the answer short), carrying the whole response with its usage, or with
//! `response.failed` when the provider failed mid-stream. Every event has a `sequence_number`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::super::stream::StreamFormat;
use crate::error::Error;
use crate::inference::InferenceMeta;
use crate::inference::functions::output_text;
use crate::model_call::{
    ChunkBlock, FinishReason, ModelChunk, ModelResponse, OutputBlock, RawUsage, Usage,
};

/// What the request said that the response object repeats.
#[derive(Clone, Debug)]
pub(super) struct ResponseShape {
    /// `model` as the client sent it.
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub text_format: Value,
    /// Whether the response is stored (the observability store is on and `store` is not
    /// false), so a later request can continue from it.
    pub store: bool,
    /// The response this one continues.
    pub previous_response_id: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An id in OpenAI's style: a prefix and 32 hex digits.
fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn usage_json(u: &Usage) -> Value {
    let input = u.input_tokens.unwrap_or(0);
    let output = u.output_tokens.unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": { "cached_tokens": 0 },
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": input.saturating_add(output),
        "tensorzero_cost": u.cost,
    })
}

/// `status` and `incomplete_details` for a finish reason.
fn status_of(finish: Option<FinishReason>) -> (&'static str, Value) {
    match finish {
        Some(FinishReason::Length) => ("incomplete", json!({ "reason": "max_output_tokens" })),
        Some(FinishReason::ContentFilter) => ("incomplete", json!({ "reason": "content_filter" })),
        _ => ("completed", Value::Null),
    }
}

/// The `response` object around `output`.
#[allow(clippy::too_many_arguments)]
fn envelope(
    shape: &ResponseShape,
    id: &str,
    created_at: u64,
    status: &str,
    incomplete_details: Value,
    error: Value,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": shape.instructions,
        "max_output_tokens": shape.max_output_tokens,
        "model": shape.model,
        "output": output,
        "parallel_tool_calls": shape.parallel_tool_calls,
        "previous_response_id": shape.previous_response_id,
        "reasoning": { "effort": null, "summary": null },
        "store": shape.store,
        "temperature": shape.temperature,
        "text": { "format": shape.text_format },
        "tool_choice": shape.tool_choice,
        "tools": shape.tools,
        "top_p": shape.top_p,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {},
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": [{ "type": "output_text", "text": text, "annotations": [] }],
    })
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

fn reasoning_item(id: &str, text: &str, signature: Option<&str>) -> Value {
    let mut item = json!({
        "type": "reasoning",
        "id": id,
        "summary": if text.is_empty() { json!([]) } else { json!([{ "type": "summary_text", "text": text }]) },
    });
    if let Some(s) = signature {
        item["encrypted_content"] = json!(s);
    }
    item
}

/// A whole answer as a `response` object.
pub(super) fn response_object(
    shape: &ResponseShape,
    meta: &InferenceMeta,
    r: &ModelResponse,
) -> Value {
    let mut output = Vec::new();
    if meta.is_json {
        output.push(message_item(
            &item_id("msg"),
            &output_text(&r.content),
            "completed",
        ));
    } else {
        for block in &r.content {
            output.push(match block {
                OutputBlock::Text(t) => message_item(&item_id("msg"), t, "completed"),
                OutputBlock::ToolCall(c) => {
                    call_item(&item_id("fc"), &c.id, &c.name, &c.arguments, "completed")
                }
                OutputBlock::Thought(t) => reasoning_item(
                    &item_id("rs"),
                    t.text.as_deref().unwrap_or_default(),
                    t.signature.as_deref(),
                ),
            });
        }
    }
    let (status, incomplete) = status_of(r.finish_reason);
    envelope(
        shape,
        &format!("resp_{}", meta.inference_id.simple()),
        now_secs(),
        status,
        incomplete,
        Value::Null,
        output,
        usage_json(&r.usage),
    )
}

/// The item a stream is filling.
enum OpenItem {
    Message {
        id: String,
        block: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
    Reasoning {
        id: String,
        block: String,
        text: String,
        signature: Option<String>,
    },
}

/// The Responses event stream of one answer.
pub(in crate::api) struct ResponsesStream {
    shape: ResponseShape,
    id: String,
    created_at: u64,
    sequence: u64,
    /// The items closed so far, for the final `response` object.
    output: Vec<Value>,
    open: Option<OpenItem>,
}

impl ResponsesStream {
    /// The stream of `meta`'s answer.
    pub(super) fn new(shape: ResponseShape, meta: &InferenceMeta) -> Self {
        Self {
            shape,
            id: format!("resp_{}", meta.inference_id.simple()),
            created_at: now_secs(),
            sequence: 0,
            output: Vec::new(),
            open: None,
        }
    }

    /// `event` with its `type` and the next sequence number.
    fn event(&mut self, kind: &str, mut event: Value) -> Value {
        event["type"] = json!(kind);
        event["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        event
    }

    fn index(&self) -> usize {
        self.output.len()
    }

    fn response(
        &self,
        status: &str,
        incomplete: Value,
        error: Value,
        output: Vec<Value>,
        usage: Value,
    ) -> Value {
        envelope(
            &self.shape,
            &self.id,
            self.created_at,
            status,
            incomplete,
            error,
            output,
            usage,
        )
    }

    /// Closes the open item, if any: its `.done` events and `response.output_item.done`.
    fn close(&mut self, events: &mut Vec<Value>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.index();
        let item = match open {
            OpenItem::Message { id, text, .. } => {
                let e = self.event(
                    "response.output_text.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": [] }),
                );
                events.push(e);
                let e = self.event(
                    "response.content_part.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0,
                            "part": { "type": "output_text", "text": text, "annotations": [] } }),
                );
                events.push(e);
                message_item(&id, &text, "completed")
            }
            OpenItem::Call {
                id,
                call_id,
                name,
                arguments,
            } => {
                let e = self.event(
                    "response.function_call_arguments.done",
                    json!({ "item_id": id, "output_index": index, "name": name, "arguments": arguments }),
                );
                events.push(e);
                call_item(&id, &call_id, &name, &arguments, "completed")
            }
            OpenItem::Reasoning {
                id,
                text,
                signature,
                ..
            } => {
                let e = self.event(
                    "response.reasoning_summary_text.done",
                    json!({ "item_id": id, "output_index": index, "summary_index": 0, "text": text }),
                );
                events.push(e);
                let e = self.event(
                    "response.reasoning_summary_part.done",
                    json!({ "item_id": id, "output_index": index, "summary_index": 0,
                            "part": { "type": "summary_text", "text": text } }),
                );
                events.push(e);
                reasoning_item(&id, &text, signature.as_deref())
            }
        };
        let e = self.event(
            "response.output_item.done",
            json!({ "output_index": index, "item": item }),
        );
        events.push(e);
        self.output.push(item);
    }

    fn text(&mut self, block: &str, delta: &str, events: &mut Vec<Value>) {
        let same = matches!(&self.open, Some(OpenItem::Message { block: b, .. }) if b == block);
        if !same {
            self.close(events);
            let id = item_id("msg");
            let index = self.index();
            let e = self.event(
                "response.output_item.added",
                json!({ "output_index": index, "item": {
                    "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": [] } }),
            );
            events.push(e);
            let e = self.event(
                "response.content_part.added",
                json!({ "item_id": id, "output_index": index, "content_index": 0,
                        "part": { "type": "output_text", "text": "", "annotations": [] } }),
            );
            events.push(e);
            self.open = Some(OpenItem::Message {
                id,
                block: block.to_owned(),
                text: String::new(),
            });
        }
        if delta.is_empty() {
            return;
        }
        let index = self.index();
        let Some(OpenItem::Message { id, text, .. }) = &mut self.open else {
            return;
        };
        text.push_str(delta);
        let id = id.clone();
        let e = self.event(
            "response.output_text.delta",
            json!({ "item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": [] }),
        );
        events.push(e);
    }

    fn call(&mut self, call_id: &str, name: &str, delta: &str, events: &mut Vec<Value>) {
        let same = matches!(&self.open, Some(OpenItem::Call { call_id: c, .. }) if c == call_id);
        if !same {
            self.close(events);
            let id = item_id("fc");
            let index = self.index();
            let e = self.event(
                "response.output_item.added",
                json!({ "output_index": index, "item": call_item(&id, call_id, name, "", "in_progress") }),
            );
            events.push(e);
            self.open = Some(OpenItem::Call {
                id,
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: String::new(),
            });
        }
        if delta.is_empty() {
            return;
        }
        let index = self.index();
        let Some(OpenItem::Call { id, arguments, .. }) = &mut self.open else {
            return;
        };
        arguments.push_str(delta);
        let id = id.clone();
        let e = self.event(
            "response.function_call_arguments.delta",
            json!({ "item_id": id, "output_index": index, "delta": delta }),
        );
        events.push(e);
    }

    fn thought(
        &mut self,
        block: &str,
        delta: Option<&str>,
        signature: Option<&str>,
        events: &mut Vec<Value>,
    ) {
        let same = matches!(&self.open, Some(OpenItem::Reasoning { block: b, .. }) if b == block);
        if !same {
            self.close(events);
            let id = item_id("rs");
            let index = self.index();
            let e = self.event(
                "response.output_item.added",
                json!({ "output_index": index, "item": reasoning_item(&id, "", None) }),
            );
            events.push(e);
            let e = self.event(
                "response.reasoning_summary_part.added",
                json!({ "item_id": id, "output_index": index, "summary_index": 0,
                        "part": { "type": "summary_text", "text": "" } }),
            );
            events.push(e);
            self.open = Some(OpenItem::Reasoning {
                id,
                block: block.to_owned(),
                text: String::new(),
                signature: None,
            });
        }
        let index = self.index();
        let Some(OpenItem::Reasoning {
            id,
            text,
            signature: kept,
            ..
        }) = &mut self.open
        else {
            return;
        };
        if let Some(s) = signature {
            kept.get_or_insert_with(String::new).push_str(s);
        }
        let Some(delta) = delta.filter(|d| !d.is_empty()) else {
            return;
        };
        text.push_str(delta);
        let id = id.clone();
        let e = self.event(
            "response.reasoning_summary_text.delta",
            json!({ "item_id": id, "output_index": index, "summary_index": 0, "delta": delta }),
        );
        events.push(e);
    }
}

impl StreamFormat for ResponsesStream {
    const NAMED_EVENTS: bool = true;
    const DONE_MARKER: bool = false;

    fn start(&mut self) -> Vec<Value> {
        let response = self.response(
            "in_progress",
            Value::Null,
            Value::Null,
            Vec::new(),
            Value::Null,
        );
        let created = self.event("response.created", json!({ "response": response }));
        let progress = self.event("response.in_progress", json!({ "response": response }));
        vec![created, progress]
    }

    fn chunk(&mut self, chunk: &ModelChunk) -> Vec<Value> {
        let mut events = Vec::new();
        for block in &chunk.content {
            match block {
                ChunkBlock::Text { id, text } => self.text(id, text, &mut events),
                ChunkBlock::ToolCall {
                    id,
                    raw_name,
                    raw_arguments,
                } => self.call(id, raw_name, raw_arguments, &mut events),
                ChunkBlock::Thought {
                    id,
                    text,
                    signature,
                } => self.thought(id, text.as_deref(), signature.as_deref(), &mut events),
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
        let (status, incomplete) = status_of(finish_reason);
        let response = self.response(
            status,
            incomplete,
            Value::Null,
            self.output.clone(),
            usage_json(&usage),
        );
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let e = self.event(kind, json!({ "response": response }));
        events.push(e);
        events
    }

    fn error(&mut self, error: &Error) -> Value {
        let response = self.response(
            "failed",
            Value::Null,
            json!({ "code": "server_error", "message": error.to_string() }),
            self.output.clone(),
            Value::Null,
        );
        self.event("response.failed", json!({ "response": response }))
    }

    const PANIC_EVENTS: &'static str = "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":0,\"response\":{\"object\":\"response\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"the gateway failed while streaming this answer (an internal error, logged); the answer is incomplete\"},\"output\":[]}}\n\n";
}
