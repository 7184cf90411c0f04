//! `POST /anthropic/v1/messages` (and `/messages/count_tokens`): the Anthropic Messages API,
//! what Claude Code and the Anthropic SDKs speak (`ANTHROPIC_BASE_URL=http://gateway/anthropic`),
//! over the same inference engine and model-call stack as `/inference`. Errors come in
//! Anthropic's shape (`{"type": "error", "error": {"type", "message"}}`).

mod output;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stream::sse_response;
use super::target::{Target, resolve};
use super::{
    AppState, RequestFacts, annotate, annotate_failure, json_response, parse_json, read_body,
    server_timing,
};
use crate::body::Body;
use crate::error::{Error, ErrorFlavor};
use crate::inference::input::{Input, InputBlock, InputMessage, SystemInput};
use crate::inference::{DynamicToolParams, InferenceOutcome, InferenceRequest};
use crate::model_call::{
    ContentBlock, FileInput, InferenceParams, Role, Thought, ToolCall, ToolChoice, ToolDef,
    ToolResult,
};
use output::{MessagesStream, message_object};

/// Fields of the Messages API that change nothing here (no warning for them).
const IGNORED_FIELDS: [&str; 3] = ["service_tier", "container", "context_management"];

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    max_tokens: Option<u32>,
    system: Option<Value>,
    messages: Vec<Value>,
    #[serde(default)]
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    stop_sequences: Option<Vec<String>>,
    thinking: Option<Value>,
    metadata: Option<Value>,
    stream: Option<bool>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// Handles `POST /anthropic/v1/messages`.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = tokio::time::Instant::now();
    let (parts, bytes) = read_body(req, state.body_limit).await?;
    let body: MessagesRequest = parse_json(&bytes)?;
    let target = resolve(&body.model, &state.engine)?;
    let model = body.model.clone();
    let mut request = into_request(body, target)?;
    super::take_caller_context(&mut request, &parts);
    let facts = RequestFacts::of(&request, &parts);
    let outcome = match state.engine.infer(request).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let mut res = e.into_response(ErrorFlavor::Anthropic);
            annotate_failure(&mut res, &facts);
            return Ok(res);
        }
    };
    Ok(match outcome {
        InferenceOutcome::Complete { meta, response } => {
            let mut res = json_response(StatusCode::OK, &message_object(&model, &meta, &response));
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
        InferenceOutcome::Stream { meta, first, rest } => {
            let format = MessagesStream::new(model, &meta);
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

/// Handles `POST /anthropic/v1/messages/count_tokens`: an estimate, made without calling any
/// provider (about 4 bytes of text per token, 1,000 tokens per image or document, as the rate
/// limiter estimates), in Anthropic's `{"input_tokens": N}`.
pub async fn count_tokens<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (_, bytes) = read_body(req, state.body_limit).await?;
    let body: MessagesRequest = parse_json(&bytes)?;
    resolve(&body.model, &state.engine)?;
    // The request is checked as a real one would be, so a malformed one is refused here too.
    let tools: u64 = body.tools.iter().map(|t| t.to_string().len() as u64).sum();
    let request = into_request(
        MessagesRequest {
            max_tokens: Some(body.max_tokens.unwrap_or(1)),
            ..body
        },
        Target::Model(String::new()),
    )?;
    let (mut bytes, mut files) = (tools, 0u64);
    if let Some(SystemInput::Text(s)) = &request.input.system {
        bytes += s.len() as u64;
    }
    for message in &request.input.messages {
        for block in &message.content {
            match block {
                InputBlock::Text(t) | InputBlock::RawText(t) => bytes += t.len() as u64,
                InputBlock::Template { arguments, .. } => {
                    bytes += Value::Object(arguments.clone()).to_string().len() as u64
                }
                InputBlock::Other(ContentBlock::File(_)) => files += 1,
                InputBlock::Other(ContentBlock::ToolCall(c)) => {
                    bytes += (c.name.len() + c.arguments.len()) as u64
                }
                InputBlock::Other(ContentBlock::ToolResult(r)) => bytes += r.result.len() as u64,
                InputBlock::Other(ContentBlock::Thought(t)) => {
                    bytes += t.text.as_deref().map_or(0, str::len) as u64
                }
                InputBlock::Other(_) => {}
            }
        }
    }
    let tokens = bytes.div_ceil(4) + files * 1_000;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "input_tokens": tokens.max(1) }),
    ))
}

