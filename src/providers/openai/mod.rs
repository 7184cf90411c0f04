//! The OpenAI Chat Completions wire format, for `openai`, `azure` and the OpenAI-compatible
//! family.
//!
//! Requests: `POST {api_base}/chat/completions` (Azure:
//! `{endpoint}/openai/deployments/{id}/chat/completions?api-version=...` with an `api-key`
//! header). Streams are SSE `data:` events of `chat.completion.chunk` objects ending with
//! `data: [DONE]`; usage comes in a last chunk when `stream_options.include_usage` is set.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use http::Request;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    CallContext, ChunkSource, Edits, ProviderSpec, SseReader, apply_body_edit, apply_header_edits,
    bearer, peek_stream, sensitive_header,
};
use crate::config::models::FileEncoding;
use crate::config::{JsonMode, ProviderKind, ProviderType};
use crate::error::Error;
use crate::model_call::{
    ChunkBlock, ContentBlock, FileInput, FinishReason, Message, ModelChunk, ModelRequest,
    ModelResponse, OutputBlock, ProviderOutput, Role, ToolCall, ToolChoice, Usage,
};
use crate::upstream::{error_text, snippet};
use switchyard_layers::Secret;
use switchyard_layers::credentials::CredentialSource;

/// The Azure API version used when the provider sets none.
mod response;
pub mod responses;
mod stream;

pub use response::parse_completion;
use response::{Quirks, parse_completion_of, response_as_chunk};
use stream::StreamState;

pub(crate) const DEFAULT_AZURE_API_VERSION: &str = "2025-04-01-preview";

/// Calls one OpenAI-compatible endpoint.
#[derive(Debug)]
pub struct OpenAiAdapter {
    provider_type: ProviderType,
    model: String,
    endpoint: Endpoint,
    /// Type-specific body fields from the configuration (`reasoning_format` for Groq,
    /// `prompt_mode` for Mistral), sent with every call.
    type_fields: Vec<(&'static str, String)>,
    /// `content_type_overrides` (`openai`): how inline files of a MIME type are sent.
    file_encodings: BTreeMap<String, FileEncoding>,
}

#[derive(Debug)]
enum Endpoint {
    /// The full chat-completions URL, known at start-up.
    Fixed(String),
    /// Azure with `endpoint = "dynamic::NAME"`: the base URL comes with each request.
    AzureDynamic {
        credential: CredentialSource,
        deployment_id: String,
        api_version: String,
    },
}

/// The default base URL of each hosted type.
pub(crate) fn default_api_base(t: ProviderType) -> Option<&'static str> {
    Some(match t {
        ProviderType::Openai => "https://api.openai.com/v1/",
        ProviderType::Deepseek => "https://api.deepseek.com/v1/",
        ProviderType::Fireworks => "https://api.fireworks.ai/inference/v1/",
        ProviderType::Groq => "https://api.groq.com/openai/v1/",
        ProviderType::Hyperbolic => "https://api.hyperbolic.xyz/v1/",
        ProviderType::Mistral => "https://api.mistral.ai/v1/",
        ProviderType::Openrouter => "https://openrouter.ai/api/v1/",
        ProviderType::Together => "https://api.together.xyz/v1/",
        ProviderType::Xai => "https://api.x.ai/v1/",
        ProviderType::Vllm => "http://localhost:8000/v1/",
        _ => return None,
    })
}

fn chat_url(base: &str) -> String {
    format!("{}/chat/completions", base.trim_end_matches('/'))
}

/// `{endpoint}/openai/deployments/{id}/chat/completions?api-version=...`, the endpoint parsed
/// as a base URL and the deployment id and version encoded.
fn azure_url(endpoint: &str, deployment_id: &str, api_version: &str) -> Result<String, String> {
    azure_deployment_url(endpoint, deployment_id, "chat/completions", api_version)
}

