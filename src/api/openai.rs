//! `POST /openai/v1/chat/completions`: the OpenAI-compatible API.
//!
//! `model` is `tensorzero::function_name::NAME` or `tensorzero::model_name::NAME` (a shorthand
//! such as `tensorzero::model_name::openai::gpt-4o-mini` works too). The `tensorzero::` extra
//! fields carry what the OpenAI format has no place for (tags, credentials, episode id, ...).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::inference::{parse_extra_body, parse_extra_headers};
use super::stream::{StreamFormat, sse_response};
use super::{
    AppState, RequestFacts, annotate, annotate_failure, json_response, parse_json, read_body,
    server_timing,
};
use crate::body::Body;
use crate::config::JsonMode;
use crate::error::Error;
use crate::inference::functions::output_text;
use crate::inference::input::{Input, InputBlock, InputMessage, SystemInput};
use crate::inference::{DynamicToolParams, InferenceMeta, InferenceOutcome, InferenceRequest};
use crate::model_call::{
    ChunkBlock, ContentBlock, FileInput, FinishReason, InferenceParams, ModelChunk, ModelResponse,
    OutputBlock, Role, ToolCall, ToolChoice, ToolDef, ToolResult, Usage,
};
use crate::secret::Secret;
use std::sync::Arc;
use switchyard_layers::ext::DynamicCredentials;

const FUNCTION_PREFIX: &str = "tensorzero::function_name::";
const MODEL_PREFIX: &str = "tensorzero::model_name::";

/// Standard OpenAI fields the gateway accepts but does not act on (no warning for these).
const IGNORED_OPENAI_FIELDS: [&str; 6] = [
    "user",
    "metadata",
    "store",
    "logprobs",
    "top_logprobs",
    "logit_bias",
];

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<Value>,
    model: String,
    frequency_penalty: Option<f64>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    presence_penalty: Option<f64>,
    response_format: Option<Value>,
    seed: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    temperature: Option<f64>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    top_p: Option<f64>,
    parallel_tool_calls: Option<bool>,
    stop: Option<Value>,
    reasoning_effort: Option<String>,
    service_tier: Option<String>,
    verbosity: Option<String>,
    n: Option<u32>,
    #[serde(rename = "tensorzero::variant_name")]
    variant_name: Option<String>,
    #[serde(rename = "tensorzero::dryrun")]
    dryrun: Option<bool>,
    #[serde(rename = "tensorzero::episode_id")]
    episode_id: Option<Uuid>,
    #[serde(rename = "tensorzero::namespace")]
    namespace: Option<String>,
    #[serde(rename = "tensorzero::cache_options")]
    cache_options: Option<Value>,
    #[serde(rename = "tensorzero::extra_body", default)]
    extra_body: Vec<Value>,
    #[serde(rename = "tensorzero::extra_headers", default)]
    extra_headers: Vec<Value>,
    #[serde(rename = "tensorzero::tags", default)]
    tags: BTreeMap<String, String>,
    #[serde(rename = "tensorzero::deny_unknown_fields", default)]
    deny_unknown_fields: bool,
    #[serde(
        rename = "tensorzero::credentials",
        default,
        deserialize_with = "crate::secret::deserialize_map"
    )]
    credentials: BTreeMap<String, Secret>,
    #[serde(rename = "tensorzero::params")]
    params: Option<TensorZeroParams>,
    #[serde(rename = "tensorzero::include_raw_usage")]
    include_raw_usage: Option<bool>,
    #[serde(rename = "tensorzero::include_raw_response")]
    include_raw_response: Option<bool>,
    #[serde(rename = "tensorzero::include_original_response")]
    include_original_response: Option<bool>,
    #[serde(rename = "tensorzero::provider_tools")]
    provider_tools: Option<Value>,
    #[serde(rename = "tensorzero::internal_dynamic_variant_config")]
    internal_dynamic_variant_config: Option<Value>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorZeroParams {
    chat_completion: Option<InferenceParams>,
}