fn bad(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

fn into_request(body: MessagesRequest, target: Target) -> Result<InferenceRequest, Error> {
    let max_tokens = body.max_tokens.ok_or_else(|| {
        bad("`max_tokens` is required: the most tokens the answer may have (e.g. 1024)")
    })?;
    let unknown: Vec<&String> = body
        .unknown
        .keys()
        .filter(|k| !IGNORED_FIELDS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(fields = ?unknown, "ignoring unknown fields in an Anthropic Messages request");
    }
    let system = match &body.system {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SystemInput::Text(s.clone())),
        Some(Value::Array(blocks)) => {
            let texts = blocks
                .iter()
                .map(|b| match b.get("type").and_then(Value::as_str) {
                    Some("text") => b
                        .get("text")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("`system` text blocks need `text`")),
                    _ => Err(bad("`system` blocks must be of type `text`")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(SystemInput::Text(texts.join("\n\n")))
        }
        Some(_) => return Err(bad("`system` must be a string or a list of text blocks")),
    };
    let messages = convert_messages(&body.messages)?;
    if messages.is_empty() {
        return Err(bad("`messages` must hold at least one message"));
    }
    let additional_tools = body
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| tool_def(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let (tool_choice, parallel_tool_calls) = match &body.tool_choice {
        None => (None, None),
        Some(choice) => {
            let parallel = choice
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                .map(|disabled| !disabled);
            let choice = match choice.get("type").and_then(Value::as_str) {
                Some("auto") => ToolChoice::Auto,
                Some("any") => ToolChoice::Required,
                Some("none") => ToolChoice::None,
                Some("tool") => ToolChoice::Specific(
                    choice
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("`tool_choice` of type `tool` needs a `name`"))?
                        .to_owned(),
                ),
                _ => {
                    return Err(bad(
                        "`tool_choice.type` must be `auto`, `any`, `tool` or `none`",
                    ));
                }
            };
            (Some(choice), parallel)
        }
    };
    let thinking_budget_tokens = match &body.thinking {
        None | Some(Value::Null) => None,
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some("enabled") => Some(
                t.get("budget_tokens")
                    .and_then(Value::as_u64)
                    .and_then(|b| u32::try_from(b).ok())
                    .ok_or_else(|| bad("`thinking` of type `enabled` needs `budget_tokens`"))?,
            ),
            Some("disabled") => None,
            _ => return Err(bad("`thinking.type` must be `enabled` or `disabled`")),
        },
    };
    let params = InferenceParams {
        temperature: body.temperature,
        max_tokens: Some(max_tokens),
        top_p: body.top_p,
        top_k: body.top_k,
        stop_sequences: body.stop_sequences,
        thinking_budget_tokens,
        ..InferenceParams::default()
    };
    // `metadata.user_id` becomes the `user_id` tag, which rate limits and the log scope by.
    let mut tags = BTreeMap::new();
    if let Some(user) = body
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        tags.insert("user_id".to_owned(), user.to_owned());
    }
    let (function_name, model_name) = target.into_names();
    Ok(InferenceRequest {
        namespace: None,
        function_name,
        model_name,
        variant_name: None,
        episode_id: None,
        input: Input { system, messages },
        stream: body.stream.unwrap_or(false),
        params,
        tags,
        tools: DynamicToolParams {
            allowed_tools: None,
            additional_tools,
            tool_choice,
            parallel_tool_calls,
        },
        output_schema: None,
        credentials: Default::default(),
        extra_body: Vec::new(),
        extra_headers: Vec::new(),
        api_key_public_id: None,
        stats: Default::default(),
        schemas: Default::default(),
        trace: None,
        trace_extras: None,
        raw_wanted: Default::default(),
        dryrun: false,
        recorder: None,
    })
}

/// `messages`: user and assistant turns of `text`, `image`, `document`, `tool_use`,
/// `tool_result` and `thinking` blocks.
fn convert_messages(messages: &[Value]) -> Result<Vec<InputMessage>, Error> {
    // Tool names by `tool_use` id: a `tool_result` must answer a call made earlier.
    let mut calls: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let at = |msg: &str| bad(format!("`messages[{i}]`: {msg}"));
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(other) => {
                return Err(at(&format!(
                    "`role` must be `user` or `assistant`, not `{other}` (the system prompt goes in `system`)"
                )));
            }
            None => return Err(at("needs a `role`")),
        };
        let content = match m.get("content") {
            Some(Value::String(s)) => vec![InputBlock::Text(s.clone())],
            Some(Value::Array(blocks)) => blocks
                .iter()
                .enumerate()
                .filter_map(|(j, b)| {
                    block(b, role, &mut calls)
                        .map_err(|e| at(&format!("`content[{j}]`: {e}")))
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(at("`content` must be a string or a list of blocks")),
        };
        out.push(InputMessage { role, content });
    }
    Ok(out)
}

