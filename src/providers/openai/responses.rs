//! The OpenAI Responses API as an upstream (`type = "openai"` with `api_type = "responses"`,
//! or the shorthand `openai::responses::MODEL`): `POST {api_base}/responses`, stateless
//! (`store: false`), non-streaming or as its typed event stream.
//!
//! Reasoning comes back as `reasoning` output items: their summary text becomes a thought
//! block's text and, with `include_encrypted_reasoning`, their `encrypted_content` its
//! signature (as `ITEM_ID:ENCRYPTED`, so that both go back on the next turn: a stateless
//! request must carry the reasoning it continues from). Azure's Responses endpoint works
//! through `api_base` (`https://RESOURCE.openai.azure.com/openai/v1/`).

use crate::providers::stream_status::StreamStatus;
use std::collections::HashMap;

use futures_util::StreamExt;
use http::Request;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::super::{
    CallContext, ChunkSource, Edits, ProviderSpec, SseReader, apply_body_edit, apply_header_edits,
    bearer, peek_stream,
};
use crate::config::JsonMode;
use crate::error::Error;
use crate::model_call::{
    ChunkBlock, ContentBlock, FileInput, FinishReason, ModelChunk, ModelRequest, ModelResponse,
    OutputBlock, ProviderOutput, Role, Thought, ToolCall, ToolChoice, Usage,
};
use crate::upstream::{error_text, snippet};
use switchyard_layers::Secret;

/// Calls one Responses API endpoint.
#[derive(Debug)]
pub struct ResponsesAdapter {
    model: String,
    url: String,
    include_encrypted_reasoning: bool,
    provider_tools: Vec<Value>,
}

impl ResponsesAdapter {
    /// `{api_base}/responses` for `model`.
    pub fn new(
        model: &str,
        api_base: &str,
        include_encrypted_reasoning: bool,
        provider_tools: Vec<Value>,
    ) -> Self {
        Self {
            model: model.to_owned(),
            url: format!("{}/responses", api_base.trim_end_matches('/')),
            include_encrypted_reasoning,
            provider_tools,
        }
    }