/// Handles `POST /openai/v1/chat/completions`.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = tokio::time::Instant::now();
    let (parts, bytes) = read_body(req, state.body_limit).await?;
    let chat: ChatRequest = parse_json(&bytes)?;
    let include_usage = chat
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage)
        || chat.include_raw_usage == Some(true);
    let (mut request, model_label) = into_request(chat)?;
    super::take_caller_context(&mut request, &parts);
    let facts = RequestFacts::of(&request, &parts);
    let outcome = match state.gateway.infer(request).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let mut res = e.into_response(crate::error::ErrorFlavor::OpenAi);
            annotate_failure(&mut res, &facts);
            return Ok(res);
        }
    };
    Ok(match outcome {
        InferenceOutcome::Complete { meta, response } => {
            let model = response_model(&model_label, &meta);
            let mut res = json_response(StatusCode::OK, &completion_json(&meta, &response, &model));
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
        InferenceOutcome::Stream { meta, first, rest } => {
            let format = OpenAiStream {
                id: meta.inference_id,
                episode_id: meta.episode_id,
                model: response_model(&model_label, &meta),
                created: now_secs(),
                include_usage,
                sent_role: false,
                tool_ids: Vec::new(),
                is_json: meta.is_json,
            };
            let mut res = sse_response(
                first,
                rest,
                format,
                state.metrics.streams_in_flight.with(&[]),
            );
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
    })
}

/// What the request's `model` named.
enum Target {
    Function(String),
    Model(String),
}

fn into_request(chat: ChatRequest) -> Result<(InferenceRequest, Target), Error> {
    let bad = |m: String| Error::InvalidOpenAiRequest(m);
    let target = if let Some(f) = chat.model.strip_prefix(FUNCTION_PREFIX) {
        Target::Function(f.to_owned())
    } else if let Some(m) = chat.model.strip_prefix(MODEL_PREFIX) {
        Target::Model(m.to_owned())
    } else {
        return Err(bad(format!(
            "`model` field must start with `{FUNCTION_PREFIX}` or `{MODEL_PREFIX}`, e.g. \
             `{MODEL_PREFIX}openai::gpt-4o-mini` (got `{}`)",
            chat.model
        )));
    };
    let name = match &target {
        Target::Function(n) | Target::Model(n) => n,
    };
    if name.is_empty() {
        return Err(bad(
            "the function or model name after the `tensorzero::` prefix is empty".into(),
        ));
    }
    if chat.n.is_some_and(|n| n != 1) {
        return Err(bad("`n` must be 1; the gateway returns one choice".into()));
    }
    let unknown: Vec<&String> = chat
        .unknown
        .keys()
        .filter(|k| !IGNORED_OPENAI_FIELDS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        if chat.deny_unknown_fields {
            return Err(bad(format!(
                "`tensorzero::deny_unknown_fields` is set to true, but found unknown fields in the request: [{}]",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        tracing::warn!(fields = ?unknown, "ignoring unknown fields in an OpenAI-compatible request");
    }
    if chat.internal_dynamic_variant_config.is_some() {
        return Err(Error::NotSupported(
            "`tensorzero::internal_dynamic_variant_config`".into(),
        ));
    }
    if chat
        .provider_tools
        .as_ref()
        .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(Error::NotSupported("`tensorzero::provider_tools`".into()));
    }
    // Accepted for compatibility; nothing is stored or cached.
    let _ = (
        chat.dryrun,
        chat.cache_options,
        chat.include_raw_response,
        chat.include_original_response,
        chat.namespace,
    );

    let input = convert_messages(&chat.messages)?;

    let (json_mode, output_schema) = match &chat.response_format {
        None => (None, None),
        Some(rf) => match rf.get("type").and_then(Value::as_str) {
            Some("text") => (Some(JsonMode::Off), None),
            Some("json_object") => (Some(JsonMode::On), None),
            Some("json_schema") => (
                Some(JsonMode::Strict),
                rf.get("json_schema").and_then(|s| s.get("schema")).cloned(),
            ),
            _ => {
                return Err(bad(
                    "`response_format.type` must be `text`, `json_object` or `json_schema`".into(),
                ));
            }
        },
    };
    let stop_sequences = match chat.stop {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s]),
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad("`stop` must be a string or a list of strings".into())),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(bad("`stop` must be a string or a list of strings".into())),
    };
    let max_tokens = match (chat.max_tokens, chat.max_completion_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let openai_params = InferenceParams {
        temperature: chat.temperature,
        max_tokens,
        seed: chat.seed,
        top_p: chat.top_p,
        presence_penalty: chat.presence_penalty,
        frequency_penalty: chat.frequency_penalty,
        json_mode,
        stop_sequences,
        reasoning_effort: chat.reasoning_effort,
        service_tier: chat.service_tier,
        thinking_budget_tokens: None,
        verbosity: chat.verbosity,
    };
    // `tensorzero::params` takes precedence over the OpenAI-level fields.
    let params = match chat.params.and_then(|p| p.chat_completion) {
        Some(p) => p.or(&openai_params),
        None => openai_params,
    };
    let additional_tools = chat
        .tools
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| tool_def(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = chat.tool_choice.as_ref().map(tool_choice).transpose()?;

    let (function_name, model_name) = match &target {
        Target::Function(f) => (Some(f.clone()), None),
        Target::Model(m) => (None, Some(m.clone())),
    };
    let request = InferenceRequest {
        function_name,
        model_name,
        variant_name: chat.variant_name,
        episode_id: chat.episode_id,
        input,
        stream: chat.stream.unwrap_or(false),
        params,
        tags: chat.tags,
        tools: DynamicToolParams {
            allowed_tools: None,
            additional_tools,
            tool_choice,
            parallel_tool_calls: chat.parallel_tool_calls,
        },
        output_schema,
        credentials: DynamicCredentials(Arc::new(chat.credentials)),
        extra_body: parse_extra_body(&chat.extra_body)?,
        extra_headers: parse_extra_headers(&chat.extra_headers)?,
        api_key_public_id: None,
        stats: Default::default(),
        schemas: Default::default(),
        trace: None,
        trace_extras: None,
    };
    Ok((request, target))
}

fn convert_messages(messages: &[Value]) -> Result<Input, Error> {
    let bad = |i: usize, m: &str| Error::InvalidOpenAiRequest(format!("`messages[{i}]`: {m}"));
    let mut system_texts: Vec<String> = Vec::new();
    let mut system_arguments: Option<Map<String, Value>> = None;
    let mut out: Vec<InputMessage> = Vec::new();
    let mut tool_names: BTreeMap<String, String> = BTreeMap::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(i, "needs a `role`"))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                let blocks = content_blocks(content, "system").map_err(|e| bad(i, &e))?;
                for block in blocks {
                    match block {
                        InputBlock::Text(t) | InputBlock::RawText(t) => system_texts.push(t),
                        InputBlock::Template { name, arguments } if name == "system" => {
                            if system_arguments.replace(arguments).is_some() {
                                return Err(bad(
                                    i,
                                    "only one system message may hold template arguments",
                                ));
                            }
                        }
                        InputBlock::Template { name, .. } => {
                            return Err(bad(
                                i,
                                &format!(
                                    "a system message can only fill the `system` template, not `{name}`"
                                ),
                            ));
                        }
                        InputBlock::Other(_) => {
                            return Err(bad(
                                i,
                                "a system message's content must be text or a `tensorzero::template` block",
                            ));
                        }
                    }
                }
            }
            "user" => {
                if content.is_null() {
                    return Err(bad(i, "a user message needs `content`"));
                }
                out.push(InputMessage {
                    role: Role::User,
                    content: content_blocks(content, "user").map_err(|e| bad(i, &e))?,
                });
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if !content.is_null() {
                    for block in content_blocks(content, "assistant").map_err(|e| bad(i, &e))? {
                        match &block {
                            InputBlock::Text(t) if t.is_empty() => {}
                            InputBlock::Other(_) => {
                                return Err(bad(
                                    i,
                                    "an assistant message's content must be text or template blocks",
                                ));
                            }
                            _ => blocks.push(block),
                        }
                    }
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let id = call
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(i, "a tool call needs an `id`"))?;
                    let f = call
                        .get("function")
                        .ok_or_else(|| bad(i, "a tool call needs a `function`"))?;
                    let name = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(i, "a tool call needs a `function.name`"))?;
                    let arguments = match f.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "{}".to_owned(),
                    };
                    tool_names.insert(id.to_owned(), name.to_owned());
                    blocks.push(InputBlock::Other(ContentBlock::ToolCall(ToolCall {
                        id: id.to_owned(),
                        name: name.to_owned(),
                        arguments,
                    })));
                }
                out.push(InputMessage {
                    role: Role::Assistant,
                    content: blocks,
                });
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(i, "a tool message needs a `tool_call_id`"))?;
                let result = text_content(content)
                    .ok_or_else(|| bad(i, "a tool message's content must be text"))?;
                let name = tool_names.get(id).cloned().unwrap_or_default();
                out.push(InputMessage {
                    role: Role::User,
                    content: vec![InputBlock::Other(ContentBlock::ToolResult(ToolResult {
                        id: id.to_owned(),
                        name,
                        result,
                    }))],
                });
            }
            other => {
                return Err(bad(
                    i,
                    &format!(
                        "unknown role `{other}` (use system, developer, user, assistant or tool)"
                    ),
                ));
            }
        }
    }
    let system = match (system_arguments, system_texts.is_empty()) {
        (Some(arguments), true) => Some(SystemInput::Arguments(arguments)),
        (Some(_), false) => {
            return Err(Error::InvalidOpenAiRequest(
                "system messages hold both text and template arguments; send one or the other"
                    .into(),
            ));
        }
        (None, true) => None,
        (None, false) => Some(SystemInput::Text(system_texts.join("\n"))),
    };
    Ok(Input {
        system,
        messages: out,
    })
}

