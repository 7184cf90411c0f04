//! The Anthropic Messages API: `POST {api_base}/messages` with `x-api-key` and
//! `anthropic-version`.
//!
//! The system prompt is a top-level field; turns alternate user/assistant (consecutive turns of
//! one role are merged); tool calls are `tool_use` blocks and their results `tool_result` blocks
//! in the next user turn; reasoning comes back as `thinking` blocks. Streams are SSE events:
//! `message_start`, `content_block_start`, `content_block_delta` (text, input_json, thinking,
//! signature), `content_block_stop`, `message_delta` (stop reason, output usage),
//! `message_stop`, `ping` and `error`.

use crate::providers::stream_status::StreamStatus;
use http::Request;
use http::header::{ACCEPT, CONTENT_TYPE};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::gcp::{GcpAuth, vertex_url};
use super::{
    CallContext, ChunkSource, Edits, ProviderSpec, SseReader, apply_body_edit, apply_header_edits,
    bearer, peek_stream, sensitive_header,
};
use crate::config::JsonMode;
use crate::error::Error;
use crate::model_call::{
    ChunkBlock, ContentBlock, FileInput, FinishReason, ModelChunk, ModelRequest, ModelResponse,
    OutputBlock, ProviderOutput, Role, Thought, ToolCall, ToolChoice, Usage,
};
use crate::upstream::{error_text, snippet};
use switchyard_layers::Secret;

/// The API version header every request carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is sent when the call sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
const DEFAULT_API_BASE: &str = "https://api.anthropic.com/v1/";

/// The `anthropic_version` Vertex AI takes in the body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Calls one Anthropic model, directly or on Vertex AI.
#[derive(Debug)]
pub struct AnthropicAdapter {
    model: String,
    url: String,
    stream_url: String,
    /// Vertex: the token source; `None` for Anthropic's own API.
    vertex: Option<GcpAuth>,
    /// Server-side tools from the configuration (`provider_tools`), sent in `tools` as written.
    provider_tools: Vec<Value>,
}

impl AnthropicAdapter {
    /// `api_base` defaults to `https://api.anthropic.com/v1/`.
    pub fn new(model: &str, api_base: Option<&str>) -> Self {
        let base = api_base.unwrap_or(DEFAULT_API_BASE);
        let url = format!("{}/messages", base.trim_end_matches('/'));
        Self {
            model: model.to_owned(),
            stream_url: url.clone(),
            url,
            vertex: None,
            provider_tools: Vec::new(),
        }
    }

    /// With `provider_tools` sent in every call's `tools`.
    pub fn with_provider_tools(mut self, tools: &[Value]) -> Self {
        self.provider_tools = tools.to_vec();
        self
    }

    /// An Anthropic model on Vertex AI (`gcp_vertex_anthropic`): the Messages format posted to
    /// `:rawPredict` / `:streamRawPredict`, with `anthropic_version` in the body and no `model`.
    pub fn vertex(p: &crate::config::models::GcpVertexProvider) -> Result<Self, String> {
        Ok(Self {
            model: p
                .model_id
                .clone()
                .or_else(|| p.endpoint_id.clone())
                .unwrap_or_default(),
            url: vertex_url(p, "anthropic", "rawPredict", None)?,
            stream_url: vertex_url(p, "anthropic", "streamRawPredict", None)?,
            vertex: Some(GcpAuth::default()),
            provider_tools: p.provider_tools.clone(),
        })
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
        let mut body = self.request_body(provider, request)?;
        for edit in &edits.body {
            apply_body_edit(&mut body, edit);
        }
        let url = if request.stream {
            &self.stream_url
        } else {
            &self.url
        };
        let mut builder = Request::post(url).header(CONTENT_TYPE, "application/json");
        if self.vertex.is_none() {
            builder = builder.header("anthropic-version", ANTHROPIC_VERSION);
        }
        if request.stream {
            builder = builder.header(ACCEPT, "text/event-stream");
        }
        match (key, &self.vertex) {
            (Some(key), None) => {
                builder = builder.header("x-api-key", sensitive_header(key.expose())?)
            }
            (Some(credentials), Some(auth)) => {
                let token = auth
                    .access_token(credentials, cx.key_origin, cx.upstream)
                    .await
                    .map_err(|m| provider.failure(m))?;
                builder = builder.header(http::header::AUTHORIZATION, bearer(&token)?);
            }
            (None, _) => {}
        }
        let mut http_request = builder
            .body(Full::new(crate::upstream::json_body(&body)))
            .map_err(|e| provider.failure(format!("cannot build a request to `{url}`: {e}")))?;
        apply_header_edits(http_request.headers_mut(), &edits.headers)?;
        let response = super::send(provider, cx, http_request).await?;
        if request.stream {
            stream(provider, SseReader::new(response.into_body()).tapped(cx)).await
        } else {
            let bytes = cx.read_answer(provider, response.into_body()).await?;
            parse_message(&bytes)
                .map(ProviderOutput::Complete)
                .map_err(|m| provider.failure(m))
        }
    }