/// `{endpoint}/openai/deployments/{id}/{operation}?api-version=...` (chat or embeddings).
pub(crate) fn azure_deployment_url(
    endpoint: &str,
    deployment_id: &str,
    operation: &str,
    api_version: &str,
) -> Result<String, String> {
    use super::url::{BaseUrl, encode_segment};
    BaseUrl::parse(endpoint)?.join(
        &format!(
            "openai/deployments/{}/{operation}",
            encode_segment(deployment_id)
        ),
        Some(&format!("api-version={}", encode_segment(api_version))),
    )
}

/// Whether a key from `location` may go to a URL the request chooses: only when every key it
/// can yield comes from the request too (or there is none).
pub fn key_may_follow_request_url(location: &crate::config::CredentialLocation) -> bool {
    use crate::config::CredentialLocation as L;
    match location {
        L::Dynamic(_) | L::None => true,
        L::WithFallback { default, fallback } => {
            key_may_follow_request_url(default) && key_may_follow_request_url(fallback)
        }
        L::Env(_) | L::Path(_) | L::PathFromEnv(_) | L::Sdk => false,
    }
}

impl OpenAiAdapter {
    /// The adapter for a configured provider, or `None` when the type speaks another format.
    /// `check_credentials` also covers an Azure endpoint read from the environment.
    /// `type_base` is the type's `[provider_types]` default, used when the provider sets none.
    pub fn from_config(
        kind: &ProviderKind,
        type_base: Option<&str>,
        check_credentials: bool,
    ) -> Option<Result<Self, String>> {
        let provider_type = kind.provider_type();
        let fixed = |base: Option<&str>, model: &str| -> Result<Self, String> {
            let base = base
                .or(type_base)
                .or_else(|| default_api_base(provider_type))
                .ok_or_else(|| "`api_base` is required".to_owned())?;
            Ok(Self {
                provider_type,
                model: model.to_owned(),
                endpoint: Endpoint::Fixed(chat_url(base)),
                type_fields: Vec::new(),
                file_encodings: BTreeMap::new(),
            })
        };
        Some(match kind {
            ProviderKind::Openai(p) => {
                if p.api_type == crate::config::models::OpenAiApiType::Responses {
                    return None;
                }
                fixed(p.api_base.as_deref(), &p.model_name).map(|mut a| {
                    a.file_encodings = p.content_type_overrides.clone();
                    a
                })
            }
            ProviderKind::Deepseek(p)
            | ProviderKind::Fireworks(p)
            | ProviderKind::Groq(p)
            | ProviderKind::Hyperbolic(p)
            | ProviderKind::Mistral(p)
            | ProviderKind::Openrouter(p)
            | ProviderKind::Together(p)
            | ProviderKind::Xai(p) => fixed(p.api_base.as_deref(), &p.model_name).map(|mut a| {
                let fields = [
                    ("reasoning_format", &p.reasoning_format),
                    ("prompt_mode", &p.prompt_mode),
                ];
                a.type_fields = fields
                    .into_iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
                    .collect();
                a
            }),
            ProviderKind::Vllm(p) => fixed(p.api_base.as_deref(), &p.model_name),
            ProviderKind::Sglang(p) => fixed(Some(&p.api_base), &p.model_name),
            ProviderKind::Tgi(p) => {
                fixed(Some(&p.api_base), p.model_name.as_deref().unwrap_or("tgi"))
            }
            ProviderKind::Azure(p) => azure(p, check_credentials),
            _ => return None,
        })
    }

    /// The adapter of a shorthand model, or `None` when the type speaks another format.
    /// `type_base` is the type's `[provider_types]` default, used instead of the hosted URL.
    pub fn shorthand(
        provider_type: ProviderType,
        model: &str,
        type_base: Option<&str>,
    ) -> Option<Self> {
        if provider_type == ProviderType::Openai && model.starts_with("responses::") {
            return None;
        }
        // Only the types that speak this format: a `[provider_types]` base URL for Gemini or
        // Anthropic must not turn their shorthands into OpenAI calls.
        let speaks_chat = default_api_base(provider_type).is_some()
            || matches!(provider_type, ProviderType::Sglang | ProviderType::Tgi);
        if !speaks_chat {
            return None;
        }
        let base = type_base.or_else(|| default_api_base(provider_type))?;
        Some(Self {
            provider_type,
            model: model.to_owned(),
            endpoint: Endpoint::Fixed(chat_url(base)),
            type_fields: Vec::new(),
            file_encodings: BTreeMap::new(),
        })
    }