    /// Makes one call.
    pub async fn infer(
        &self,
        provider: &ProviderSpec,
        request: &ModelRequest,
        key: Option<&Secret>,
        edits: &Edits<'_>,
        cx: &CallContext<'_>,
    ) -> Result<ProviderOutput, Error> {
        let mut body = self.request_body(request);
        for edit in &edits.body {
            apply_body_edit(&mut body, edit);
        }
        let mut builder = Request::post(&self.url).header(CONTENT_TYPE, "application/json");
        if request.stream {
            builder = builder.header(ACCEPT, "text/event-stream");
        }
        if let Some(key) = key {
            builder = builder.header(AUTHORIZATION, bearer(key)?);
        }
        let mut http_request = builder
            .body(Full::new(crate::upstream::json_body(&body)))
            .map_err(|e| {
                provider.failure(format!("cannot build a request to `{}`: {e}", self.url))
            })?;
        apply_header_edits(http_request.headers_mut(), &edits.headers)?;
        let response = super::super::send(provider, cx, http_request).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if request.stream && !is_json {
            let state = EventState::new(SseReader::new(response.into_body()).tapped(cx), provider);
            return peek_stream(state, || {
                provider.failure("the stream ended before any data arrived")
            })
            .await;
        }
        let bytes = cx.read_answer(provider, response.into_body()).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            provider.failure(format!("the answer is not JSON ({e}): {}", snippet(&bytes)))
        })?;
        let parsed = parse_response(&value).map_err(|e| provider.failure(e))?;
        if request.stream {
            let first = ModelChunk {
                content: parsed
                    .content
                    .iter()
                    .enumerate()
                    .map(|(i, b)| as_chunk_block(i, b))
                    .collect(),
                usage: Some(parsed.usage),
                finish_reason: parsed.finish_reason,
                raw: None,
            };
            return Ok(ProviderOutput::Stream {
                first,
                rest: futures_util::stream::empty().boxed(),
            });
        }
        Ok(ProviderOutput::Complete(parsed))
    }

    /// The request body, before `extra_body` edits.
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        let mut input = Vec::new();
        for message in &request.messages {
            push_items(&mut input, message.role, &message.content);
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(self.model));
        body.insert("input".into(), Value::Array(input));
        body.insert("store".into(), json!(false));
        if let Some(system) = &request.system {
            body.insert("instructions".into(), json!(system));
        }
        let p = &request.params;
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.to_owned(), v);
            }
        };
        put("temperature", p.temperature.map(|v| json!(v)));
        put("top_p", p.top_p.map(|v| json!(v)));
        put("max_output_tokens", p.max_tokens.map(|v| json!(v)));
        put("service_tier", p.service_tier.as_ref().map(|v| json!(v)));
        put(
            "reasoning",
            p.reasoning_effort.as_ref().map(|e| json!({ "effort": e })),
        );
        for (ignored, set) in [
            ("seed", p.seed.is_some()),
            ("presence_penalty", p.presence_penalty.is_some()),
            ("frequency_penalty", p.frequency_penalty.is_some()),
            ("stop_sequences", p.stop_sequences.is_some()),
            ("thinking_budget_tokens", p.thinking_budget_tokens.is_some()),
        ] {
            if set {
                tracing::warn!(
                    parameter = ignored,
                    "the OpenAI Responses API has no `{ignored}`; it is not sent"
                );
            }
        }
        let mut text = Map::new();
        match p.json_mode {
            None | Some(JsonMode::Off) | Some(JsonMode::ImplicitTool) => {}
            Some(JsonMode::On) => {
                text.insert("format".into(), json!({ "type": "json_object" }));
            }
            Some(JsonMode::Strict) => {
                text.insert(
                    "format".into(),
                    match &request.output_schema {
                        Some(schema) => json!({
                            "type": "json_schema", "name": "response", "strict": true, "schema": schema
                        }),
                        None => json!({ "type": "json_object" }),
                    },
                );
            }
        }
        if let Some(v) = &p.verbosity {
            text.insert("verbosity".into(), json!(v));
        }
        if !text.is_empty() {
            put("text", Some(Value::Object(text)));
        }
        let mut tools: Vec<Value> = Vec::new();
        if let Some(config) = request.tools.as_ref().filter(|t| !t.tools.is_empty()) {
            tools.extend(config.tools.iter().map(|t| {
                json!({
                    "type": "function", "name": t.name, "description": t.description,
                    "parameters": t.parameters, "strict": t.strict
                })
            }));
            put(
                "tool_choice",
                Some(match &config.tool_choice {
                    ToolChoice::None => json!("none"),
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Specific(name) => json!({ "type": "function", "name": name }),
                }),
            );
            put(
                "parallel_tool_calls",
                config.parallel_tool_calls.map(Value::Bool),
            );
        }
        // Built-in tools (web search, ...) go as configured.
        tools.extend(self.provider_tools.iter().cloned());
        if !tools.is_empty() {
            put("tools", Some(Value::Array(tools)));
        }
        if self.include_encrypted_reasoning {
            put("include", Some(json!(["reasoning.encrypted_content"])));
        }
        if request.stream {
            put("stream", Some(json!(true)));
        }
        Value::Object(body)
    }
}

/// A message's blocks as Responses input items: a message item for its text and files, and
/// one item per tool call, tool result and reasoning.
fn push_items(out: &mut Vec<Value>, role: Role, content: &[ContentBlock]) {
    let mut parts: Vec<Value> = Vec::new();
    let flush = |parts: &mut Vec<Value>, out: &mut Vec<Value>| {
        if !parts.is_empty() {
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            out.push(json!({ "role": role, "content": std::mem::take(parts) }));
        }
    };
    for block in content {
        match block {
            ContentBlock::Text(text) => parts.push(match role {
                Role::User => json!({ "type": "input_text", "text": text }),
                Role::Assistant => json!({ "type": "output_text", "text": text }),
            }),
            ContentBlock::File(file) => parts.push(match file {
                FileInput::Url { url, .. } => json!({ "type": "input_image", "image_url": url }),
                FileInput::Base64 { mime_type, data } if mime_type.starts_with("image/") => {
                    json!({ "type": "input_image", "image_url": format!("data:{mime_type};base64,{data}") })
                }
                FileInput::Base64 { mime_type, data } => json!({
                    "type": "input_file", "filename": "file",
                    "file_data": format!("data:{mime_type};base64,{data}")
                }),
            }),
            ContentBlock::ToolCall(call) => {
                flush(&mut parts, out);
                out.push(json!({
                    "type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments
                }));
            }
            ContentBlock::ToolResult(result) => {
                flush(&mut parts, out);
                out.push(json!({
                    "type": "function_call_output", "call_id": result.id, "output": result.result
                }));
            }
            ContentBlock::Thought(thought) => {
                flush(&mut parts, out);
                if let Some(item) = reasoning_item(thought) {
                    out.push(item);
                }
            }
            ContentBlock::Unknown { data } => parts.push(data.clone()),
        }
    }
    flush(&mut parts, out);
}