    /// The Messages API body, before `extra_body` edits.
    pub fn request_body(
        &self,
        provider: &ProviderSpec,
        request: &ModelRequest,
    ) -> Result<Value, Error> {
        let p = &request.params;
        let mut body = Map::new();
        if self.vertex.is_some() {
            body.insert("anthropic_version".into(), json!(VERTEX_ANTHROPIC_VERSION));
        } else {
            body.insert("model".into(), json!(self.model));
        }
        body.insert(
            "max_tokens".into(),
            json!(p.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        );
        let mut system = request.system.clone();
        match p.json_mode {
            None | Some(JsonMode::Off) => {}
            Some(JsonMode::On | JsonMode::Strict) => {
                // No JSON mode in this API: say it in the system prompt (with the schema, if any).
                let mut instruction =
                    "Respond with a single JSON object and nothing else.".to_owned();
                if let Some(schema) = &request.output_schema {
                    instruction.push_str(&format!(" It must follow this JSON Schema: {schema}"));
                }
                system = Some(match system {
                    Some(s) => format!("{s}\n\n{instruction}"),
                    None => instruction,
                });
            }
            Some(JsonMode::ImplicitTool) => {
                // Already rewritten into a forced `respond` tool call (see implicit_tool.rs).
            }
        }
        if let Some(system) = system {
            body.insert("system".into(), json!(system));
        }
        body.insert("messages".into(), Value::Array(messages(request)));
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.to_owned(), v);
            }
        };
        put("temperature", p.temperature.map(|v| json!(v)));
        put("top_p", p.top_p.map(|v| json!(v)));
        put("top_k", p.top_k.map(|v| json!(v)));
        put(
            "stop_sequences",
            p.stop_sequences.as_ref().map(|v| json!(v)),
        );
        match (p.thinking_budget_tokens, &p.reasoning_effort) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidRequest(
                    "`reasoning_effort` and `thinking_budget_tokens` cannot be combined for Anthropic models: `reasoning_effort` asks for adaptive thinking (`output_config.effort`), `thinking_budget_tokens` for a fixed budget; set one".into(),
                ));
            }
            (Some(budget), None) => put(
                "thinking",
                Some(json!({ "type": "enabled", "budget_tokens": budget })),
            ),
            // Adaptive thinking: the model decides how much to think, at this effort.
            (None, Some(effort)) => {
                put("thinking", Some(json!({ "type": "adaptive" })));
                put("output_config", Some(json!({ "effort": effort })));
            }
            (None, None) => {}
        }
        for (name, set) in [
            ("seed", p.seed.is_some()),
            ("presence_penalty", p.presence_penalty.is_some()),
            ("frequency_penalty", p.frequency_penalty.is_some()),
            ("service_tier", p.service_tier.is_some()),
            ("verbosity", p.verbosity.is_some()),
        ] {
            if set {
                tracing::warn!(provider = %provider.name, "`{name}` is not supported by the Anthropic Messages API; it is not sent");
            }
        }
        if let Some(tools) = request.tools.as_ref().filter(|t| !t.tools.is_empty()) {
            if tools.tool_choice != ToolChoice::None {
                put(
                    "tools",
                    Some(Value::Array(
                        tools
                            .tools
                            .iter()
                            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
                            .collect(),
                    )),
                );
            }
            let mut choice = match &tools.tool_choice {
                ToolChoice::None => json!({ "type": "none" }),
                ToolChoice::Auto => json!({ "type": "auto" }),
                ToolChoice::Required => json!({ "type": "any" }),
                ToolChoice::Specific(name) => json!({ "type": "tool", "name": name }),
            };
            if tools.parallel_tool_calls == Some(false) && tools.tool_choice != ToolChoice::None {
                choice["disable_parallel_tool_use"] = json!(true);
            }
            put("tool_choice", Some(choice));
        }
        if request.stream {
            put("stream", Some(json!(true)));
        }
        if !self.provider_tools.is_empty() {
            match body.get_mut("tools") {
                Some(Value::Array(tools)) => tools.extend(self.provider_tools.iter().cloned()),
                _ => {
                    body.insert("tools".into(), Value::Array(self.provider_tools.clone()));
                }
            }
        }
        Ok(Value::Object(body))
    }
}