    /// The body format of a SageMaker endpoint that speaks the OpenAI chat API (its
    /// `hosted_provider` is `openai` or `tgi`); the SageMaker adapter does the calling.
    pub fn for_sagemaker(model: &str) -> Self {
        Self {
            provider_type: ProviderType::AwsSagemaker,
            model: model.to_owned(),
            endpoint: Endpoint::Fixed(String::new()),
            type_fields: Vec::new(),
            file_encodings: BTreeMap::new(),
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
        let mut body = self.request_body(request)?;
        for edit in &edits.body {
            apply_body_edit(&mut body, edit);
        }
        if self.provider_type == ProviderType::Groq {
            drop_unsupported(&mut body, GROQ_UNSUPPORTED, "Groq");
        }
        let url = self.url(provider, cx)?;
        let mut builder = Request::post(&url).header(CONTENT_TYPE, "application/json");
        if request.stream {
            builder = builder.header(ACCEPT, "text/event-stream");
        }
        if let Some(key) = key {
            builder = match self.provider_type {
                ProviderType::Azure => builder.header("api-key", sensitive_header(key.expose())?),
                _ => builder.header(AUTHORIZATION, bearer(key)?),
            };
        }
        let mut http_request = builder
            .body(Full::new(crate::upstream::json_body(&body)))
            .map_err(|e| provider.failure(format!("cannot build a request to `{url}`: {e}")))?;
        apply_header_edits(http_request.headers_mut(), &edits.headers)?;

        let response = super::send(provider, cx, http_request).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if request.stream && !is_json {
            self.read_stream(provider, SseReader::new(response.into_body()).tapped(cx))
                .await
        } else {
            let bytes = cx.read_answer(provider, response.into_body()).await?;
            let parsed =
                parse_completion_of(&bytes, self.quirks()).map_err(|e| provider.failure(e))?;
            if request.stream {
                // A JSON body to a streaming request: answer it as one chunk.
                Ok(ProviderOutput::Stream {
                    first: response_as_chunk(parsed),
                    rest: futures_util::stream::empty().boxed(),
                })
            } else {
                Ok(ProviderOutput::Complete(parsed))
            }
        }
    }

    fn url(&self, provider: &ProviderSpec, cx: &CallContext<'_>) -> Result<String, Error> {
        match &self.endpoint {
            Endpoint::Fixed(url) => Ok(url.clone()),
            Endpoint::AzureDynamic {
                credential,
                deployment_id,
                api_version,
            } => {
                let endpoint = credential
                    .resolve(Some(cx.credentials))
                    .map_err(|reason| {
                        Error::ApiKeyMissing(switchyard_layers::credentials::MissingCredential {
                            provider: format!("{} (its Azure endpoint)", provider.label()).into(),
                            reason,
                        })
                    })?
                    .ok_or_else(|| {
                        Error::Internal("a dynamic Azure endpoint resolved to nothing".into())
                    })?;
                // The key that goes with it came from the request too (refused at load
                // otherwise), so the request may name any host; only the URL's shape is checked.
                azure_url(endpoint.expose(), deployment_id, api_version).map_err(|_| {
                    Error::InvalidRequest(format!(
                        "the dynamic Azure endpoint of provider {} is not an http(s) base URL \
                         without query or fragment",
                        provider.label()
                    ))
                })
            }
        }
    }

    /// How this provider's answers differ from the common format.
    fn quirks(&self) -> Quirks {
        Quirks {
            reasoning_outside_completion: self.provider_type == ProviderType::Xai,
            think_tags: matches!(
                self.provider_type,
                ProviderType::Together | ProviderType::Fireworks
            ),
        }
    }

    /// Whether this is one of xAI's reasoning models, which refuse penalties and `stop`.
    fn is_xai_reasoning_model(&self) -> bool {
        self.provider_type == ProviderType::Xai
            && ["grok-3-mini", "grok-4", "reasoning"]
                .iter()
                .any(|m| self.model.contains(m))
    }

    /// The provider request body, before `extra_body` edits.
    pub fn request_body(&self, request: &ModelRequest) -> Result<Value, Error> {
        let t = self.provider_type;
        if t == ProviderType::Tgi {
            if request.stream && request.tools.as_ref().is_some_and(|c| !c.tools.is_empty()) {
                return Err(Error::InvalidRequest(
                    "TGI does not support tools while streaming: send `stream: false`, or use another provider for tool calls".into(),
                ));
            }
            if matches!(
                request.params.json_mode,
                Some(JsonMode::On | JsonMode::Strict)
            ) {
                return Err(Error::InvalidRequest(
                    "TGI has no JSON mode: set `json_mode = \"off\"` (or `\"tool\"`) for variants served by a `tgi` provider".into(),
                ));
            }
        }
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        let mut system = request.system.clone();
        // Groq refuses JSON mode unless a message says "JSON".
        if t == ProviderType::Groq
            && matches!(
                request.params.json_mode,
                Some(JsonMode::On | JsonMode::Strict)
            )
            && !mentions_json(system.as_deref(), &request.messages)
        {
            let note = "Respond in JSON.";
            system = Some(match system {
                Some(s) => format!("{s}\n\n{note}"),
                None => note.to_owned(),
            });
        }
        if let Some(system) = &system {
            messages.push(json!({ "role": "system", "content": system }));
        }
        let style = MessageStyle {
            file_encodings: &self.file_encodings,
            reasoning_back: t == ProviderType::Deepseek,
            short_tool_ids: t == ProviderType::Mistral,
        };
        for message in &request.messages {
            push_message(&mut messages, message, &style);
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(self.model));
        body.insert("messages".into(), Value::Array(messages));
        for (key, value) in &self.type_fields {
            body.insert((*key).to_owned(), json!(value));
        }
        let p = &request.params;
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.to_owned(), v);
            }
        };
        put("temperature", p.temperature.map(|v| json!(v)));
        put("top_p", p.top_p.map(|v| json!(v)));
        // Mistral names the seed `random_seed`.
        let seed_key = if t == ProviderType::Mistral {
            "random_seed"
        } else {
            "seed"
        };
        put(seed_key, p.seed.map(|v| json!(v)));
        let xai_reasoning = self.is_xai_reasoning_model();
        for (key, set) in [
            ("presence_penalty", p.presence_penalty.is_some()),
            ("frequency_penalty", p.frequency_penalty.is_some()),
            ("stop", p.stop_sequences.is_some()),
        ] {
            if xai_reasoning && set {
                tracing::warn!(
                    model = %self.model,
                    "xAI's reasoning models reject `{key}`; it is not sent"
                );
            }
        }
        if !xai_reasoning {
            put("presence_penalty", p.presence_penalty.map(|v| json!(v)));
            put("frequency_penalty", p.frequency_penalty.map(|v| json!(v)));
            put("stop", p.stop_sequences.as_ref().map(|v| json!(v)));
        }
        put(
            "reasoning_effort",
            p.reasoning_effort.as_ref().map(|v| json!(v)),
        );
        put("service_tier", p.service_tier.as_ref().map(|v| json!(v)));
        put("verbosity", p.verbosity.as_ref().map(|v| json!(v)));
        // OpenAI's newer models reject `max_tokens`; most compatible servers only know it.
        let max_tokens_key = match self.provider_type {
            ProviderType::Openai | ProviderType::Azure => "max_completion_tokens",
            _ => "max_tokens",
        };
        put(max_tokens_key, p.max_tokens.map(|v| json!(v)));
        if p.thinking_budget_tokens.is_some() {
            tracing::warn!(
                provider_type = %self.provider_type,
                "`thinking_budget_tokens` has no equivalent in the OpenAI chat format; it is not sent"
            );
        }
        match p.json_mode {
            None | Some(JsonMode::Off) => {}
            Some(JsonMode::On) => put("response_format", Some(json!({ "type": "json_object" }))),
            Some(JsonMode::Strict) => put(
                "response_format",
                Some(match &request.output_schema {
                    Some(schema) => json!({
                        "type": "json_schema",
                        "json_schema": { "name": "response", "strict": true, "schema": schema }
                    }),
                    None => json!({ "type": "json_object" }),
                }),
            ),
            Some(JsonMode::ImplicitTool) => {
                // Already rewritten into a forced `respond` tool call (see implicit_tool.rs).
            }
        }
        if let Some(tools) = request.tools.as_ref().filter(|t| !t.tools.is_empty()) {
            let defs: Vec<Value> = tools
                .tools
                .iter()
                .map(|t| {
                    let mut function = json!({ "name": t.name, "description": t.description, "parameters": t.parameters });
                    if t.strict {
                        function["strict"] = json!(true);
                    }
                    json!({ "type": "function", "function": function })
                })
                .collect();
            put("tools", Some(Value::Array(defs)));
            put(
                "tool_choice",
                Some(match &tools.tool_choice {
                    ToolChoice::None => json!("none"),
                    ToolChoice::Auto => json!("auto"),
                    // Mistral's word for it.
                    ToolChoice::Required if t == ProviderType::Mistral => json!("any"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Specific(name) => {
                        json!({ "type": "function", "function": { "name": name } })
                    }
                }),
            );
            put(
                "parallel_tool_calls",
                tools.parallel_tool_calls.map(Value::Bool),
            );
        }
        if request.stream {
            put("stream", Some(json!(true)));
            put("stream_options", Some(json!({ "include_usage": true })));
        }
        Ok(Value::Object(body))
    }

    /// Reads a stream of chat.completion.chunk events.
    pub async fn read_stream(
        &self,
        provider: &ProviderSpec,
        reader: SseReader,
    ) -> Result<ProviderOutput, Error> {
        let state = StreamState::new(reader, provider, self.quirks());
        peek_stream(state, || {
            provider.failure("the stream ended before any data arrived")
        })
        .await
    }
}