/// A thought as a `reasoning` input item: only one this API produced (its signature holds
/// the item id and the encrypted reasoning); other providers' thoughts are not sent.
fn reasoning_item(thought: &Thought) -> Option<Value> {
    let (id, encrypted) = thought
        .signature
        .as_deref()?
        .split_once(':')
        .filter(|(id, _)| id.starts_with("rs_"))?;
    let summary: Vec<Value> = thought
        .text
        .iter()
        .map(|t| json!({ "type": "summary_text", "text": t }))
        .collect();
    let mut item = json!({ "type": "reasoning", "id": id, "summary": summary });
    if !encrypted.is_empty() {
        item["encrypted_content"] = json!(encrypted);
    }
    Some(item)
}

/// A `reasoning` output item as a thought.
fn thought_of(item: &Value) -> Thought {
    let summary: Vec<&str> = item["summary"]
        .as_array()
        .map(|s| s.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default();
    let id = item["id"].as_str().unwrap_or_default();
    let encrypted = item["encrypted_content"].as_str().unwrap_or_default();
    Thought {
        text: (!summary.is_empty()).then(|| summary.join("\n")),
        signature: (!id.is_empty()).then(|| format!("{id}:{encrypted}")),
    }
}

/// The Responses usage shape.
fn usage_of(value: &Value) -> Usage {
    let n = |k: &str| {
        value[k]
            .as_u64()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    Usage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cost: None,
    }
}

/// A whole `response` object.
pub fn parse_response(value: &Value) -> Result<ModelResponse, String> {
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(format!(
            "the provider reported an error: {}",
            error_text(error)
        ));
    }
    let output = value["output"].as_array().ok_or_else(|| {
        format!(
            "the answer is not a Responses API response (no `output`): {}",
            snippet(value.to_string().as_bytes())
        )
    })?;
    let mut content = Vec::new();
    for item in output {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    match part["type"].as_str() {
                        Some("output_text") => content.push(OutputBlock::Text(
                            part["text"].as_str().unwrap_or_default().to_owned(),
                        )),
                        Some("refusal") => content.push(OutputBlock::Text(
                            part["refusal"].as_str().unwrap_or_default().to_owned(),
                        )),
                        _ => {}
                    }
                }
            }
            Some("function_call") => content.push(OutputBlock::ToolCall(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                name: item["name"].as_str().unwrap_or_default().to_owned(),
                arguments: item["arguments"].as_str().unwrap_or("{}").to_owned(),
            })),
            Some("reasoning") => content.push(OutputBlock::Thought(thought_of(item))),
            // Built-in tool calls (web search, ...) ran at the provider: their results are in
            // the message that follows.
            _ => {}
        }
    }
    Ok(ModelResponse {
        finish_reason: Some(finish_of(value, &content)),
        usage: usage_of(&value["usage"]),
        content,
        raw: None,
    })
}

fn finish_of(response: &Value, content: &[OutputBlock]) -> FinishReason {
    match response["status"].as_str() {
        Some("incomplete") => match response["incomplete_details"]["reason"].as_str() {
            Some("content_filter") => FinishReason::ContentFilter,
            _ => FinishReason::Length,
        },
        _ if content
            .iter()
            .any(|b| matches!(b, OutputBlock::ToolCall(_))) =>
        {
            FinishReason::ToolCall
        }
        _ => FinishReason::Stop,
    }
}