/// The conversation, with consecutive turns of one role merged (the API requires alternation).
fn messages(request: &ModelRequest) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for message in &request.messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let blocks: Vec<Value> = message.content.iter().filter_map(block).collect();
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"]
                    .as_array_mut()
                    .expect("content is a list")
                    .extend(blocks);
            }
            _ => out.push(json!({ "role": role, "content": blocks })),
        }
    }
    out
}

fn block(content: &ContentBlock) -> Option<Value> {
    Some(match content {
        ContentBlock::Text(text) => json!({ "type": "text", "text": text }),
        ContentBlock::ToolCall(c) => {
            // The API takes the arguments as an object; text that is not one is sent as a string
            // under `input` so nothing is lost.
            let input = serde_json::from_str::<Value>(&c.arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({ "input": c.arguments }));
            json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": input })
        }
        ContentBlock::ToolResult(r) => {
            json!({ "type": "tool_result", "tool_use_id": r.id, "content": r.result })
        }
        ContentBlock::File(FileInput::Base64 { mime_type, data }) => {
            let kind = if mime_type == "application/pdf" {
                "document"
            } else {
                "image"
            };
            json!({ "type": kind, "source": { "type": "base64", "media_type": mime_type, "data": data } })
        }
        ContentBlock::File(FileInput::Url { url, mime_type }) => {
            let kind = if mime_type.as_deref() == Some("application/pdf") {
                "document"
            } else {
                "image"
            };
            json!({ "type": kind, "source": { "type": "url", "url": url } })
        }
        ContentBlock::Thought(t) => {
            let (Some(text), Some(signature)) = (&t.text, &t.signature) else {
                // The API only takes back signed thinking.
                return None;
            };
            json!({ "type": "thinking", "thinking": text, "signature": signature })
        }
        ContentBlock::Unknown { data } => data.clone(),
    })
}

fn finish_reason(s: &str) -> FinishReason {
    match s {
        "end_turn" => FinishReason::Stop,
        "stop_sequence" => FinishReason::StopSequence,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCall,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Unknown,
    }
}

fn usage(v: &Value) -> Usage {
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(super::bounds::token_count)
    };
    Usage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cost: None,
    }
}

/// A Messages API response as a model response.
fn parse_message(bytes: &[u8]) -> Result<ModelResponse, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the answer is not an Anthropic message ({e}); it began with: {}",
            snippet(bytes)
        )
    })?;
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| {
        format!(
            "the answer has no `content`; it began with: {}",
            snippet(bytes)
        )
    })?;
    let mut content = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push(OutputBlock::Text(
                b["text"].as_str().unwrap_or_default().to_owned(),
            )),
            Some("tool_use") => content.push(OutputBlock::ToolCall(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_owned(),
                name: b["name"].as_str().unwrap_or_default().to_owned(),
                arguments: b
                    .get("input")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            })),
            Some("thinking") => content.push(OutputBlock::Thought(Thought {
                text: b["thinking"].as_str().map(str::to_owned),
                signature: b["signature"].as_str().map(str::to_owned),
            })),
            _ => {}
        }
    }
    Ok(ModelResponse {
        content,
        usage: v.get("usage").map(usage).unwrap_or_default(),
        finish_reason: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(finish_reason),
        raw: None,
    })
}