fn azure(
    p: &crate::config::models::AzureProvider,
    check_credentials: bool,
) -> Result<OpenAiAdapter, String> {
    let api_version = p
        .api_version
        .clone()
        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
    let endpoint = if let Some(var) = p.endpoint.strip_prefix("env::") {
        match std::env::var(var) {
            Ok(base) => Endpoint::Fixed(
                azure_url(&base, &p.deployment_id, &api_version)
                    .map_err(|e| format!("the Azure endpoint in `{var}`: {e}"))?,
            ),
            Err(_) if check_credentials => {
                return Err(format!("the Azure endpoint variable `{var}` is not set"));
            }
            Err(_) => Endpoint::AzureDynamic {
                credential: CredentialSource::Missing(format!(
                    "the Azure endpoint variable `{var}` is not set"
                )),
                deployment_id: p.deployment_id.clone(),
                api_version,
            },
        }
    } else if let Some(name) = p.endpoint.strip_prefix("dynamic::") {
        Endpoint::AzureDynamic {
            credential: CredentialSource::Dynamic(name.to_owned()),
            deployment_id: p.deployment_id.clone(),
            api_version,
        }
    } else {
        Endpoint::Fixed(
            azure_url(&p.endpoint, &p.deployment_id, &api_version)
                .map_err(|e| format!("`endpoint`: {e}"))?,
        )
    };
    Ok(OpenAiAdapter {
        provider_type: ProviderType::Azure,
        model: p.deployment_id.clone(),
        endpoint,
        type_fields: Vec::new(),
        file_encodings: BTreeMap::new(),
    })
}