fn as_chunk_block(index: usize, block: &OutputBlock) -> ChunkBlock {
    let id = index.to_string();
    match block {
        OutputBlock::Text(text) => ChunkBlock::Text {
            id,
            text: text.clone(),
        },
        OutputBlock::ToolCall(call) => ChunkBlock::ToolCall {
            id: call.id.clone(),
            raw_name: call.name.clone(),
            raw_arguments: call.arguments.clone(),
        },
        OutputBlock::Thought(t) => ChunkBlock::Thought {
            id,
            text: t.text.clone(),
            signature: t.signature.clone(),
        },
    }
}

/// The most output items one stream may open (each keeps a small entry here).
const MAX_ITEMS: usize = 4096;

/// The typed event stream, read event by event.
struct EventState {
    reader: SseReader,
    /// Function-call item ids to their `call_id` (argument deltas name the item).
    calls: HashMap<String, String>,
    status: StreamStatus,
}

impl EventState {
    fn new(reader: SseReader, provider: &ProviderSpec) -> Self {
        Self {
            reader,
            calls: HashMap::new(),
            status: StreamStatus::of(provider),
        }
    }

    /// One event as a chunk (`None`: nothing for the client in it).
    fn parse(&mut self, data: &str) -> Result<Option<ModelChunk>, String> {
        let event: Value = serde_json::from_str(data).map_err(|e| {
            format!(
                "a stream event is not JSON ({e}): {}",
                snippet(data.as_bytes())
            )
        })?;
        let kind = event["type"].as_str().unwrap_or_default();
        let item_id = || event["item_id"].as_str().unwrap_or_default().to_owned();
        let delta = || event["delta"].as_str().unwrap_or_default().to_owned();
        let block = |b: ChunkBlock| {
            Some(ModelChunk {
                content: vec![b],
                ..Default::default()
            })
        };
        Ok(match kind {
            "response.output_text.delta" => block(ChunkBlock::Text {
                id: item_id(),
                text: delta(),
            }),
            "response.refusal.delta" => block(ChunkBlock::Text {
                id: item_id(),
                text: delta(),
            }),
            "response.reasoning_summary_text.delta" => block(ChunkBlock::Thought {
                id: item_id(),
                text: Some(delta()),
                signature: None,
            }),
            "response.output_item.added" if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                let call_id = item["call_id"].as_str().unwrap_or_default().to_owned();
                if self.calls.len() >= MAX_ITEMS {
                    return Err(format!(
                        "the stream opened more than {MAX_ITEMS} function calls"
                    ));
                }
                self.calls.insert(
                    item["id"].as_str().unwrap_or_default().to_owned(),
                    call_id.clone(),
                );
                block(ChunkBlock::ToolCall {
                    id: call_id,
                    raw_name: item["name"].as_str().unwrap_or_default().to_owned(),
                    raw_arguments: String::new(),
                })
            }
            "response.function_call_arguments.delta" => {
                let id = item_id();
                let call_id = self.calls.get(&id).cloned().unwrap_or(id);
                block(ChunkBlock::ToolCall {
                    id: call_id,
                    raw_name: String::new(),
                    raw_arguments: delta(),
                })
            }
            // A finished reasoning item carries its encrypted content: the thought's signature.
            "response.output_item.done" if event["item"]["type"] == "reasoning" => {
                let thought = thought_of(&event["item"]);
                thought.signature.and_then(|signature| {
                    block(ChunkBlock::Thought {
                        id: event["item"]["id"].as_str().unwrap_or_default().to_owned(),
                        text: None,
                        signature: Some(signature),
                    })
                })
            }
            "response.completed" | "response.incomplete" => {
                self.status.finish();
                let response = &event["response"];
                let has_calls = !self.calls.is_empty();
                let finish = match finish_of(response, &[]) {
                    FinishReason::Stop if has_calls => FinishReason::ToolCall,
                    other => other,
                };
                Some(ModelChunk {
                    usage: Some(usage_of(&response["usage"])),
                    finish_reason: Some(finish),
                    ..Default::default()
                })
            }
            "response.failed" => {
                return Err(format!(
                    "the provider reported an error mid-stream: {}",
                    error_text(&event["response"]["error"])
                ));
            }
            "error" => {
                return Err(format!(
                    "the provider reported an error mid-stream: {}",
                    error_text(&event)
                ));
            }
            _ => None,
        })
    }
}