/// One content block (`None`: one that carries nothing to send, such as redacted thinking).
fn block(
    b: &Value,
    role: Role,
    calls: &mut BTreeMap<String, String>,
) -> Result<Option<InputBlock>, String> {
    let text = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("needs a string `{k}`"))
    };
    let kind = b
        .get("type")
        .and_then(Value::as_str)
        .ok_or("every block needs a `type`")?;
    Ok(Some(match (kind, role) {
        ("text", _) => InputBlock::Text(text("text")?),
        ("image" | "document", Role::User) => {
            let source = b.get("source").ok_or("needs a `source`")?;
            match source.get("type").and_then(Value::as_str) {
                Some("base64") => InputBlock::Other(ContentBlock::File(FileInput::Base64 {
                    mime_type: source
                        .get("media_type")
                        .and_then(Value::as_str)
                        .ok_or("a base64 source needs `media_type`")?
                        .to_owned(),
                    data: source
                        .get("data")
                        .and_then(Value::as_str)
                        .ok_or("a base64 source needs `data`")?
                        .to_owned(),
                })),
                Some("url") => InputBlock::Other(ContentBlock::File(FileInput::Url {
                    url: source
                        .get("url")
                        .and_then(Value::as_str)
                        .ok_or("a url source needs `url`")?
                        .to_owned(),
                    mime_type: None,
                })),
                Some("text") if kind == "document" => InputBlock::Text(
                    source
                        .get("data")
                        .and_then(Value::as_str)
                        .ok_or("a text source needs `data`")?
                        .to_owned(),
                ),
                _ => {
                    return Err(
                        "`source.type` must be `base64` or `url` (or `text` for documents)".into(),
                    );
                }
            }
        }
        ("tool_use", Role::Assistant) => {
            let id = text("id")?;
            let name = text("name")?;
            calls.insert(id.clone(), name.clone());
            InputBlock::Other(ContentBlock::ToolCall(ToolCall {
                id,
                name,
                arguments: b
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            }))
        }
        ("tool_result", Role::User) => {
            let id = text("tool_use_id")?;
            let name = calls.get(&id).cloned().ok_or_else(|| {
                format!("this `tool_result` answers `tool_use_id` `{id}`, but no `tool_use` block with that id comes before it")
            })?;
            let mut result = match b.get("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Some(_) => {
                    return Err("`content` of a tool result must be a string or blocks".into());
                }
            };
            if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                result = format!("Error: {result}");
            }
            InputBlock::Other(ContentBlock::ToolResult(ToolResult { id, name, result }))
        }
        ("thinking", Role::Assistant) => InputBlock::Other(ContentBlock::Thought(Thought {
            text: b.get("thinking").and_then(Value::as_str).map(str::to_owned),
            signature: b
                .get("signature")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })),
        // Redacted reasoning carries nothing another provider could use.
        ("redacted_thinking", Role::Assistant) => return Ok(None),
        (kind @ ("image" | "document" | "tool_result"), Role::Assistant) => {
            return Err(format!("`{kind}` blocks belong in user messages"));
        }
        (kind @ ("tool_use" | "thinking" | "redacted_thinking"), Role::User) => {
            return Err(format!("`{kind}` blocks belong in assistant messages"));
        }
        (other, _) => return Err(format!("blocks of type `{other}` are not supported")),
    }))
}

/// A `tools` entry: a client tool (`name`, `description`, `input_schema`). Anthropic's
/// server-side tools (`web_search_...`, `bash_...`) are not offered through the gateway.
fn tool_def(i: usize, tool: &Value) -> Result<ToolDef, Error> {
    let at = |m: &str| bad(format!("`tools[{i}]`: {m}"));
    if let Some(kind) = tool
        .get("type")
        .and_then(Value::as_str)
        .filter(|k| *k != "custom")
    {
        return Err(at(&format!(
            "tools of type `{kind}` (Anthropic's server tools) are not supported; define client tools with `name`, `description` and `input_schema`"
        )));
    }
    Ok(ToolDef {
        name: tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| at("needs a `name`"))?
            .to_owned(),
        description: tool
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        parameters: tool
            .get("input_schema")
            .cloned()
            .ok_or_else(|| at("needs an `input_schema`"))?,
        strict: false,
    })
}