/// Fields Groq refuses (with a 400) that configurations written for OpenAI often set.
const GROQ_UNSUPPORTED: &[&str] = &["store", "logprobs", "top_logprobs", "logit_bias"];

/// Removes `fields` from `body`, warning once per call for each.
fn drop_unsupported(body: &mut Value, fields: &[&str], provider: &str) {
    if let Some(map) = body.as_object_mut() {
        for field in fields {
            if map.remove(*field).is_some() {
                tracing::warn!("{provider} does not support `{field}`; it is not sent");
            }
        }
    }
}

/// How a provider wants messages written.
struct MessageStyle<'a> {
    /// `content_type_overrides`.
    file_encodings: &'a BTreeMap<String, FileEncoding>,
    /// Earlier reasoning goes back as the assistant message's `reasoning_content` (DeepSeek
    /// refuses a tool-using turn in thinking mode without it).
    reasoning_back: bool,
    /// Tool-call ids must be 9 letters and digits (Mistral).
    short_tool_ids: bool,
}

impl MessageStyle<'_> {
    fn tool_id<'i>(&self, id: &'i str) -> std::borrow::Cow<'i, str> {
        if self.short_tool_ids {
            std::borrow::Cow::Owned(mistral_tool_id(id))
        } else {
            std::borrow::Cow::Borrowed(id)
        }
    }
}