/// Text content: a string, or a list of text parts joined.
fn text_content(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join("")),
        _ => None,
    }
}

/// Message content as input blocks: a string, or a list of parts (`text`, with `text` or
/// `tensorzero::arguments` for the `role`'s template; `tensorzero::raw_text`;
/// `tensorzero::template`; `image_url`; `file`).
fn content_blocks(content: &Value, role: &str) -> Result<Vec<InputBlock>, String> {
    let arguments = |v: Option<&Value>, what: &str| match v {
        Some(Value::Object(map)) => Ok(map.clone()),
        _ => Err(format!("{what} needs an object of template arguments")),
    };
    match content {
        Value::String(s) => Ok(vec![InputBlock::Text(s.clone())]),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => match (p.get("text"), p.get("tensorzero::arguments")) {
                    (Some(Value::String(t)), None) => Ok(InputBlock::Text(t.clone())),
                    (None, Some(a)) => Ok(InputBlock::Template {
                        name: role.to_owned(),
                        arguments: arguments(Some(a), "a text part with `tensorzero::arguments`")?,
                    }),
                    _ => Err(
                        "a text part needs a string `text` (or `tensorzero::arguments`)".to_owned(),
                    ),
                },
                Some("tensorzero::raw_text") => p
                    .get("value")
                    .and_then(Value::as_str)
                    .map(|t| InputBlock::RawText(t.to_owned()))
                    .ok_or_else(|| "a raw_text part needs `value`".to_owned()),
                Some("tensorzero::template") => Ok(InputBlock::Template {
                    name: p
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| "a `tensorzero::template` part needs a `name`".to_owned())?
                        .to_owned(),
                    arguments: arguments(p.get("arguments"), "a `tensorzero::template` part")?,
                }),
                Some("image_url") => {
                    let url = p
                        .get("image_url")
                        .and_then(|i| i.get("url"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| "an image_url part needs `image_url.url`".to_owned())?;
                    Ok(InputBlock::Other(ContentBlock::File(file_from_url(url))))
                }
                Some("file") => {
                    let data = p
                        .get("file")
                        .and_then(|f| f.get("file_data"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            "a file part needs `file.file_data` (a data: URL)".to_owned()
                        })?;
                    Ok(InputBlock::Other(ContentBlock::File(file_from_url(data))))
                }
                Some(other) => Err(format!("content parts of type `{other}` are not supported")),
                None => Err("every content part needs a `type`".to_owned()),
            })
            .collect(),
        Value::Null => Err("the message needs `content`".to_owned()),
        _ => Err("`content` must be a string or a list of parts".to_owned()),
    }
}

