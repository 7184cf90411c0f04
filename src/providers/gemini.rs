//! The Gemini API of Google AI Studio: `POST {api_base}/models/{model}:generateContent`
//! (streaming: `:streamGenerateContent?alt=sse`), the key in `x-goog-api-key` (never in the URL,
//! so it cannot reach an access log).
//!
//! Turns are `contents` with roles `user` and `model` (consecutive turns of one role merged);
//! the system prompt is `systemInstruction`; tool calls are `functionCall` parts and their results
//! `functionResponse` parts; reasoning comes back as parts marked `thought`. A stream is SSE
//! `data:` events, each a partial response, ending when the body ends.

use http::Request;
use http::header::{ACCEPT, CONTENT_TYPE};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::gcp::{GcpAuth, vertex_url};
use super::url::{BaseUrl, encode_segment};
use super::{
    CallContext, ChunkSource, Edits, ProviderSpec, SseReader, apply_body_edit, apply_header_edits,
    bearer, peek_stream, sensitive_header,
};
use crate::config::JsonMode;
use crate::error::{Error, Fault};
use crate::model_call::{
    ChunkBlock, ContentBlock, FileInput, FinishReason, ModelChunk, ModelRequest, ModelResponse,
    OutputBlock, ProviderOutput, Role, Thought, ToolCall, ToolChoice, Usage,
};
use crate::upstream::{error_text, snippet};
use switchyard_layers::Secret;

const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com/v1beta/";

/// Calls one Gemini model through Google AI Studio (key in `x-goog-api-key`) or Vertex AI
/// (an OAuth token from a service account).
#[derive(Debug)]
pub struct GeminiAdapter {
    generate_url: String,
    stream_url: String,
    /// Vertex: the token source; `None` for Google AI Studio.
    vertex: Option<GcpAuth>,
}

impl GeminiAdapter {
    /// `api_base` defaults to `https://generativelanguage.googleapis.com/v1beta/`.
    /// The model name is one path segment, encoded: a shorthand such as
    /// `google_ai_studio_gemini::x?key=` cannot change the URL the key goes to.
    pub fn new(model: &str, api_base: Option<&str>) -> Result<Self, String> {
        let base = BaseUrl::parse(api_base.unwrap_or(DEFAULT_API_BASE))?;
        let model = encode_segment(model.strip_prefix("models/").unwrap_or(model));
        Ok(Self {
            generate_url: base.join(&format!("models/{model}:generateContent"), None)?,
            stream_url: base.join(
                &format!("models/{model}:streamGenerateContent"),
                Some("alt=sse"),
            )?,
            vertex: None,
        })
    }