/// A tool-call id as Mistral accepts it (exactly 9 letters and digits): its own ids pass
/// unchanged, any other maps to one derived from it, the same for the call and its result.
fn mistral_tool_id(id: &str) -> String {
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_owned();
    }
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    Sha256::digest(id.as_bytes())
        .iter()
        .take(9)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Whether the system prompt or a message's text says "JSON" (in any case).
fn mentions_json(system: Option<&str>, messages: &[Message]) -> bool {
    let says = |t: &str| t.to_ascii_lowercase().contains("json");
    system.is_some_and(says)
        || messages.iter().any(|m| {
            m.content.iter().any(|b| match b {
                ContentBlock::Text(t) => says(t),
                _ => false,
            })
        })
}

fn push_message(out: &mut Vec<Value>, message: &Message, style: &MessageStyle<'_>) {
    let file_encodings = style.file_encodings;
    match message.role {
        Role::User => {
            let mut parts: Vec<Value> = Vec::new();
            let flush = |parts: &mut Vec<Value>, out: &mut Vec<Value>| {
                if parts.is_empty() {
                    return;
                }
                let content = match parts.as_slice() {
                    [only] if only["type"] == "text" => only["text"].clone(),
                    _ => Value::Array(std::mem::take(parts)),
                };
                parts.clear();
                out.push(json!({ "role": "user", "content": content }));
            };
            for block in &message.content {
                match block {
                    ContentBlock::Text(text) => parts.push(json!({ "type": "text", "text": text })),
                    ContentBlock::File(file) => parts.push(file_part(file, file_encodings)),
                    ContentBlock::ToolResult(r) => {
                        flush(&mut parts, out);
                        out.push(json!({ "role": "tool", "tool_call_id": style.tool_id(&r.id), "content": r.result }));
                    }
                    ContentBlock::Unknown { data } => parts.push(data.clone()),
                    // A user turn cannot carry these in the OpenAI format.
                    ContentBlock::ToolCall(_) | ContentBlock::Thought(_) => {}
                }
            }
            flush(&mut parts, out);
        }
        Role::Assistant => {
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut tool_calls = Vec::new();
            for block in &message.content {
                match block {
                    ContentBlock::Text(t) => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(t);
                    }
                    ContentBlock::ToolCall(c) => tool_calls.push(json!({
                        "id": style.tool_id(&c.id),
                        "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments }
                    })),
                    // Earlier reasoning goes back only where the provider asks for it.
                    ContentBlock::Thought(t) => {
                        if style.reasoning_back
                            && let Some(t) = &t.text
                        {
                            reasoning.push_str(t);
                        }
                    }
                    ContentBlock::ToolResult(_)
                    | ContentBlock::File(_)
                    | ContentBlock::Unknown { .. } => {}
                }
            }
            let mut m = json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) } });
            if !tool_calls.is_empty() {
                m["tool_calls"] = Value::Array(tool_calls);
            }
            if !reasoning.is_empty() {
                m["reasoning_content"] = json!(reasoning);
            }
            out.push(m);
        }
    }
}