fn file_from_url(url: &str) -> FileInput {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((mime, data)) = rest.split_once(";base64,") {
            return FileInput::Base64 {
                mime_type: mime.to_owned(),
                data: data.to_owned(),
            };
        }
    }
    FileInput::Url {
        url: url.to_owned(),
        mime_type: None,
    }
}

fn tool_def(i: usize, tool: &Value) -> Result<ToolDef, Error> {
    let bad = |m: &str| Error::InvalidOpenAiRequest(format!("`tools[{i}]`: {m}"));
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(bad("only `type: \"function\"` tools are supported"));
    }
    let f = tool
        .get("function")
        .ok_or_else(|| bad("needs a `function`"))?;
    Ok(ToolDef {
        name: f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("needs `function.name`"))?
            .to_owned(),
        description: f
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        parameters: f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
        strict: f.get("strict").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn tool_choice(v: &Value) -> Result<ToolChoice, Error> {
    match v {
        Value::String(s) if s == "none" => Ok(ToolChoice::None),
        Value::String(s) if s == "auto" => Ok(ToolChoice::Auto),
        Value::String(s) if s == "required" => Ok(ToolChoice::Required),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Specific(n.to_owned()))
            .ok_or_else(|| Error::InvalidOpenAiRequest("`tool_choice` object needs `function.name`".into())),
        _ => Err(Error::InvalidOpenAiRequest(
            "`tool_choice` must be `none`, `auto`, `required` or `{\"type\": \"function\", \"function\": {\"name\": ...}}`".into(),
        )),
    }
}

fn response_model(target: &Target, meta: &InferenceMeta) -> String {
    match target {
        Target::Model(m) => format!("{MODEL_PREFIX}{m}"),
        Target::Function(f) => format!("{FUNCTION_PREFIX}{f}::variant_name::{}", meta.variant_name),
    }
}

fn finish_reason_str(r: Option<FinishReason>) -> &'static str {
    match r {
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ContentFilter) => "content_filter",
        Some(FinishReason::ToolCall) => "tool_calls",
        _ => "stop",
    }
}

fn usage_json(u: Usage) -> Value {
    let prompt = u.input_tokens.unwrap_or(0);
    let completion = u.output_tokens.unwrap_or(0);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "tensorzero_cost": null,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_json(meta: &InferenceMeta, r: &ModelResponse, model: &str) -> Value {
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
pub(super) struct OpenAiStream {
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