    /// A Gemini model on Vertex AI (`gcp_vertex_gemini`): the same wire format at the model's
    /// resource path, authorised with the service account's token.
    pub fn vertex(p: &crate::config::models::GcpVertexProvider) -> Result<Self, String> {
        Ok(Self {
            generate_url: vertex_url(p, "google", "generateContent", None)?,
            stream_url: vertex_url(p, "google", "streamGenerateContent", Some("alt=sse"))?,
            vertex: Some(GcpAuth::default()),
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
        let mut body = request_body(provider, request)?;
        for edit in &edits.body {
            apply_body_edit(&mut body, edit);
        }
        let url = if request.stream {
            &self.stream_url
        } else {
            &self.generate_url
        };
        let mut builder = Request::post(url).header(CONTENT_TYPE, "application/json");
        if request.stream {
            builder = builder.header(ACCEPT, "text/event-stream");
        }
        match (key, &self.vertex) {
            (Some(key), None) => {
                builder = builder.header("x-goog-api-key", sensitive_header(key.expose())?)
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
            let state = StreamState {
                reader: SseReader::new(response.into_body()).tapped(cx),
                calls: 0,
                finished: false,
                provider_type: provider.provider_type.as_str(),
                provider: provider.name.to_string(),
            };
            peek_stream(state, || {
                provider.failure("the stream ended before any data arrived")
            })
            .await
        } else {
            let bytes = cx.read_answer(provider, response.into_body()).await?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                provider.failure(format!(
                    "the answer is not a Gemini response ({e}); it began with: {}",
                    snippet(&bytes)
                ))
            })?;
            if v.get("candidates")
                .and_then(Value::as_array)
                .is_none_or(|c| c.is_empty())
            {
                let why = v
                    .pointer("/promptFeedback/blockReason")
                    .and_then(Value::as_str)
                    .unwrap_or("no candidates");
                return Err(provider.failure(format!("the answer has no candidates ({why})")));
            }
            let mut calls = 0;
            let chunk = parse_chunk(&v, &mut calls);
            Ok(ProviderOutput::Complete(ModelResponse {
                content: chunk
                    .content
                    .into_iter()
                    .map(|b| match b {
                        ChunkBlock::Text { text, .. } => OutputBlock::Text(text),
                        ChunkBlock::ToolCall {
                            id,
                            raw_name,
                            raw_arguments,
                        } => OutputBlock::ToolCall(ToolCall {
                            id,
                            name: raw_name,
                            arguments: raw_arguments,
                        }),
                        ChunkBlock::Thought {
                            text, signature, ..
                        } => OutputBlock::Thought(Thought { text, signature }),
                    })
                    .collect(),
                usage: chunk.usage.unwrap_or_default(),
                finish_reason: chunk.finish_reason,
                raw: None,
            }))
        }
    }
}

/// The request body, before `extra_body` edits.
pub fn request_body(provider: &ProviderSpec, request: &ModelRequest) -> Result<Value, Error> {
    let p = &request.params;
    let mut body = Map::new();
    // A function result must name its function: find it from the earlier call when the result
    // does not say.
    let mut call_names = std::collections::HashMap::new();
    let mut contents: Vec<Value> = Vec::new();
    for message in &request.messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let parts: Vec<Value> = message
            .content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text(text) => Some(json!({ "text": text })),
                ContentBlock::ToolCall(c) => {
                    call_names.insert(c.id.clone(), c.name.clone());
                    let args = serde_json::from_str::<Value>(&c.arguments).ok().filter(Value::is_object).unwrap_or_else(|| json!({}));
                    Some(json!({ "functionCall": { "name": c.name, "args": args } }))
                }
                ContentBlock::ToolResult(r) => {
                    let name = if r.name.is_empty() { call_names.get(&r.id).cloned().unwrap_or_default() } else { r.name.clone() };
                    let response = serde_json::from_str::<Value>(&r.result)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({ "result": r.result }));
                    Some(json!({ "functionResponse": { "name": name, "response": response } }))
                }
                ContentBlock::File(FileInput::Base64 { mime_type, data }) => {
                    Some(json!({ "inlineData": { "mimeType": mime_type, "data": data } }))
                }
                ContentBlock::File(FileInput::Url { url, mime_type }) => Some(json!({
                    "fileData": { "mimeType": mime_type.as_deref().unwrap_or("application/octet-stream"), "fileUri": url }
                })),
                ContentBlock::Thought(t) => t.signature.as_ref().map(|sig| {
                    json!({ "text": t.text.clone().unwrap_or_default(), "thought": true, "thoughtSignature": sig })
                }),
                ContentBlock::Unknown { data } => Some(data.clone()),
            })
            .collect();
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last["role"] == role => last["parts"]
                .as_array_mut()
                .expect("parts is a list")
                .extend(parts),
            _ => contents.push(json!({ "role": role, "parts": parts })),
        }
    }
    body.insert("contents".into(), Value::Array(contents));
    if let Some(system) = &request.system {
        body.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": system }] }),
        );
    }
    let mut config = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            config.insert(k.to_owned(), v);
        }
    };
    put("temperature", p.temperature.map(|v| json!(v)));
    put("topP", p.top_p.map(|v| json!(v)));
    put("topK", p.top_k.map(|v| json!(v)));
    put("maxOutputTokens", p.max_tokens.map(|v| json!(v)));
    put("stopSequences", p.stop_sequences.as_ref().map(|v| json!(v)));
    put("seed", p.seed.map(|v| json!(v)));
    put("presencePenalty", p.presence_penalty.map(|v| json!(v)));
    put("frequencyPenalty", p.frequency_penalty.map(|v| json!(v)));
    match (p.thinking_budget_tokens, &p.reasoning_effort) {
        (Some(budget), effort) => {
            if effort.is_some() {
                tracing::warn!(provider = %provider.name, "`reasoning_effort` is not sent: `thinking_budget_tokens` sets Gemini's thinking budget, and Gemini takes one or the other");
            }
            put(
                "thinkingConfig",
                Some(json!({ "thinkingBudget": budget, "includeThoughts": true })),
            );
        }
        (None, Some(effort)) => put(
            "thinkingConfig",
            Some(json!({ "thinkingLevel": effort, "includeThoughts": true })),
        ),
        (None, None) => {}
    }
    match p.json_mode {
        None | Some(JsonMode::Off) => {}
        Some(JsonMode::On) => put("responseMimeType", Some(json!("application/json"))),
        Some(JsonMode::Strict) => {
            put("responseMimeType", Some(json!("application/json")));
            put("responseJsonSchema", request.output_schema.clone());
        }
        Some(JsonMode::ImplicitTool) => {
            // Already rewritten into a forced `respond` tool call (see implicit_tool.rs).
        }
    }
    for (name, set) in [
        ("service_tier", p.service_tier.is_some()),
        ("verbosity", p.verbosity.is_some()),
    ] {
        if set {
            tracing::warn!(provider = %provider.name, "`{name}` is not supported by the Gemini API; it is not sent");
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = request.tools.as_ref().filter(|t| !t.tools.is_empty()) {
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": tools.tools.iter().map(|t| json!({
                "name": t.name, "description": t.description, "parameters": t.parameters
            })).collect::<Vec<_>>() }]),
        );
        let config = match &tools.tool_choice {
            ToolChoice::None => json!({ "mode": "NONE" }),
            ToolChoice::Auto => json!({ "mode": "AUTO" }),
            ToolChoice::Required => json!({ "mode": "ANY" }),
            ToolChoice::Specific(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
        };
        body.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": config }),
        );
        if tools.parallel_tool_calls == Some(false) {
            tracing::warn!(provider = %provider.name, "`parallel_tool_calls = false` is not supported by the Gemini API");
        }
    }
    Ok(Value::Object(body))
}