async fn stream(provider: &ProviderSpec, reader: SseReader) -> Result<ProviderOutput, Error> {
    let state = StreamState {
        reader,
        blocks: Default::default(),
        status: StreamStatus::of(provider),
    };
    peek_stream(state, || {
        provider.failure("the stream ended before any data arrived")
    })
    .await
}

/// What each content block index is, so deltas can be labelled.
#[derive(Clone, Default)]
enum BlockKind {
    Text,
    ToolUse {
        id: String,
    },
    Thinking,
    #[default]
    Other,
}

struct StreamState {
    reader: SseReader,
    blocks: super::bounds::BlockSlots<BlockKind>,
    status: StreamStatus,
}

impl ChunkSource for StreamState {
    async fn next_chunk(&mut self) -> Option<Result<ModelChunk, Error>> {
        loop {
            if self.status.is_finished() {
                return None;
            }
            let event = match self.reader.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return self.status.fail("the stream ended before `message_stop`"),
                Err(message) => return self.status.fail(message),
            };
            let v: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(e) => {
                    return self.status.fail(format!(
                        "a stream event is not JSON ({e}): {}",
                        snippet(event.data.as_bytes())
                    ));
                }
            };
            match self.handle(&v) {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) => {}
                Err(message) => return self.status.fail(message),
            }
        }
    }
}

impl StreamState {
    /// One event: a chunk to pass on, nothing (bookkeeping events), or an error.
    fn handle(&mut self, v: &Value) -> Result<Option<ModelChunk>, String> {
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let mut chunk = ModelChunk::default();
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                chunk.usage = v.pointer("/message/usage").map(usage);
            }
            Some("content_block_start") => {
                let b = &v["content_block"];
                let kind = match b.get("type").and_then(Value::as_str) {
                    Some("text") => BlockKind::Text,
                    Some("tool_use") => {
                        let id = b["id"].as_str().unwrap_or_default().to_owned();
                        chunk.content.push(ChunkBlock::ToolCall {
                            id: id.clone(),
                            raw_name: b["name"].as_str().unwrap_or_default().to_owned(),
                            raw_arguments: String::new(),
                        });
                        BlockKind::ToolUse { id }
                    }
                    Some("thinking") => BlockKind::Thinking,
                    _ => BlockKind::Other,
                };
                self.blocks.set(index, kind)?;
                if let Some(text) = b
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    chunk.content.push(ChunkBlock::Text {
                        id: index.to_string(),
                        text: text.to_owned(),
                    });
                }
            }
            Some("content_block_delta") => {
                let d = &v["delta"];
                let kind = self.blocks.get(index).cloned().unwrap_or(BlockKind::Other);
                match (d.get("type").and_then(Value::as_str), kind) {
                    (Some("text_delta"), _) => chunk.content.push(ChunkBlock::Text {
                        id: index.to_string(),
                        text: d["text"].as_str().unwrap_or_default().to_owned(),
                    }),
                    (Some("input_json_delta"), BlockKind::ToolUse { id }) => {
                        chunk.content.push(ChunkBlock::ToolCall {
                            id,
                            raw_name: String::new(),
                            raw_arguments: d["partial_json"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        })
                    }
                    (Some("thinking_delta"), _) => chunk.content.push(ChunkBlock::Thought {
                        id: index.to_string(),
                        text: d["thinking"].as_str().map(str::to_owned),
                        signature: None,
                    }),
                    (Some("signature_delta"), _) => chunk.content.push(ChunkBlock::Thought {
                        id: index.to_string(),
                        text: None,
                        signature: d["signature"].as_str().map(str::to_owned),
                    }),
                    _ => return Ok(None),
                }
            }
            Some("message_delta") => {
                chunk.finish_reason = v
                    .pointer("/delta/stop_reason")
                    .and_then(Value::as_str)
                    .map(finish_reason);
                chunk.usage = v.get("usage").map(usage);
            }
            Some("message_stop") => {
                self.status.finish();
                return Ok(None);
            }
            Some("error") => {
                return Err(format!(
                    "the provider reported an error mid-stream: {}",
                    error_text(&v["error"])
                ));
            }
            _ => return Ok(None),
        }
        Ok(Some(chunk))
    }
}