/// An input file as an OpenAI content part: images as `image_url`, other inline files as
/// `file`, unless `content_type_overrides` names their MIME type.
fn file_part(file: &FileInput, file_encodings: &BTreeMap<String, FileEncoding>) -> Value {
    let (mime_type, data) = match file {
        FileInput::Url { url, .. } => {
            return json!({ "type": "image_url", "image_url": { "url": url } });
        }
        FileInput::Base64 { mime_type, data } => (mime_type, data),
    };
    let encoding =
        file_encodings
            .get(mime_type)
            .copied()
            .unwrap_or(if mime_type.starts_with("image/") {
                FileEncoding::ImageUrl
            } else {
                FileEncoding::File
            });
    match encoding {
        FileEncoding::ImageUrl => {
            json!({ "type": "image_url", "image_url": { "url": format!("data:{mime_type};base64,{data}") } })
        }
        FileEncoding::File => json!({
            "type": "file",
            "file": { "file_data": format!("data:{mime_type};base64,{data}") }
        }),
        FileEncoding::InputAudio => {
            // OpenAI names the format, not the MIME type: `audio/mpeg` is `mp3`.
            let subtype = mime_type.rsplit('/').next().unwrap_or_default();
            let format = match subtype {
                "mpeg" | "mp3" => "mp3",
                "wav" | "x-wav" | "wave" => "wav",
                other => other,
            };
            json!({ "type": "input_audio", "input_audio": { "data": data, "format": format } })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_call::{InferenceParams, ToolConfig, ToolDef, ToolResult};
    use crate::upstream::provider_error_message;

    fn adapter(t: ProviderType) -> OpenAiAdapter {
        OpenAiAdapter::shorthand(t, "m", None).unwrap()
    }

    #[test]
    fn builds_messages_tools_and_params() {
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
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    })],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        ContentBlock::ToolResult(ToolResult {
                            id: "c1".into(),
                            name: "f".into(),
                            result: "42".into(),
                        }),
                        ContentBlock::Text("thanks".into()),
                    ],
                },
            ],
            params: InferenceParams {
                max_tokens: Some(7),
                stop_sequences: Some(vec!["x".into()]),
                ..Default::default()
            },
            tools: Some(ToolConfig {
                tools: vec![ToolDef {
                    name: "f".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                    strict: false,
                }],
                tool_choice: ToolChoice::Specific("f".into()),
                parallel_tool_calls: Some(false),
            }),
            stream: true,
            ..Default::default()
        };
        let body = adapter(ProviderType::Openai)
            .request_body(&request)
            .unwrap();
        assert_eq!(body["max_completion_tokens"], 7);
        assert_eq!(body["stop"], json!(["x"]));
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(
            body["messages"][3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "42"})
        );
        assert_eq!(
            body["messages"][4],
            json!({"role": "user", "content": "thanks"})
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        let groq = adapter(ProviderType::Groq).request_body(&request).unwrap();
        assert_eq!(groq["max_tokens"], 7);
    }

    #[test]
    fn parses_completions_and_rejects_garbage() {
        let ok = br#"{"choices":[{"message":{"content":"hey","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let r = parse_completion(ok).unwrap();
        assert_eq!(r.content.len(), 2);
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCall));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: Some(3),
                output_tokens: Some(4),
                cost: None,
            }
        );
        let err = parse_completion(b"<html>oops</html>").unwrap_err();
        assert!(err.contains("<html>oops</html>"), "{err}");
    }

    #[test]
    fn extracts_provider_error_messages() {
        assert_eq!(
            provider_error_message(br#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(
            provider_error_message(b"upstream exploded"),
            "upstream exploded"
        );
        assert_eq!(provider_error_message(b""), "(empty body)");
    }
}