fn finish_reason(s: &str, called: bool) -> FinishReason {
    match s {
        "STOP" if called => FinishReason::ToolCall,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Unknown,
    }
}

/// One response (or partial response, when streaming) as a chunk. `calls` numbers the tool
/// calls that come without an id.
fn parse_chunk(v: &Value, calls: &mut usize) -> ModelChunk {
    let mut chunk = ModelChunk::default();
    let candidate = v.pointer("/candidates/0");
    let mut called = false;
    for part in candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(call) = part.get("functionCall") {
            called = true;
            *calls += 1;
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{calls}"));
            chunk.content.push(ChunkBlock::ToolCall {
                id,
                raw_name: call["name"].as_str().unwrap_or_default().to_owned(),
                raw_arguments: call
                    .get("args")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            });
        } else if part.get("thought").and_then(Value::as_bool) == Some(true) {
            chunk.content.push(ChunkBlock::Thought {
                id: "0".into(),
                text: part["text"].as_str().map(str::to_owned),
                signature: part["thoughtSignature"].as_str().map(str::to_owned),
            });
        } else if let Some(text) = part
            .get("text")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            chunk.content.push(ChunkBlock::Text {
                id: "0".into(),
                text: text.to_owned(),
            });
        }
    }
    chunk.finish_reason = candidate
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
        .map(|r| finish_reason(r, called));
    chunk.usage = v.get("usageMetadata").map(|u| {
        let n = |k: &str| {
            u.get(k)
                .and_then(Value::as_u64)
                .map(super::bounds::token_count)
        };
        Usage {
            input_tokens: n("promptTokenCount"),
            output_tokens: match (n("candidatesTokenCount"), n("thoughtsTokenCount")) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            },
            cost: None,
        }
    });
    chunk
}

struct StreamState {
    reader: SseReader,
    calls: usize,
    finished: bool,
    provider_type: &'static str,
    provider: String,
}

impl ChunkSource for StreamState {
    async fn next_chunk(&mut self) -> Option<Result<ModelChunk, Error>> {
        if self.finished {
            return None;
        }
        let fail = |s: &mut Self, fault: Fault| {
            s.finished = true;
            Some(Err(Error::provider_failure(
                s.provider_type,
                &s.provider,
                fault,
            )))
        };
        let event = match self.reader.next().await {
            Ok(Some(event)) => event,
            // The stream's end is the end of the body.
            Ok(None) if !self.reader.ended_mid_event() => {
                self.finished = true;
                return None;
            }
            Ok(None) => {
                let reason = self.reader.unfinished();
                return fail(self, reason.into());
            }
            Err(message) => return fail(self, message),
        };
        let v: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => {
                return fail(
                    self,
                    Fault::from(format!(
                        "a stream event is not JSON ({e}): {}",
                        snippet(event.data.as_bytes())
                    )),
                );
            }
        };
        if let Some(error) = v.get("error") {
            return fail(
                self,
                Fault::from(format!(
                    "the provider reported an error mid-stream: {}",
                    error_text(error)
                )),
            );
        }
        Some(Ok(parse_chunk(&v, &mut self.calls)))
    }
}