impl ChunkSource for EventState {
    async fn next_chunk(&mut self) -> Option<Result<ModelChunk, Error>> {
        loop {
            if self.status.is_finished() {
                return None;
            }
            match self.reader.next().await {
                Err(fault) => return self.status.fail(fault),
                Ok(Some(event)) if event.data.trim() == "[DONE]" => {
                    return self
                        .status
                        .fail("the stream ended without `response.completed`");
                }
                Ok(Some(event)) => match self.parse(&event.data) {
                    Ok(Some(chunk)) => return Some(Ok(chunk)),
                    Ok(None) => continue,
                    Err(message) => return self.status.fail(message),
                },
                Ok(None) => {
                    return self
                        .status
                        .fail("the stream ended without `response.completed`");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_call::{InferenceParams, Message, ToolConfig, ToolDef, ToolResult};

    #[test]
    fn reasoning_round_trips_with_its_encrypted_content() {
        let item = json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}], "encrypted_content": "ENC"});
        let thought = thought_of(&item);
        assert_eq!(thought.signature.as_deref(), Some("rs_1:ENC"));
        assert_eq!(
            reasoning_item(&thought).unwrap(),
            json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}], "encrypted_content": "ENC"})
        );
        // Another provider's signed thought is not sent to this one.
        let other = Thought {
            text: Some("x".into()),
            signature: Some("anthropic-sig".into()),
        };
        assert!(reasoning_item(&other).is_none());
    }

    #[test]
    fn builds_items_tools_and_params() {
        let a = ResponsesAdapter::new(
            "gpt-5",
            "https://api.openai.com/v1/",
            true,
            vec![json!({"type": "web_search"})],
        );
        let request = ModelRequest {
            system: Some("be brief".into()),
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![ContentBlock::Text("hi".into())],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![ContentBlock::ToolCall(ToolCall {
                        id: "call_1".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    })],
                },
                Message {
                    role: Role::User,
                    content: vec![ContentBlock::ToolResult(ToolResult {
                        id: "call_1".into(),
                        name: "f".into(),
                        result: "42".into(),
                    })],
                },
            ],
            params: InferenceParams {
                max_tokens: Some(9),
                reasoning_effort: Some("low".into()),
                ..Default::default()
            },
            tools: Some(ToolConfig {
                tools: vec![ToolDef {
                    name: "f".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                    strict: false,
                }],
                tool_choice: ToolChoice::Required,
                parallel_tool_calls: None,
            }),
            ..Default::default()
        };
        let body = a.request_body(&request);
        assert_eq!(a.url, "https://api.openai.com/v1/responses");
        assert_eq!(body["instructions"], "be brief");
        assert_eq!(body["store"], false);
        assert_eq!(body["max_output_tokens"], 9);
        assert_eq!(body["reasoning"], json!({"effort": "low"}));
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(
            body["input"],
            json!([
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "42"}
            ])
        );
        assert_eq!(body["tools"][0]["name"], "f");
        assert_eq!(body["tools"][1], json!({"type": "web_search"}));
        assert_eq!(body["tool_choice"], "required");
    }

    #[test]
    fn parses_responses() {
        let r = parse_response(&json!({
            "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_9", "summary": [], "encrypted_content": "E"},
                {"type": "message", "content": [{"type": "output_text", "text": "hello"}]},
                {"type": "function_call", "call_id": "call_2", "name": "g", "arguments": "{\"a\":1}"}
            ],
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
        }))
        .unwrap();
        assert_eq!(r.content.len(), 3);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCall));
        assert_eq!(r.usage.output_tokens, Some(7));
        assert!(parse_response(&json!({"nope": 1})).is_err());
        let cut = parse_response(&json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []})).unwrap();
        assert_eq!(cut.finish_reason, Some(FinishReason::Length));
    }
}
