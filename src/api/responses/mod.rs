//! `POST /openai/v1/responses`: the OpenAI Responses API (what Codex and the OpenAI Agents SDK
//! speak), over the same inference engine and model-call stack as `/inference`.
//!
//! Every response is stored when the observability store is on (unless `store: false`, what
//! agents send through a gateway when they carry the whole conversation in `input`), as the
//! inference it is; `previous_response_id` then continues from one: its input and output come
//! first in the conversation, and the new response joins its episode. Without the store,
//! `previous_response_id` is refused with a 400 that says why.

mod output;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::file_from_url;
use super::stream::sse_response;
use super::target::{Target, resolve};
use super::{
    AppState, RequestFacts, annotate, annotate_failure, json_response, parse_json, read_body,
    server_timing,
};
use crate::body::Body;
use crate::config::JsonMode;
use crate::error::{Error, ErrorFlavor};
use crate::inference::input::{Input, InputBlock, InputMessage, SystemInput};
use crate::inference::{DynamicToolParams, InferenceOutcome, InferenceRequest};
use crate::model_call::{
    ContentBlock, InferenceParams, Role, Thought, ToolCall, ToolChoice, ToolDef, ToolResult,
};
use output::{ResponseShape, ResponsesStream, response_object};

/// Fields of the Responses API that change nothing here (no warning for them).
const IGNORED_FIELDS: [&str; 8] = [
    "user",
    "include",
    "truncation",
    "prompt_cache_key",
    "safety_identifier",
    "stream_options",
    "top_logprobs",
    "service_tier",
];

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: String,
    #[serde(default)]
    input: Option<Value>,
    instructions: Option<String>,
    #[serde(default)]
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    text: Option<TextOptions>,
    reasoning: Option<Reasoning>,
    #[serde(default)]
    metadata: BTreeMap<String, Value>,
    stream: Option<bool>,
    previous_response_id: Option<String>,
    store: Option<bool>,
    conversation: Option<Value>,
    background: Option<bool>,
    n: Option<u32>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct TextOptions {
    format: Option<Value>,
    verbosity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Reasoning {
    effort: Option<String>,
}

/// Handles `POST /openai/v1/responses`.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = tokio::time::Instant::now();
    let (parts, bytes) = read_body(req, state.body_limit).await?;
    let body: ResponsesRequest = parse_json(&bytes)?;
    let target = resolve(&body.model, &state.engine)?;
    let previous = match &body.previous_response_id {
        Some(id) => Some(previous_response(state, id).await?),
        None => None,
    };
    let storing = state.engine.store().is_some() && body.store != Some(false);
    let (mut request, mut shape) = into_request(body, target)?;
    request.dryrun = !storing;
    shape.store = storing;
    if let Some(previous) = previous {
        previous.continue_into(&mut request);
    }
    super::take_caller_context(&mut request, &parts);
    let facts = RequestFacts::of(&request, &parts);
    let outcome = match state.engine.infer(request).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let mut res = e.into_response(ErrorFlavor::OpenAi);
            annotate_failure(&mut res, &facts);
            return Ok(res);
        }
    };
    Ok(match outcome {
        InferenceOutcome::Complete { meta, response } => {
            let mut res = json_response(StatusCode::OK, &response_object(&shape, &meta, &response));
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
        InferenceOutcome::Stream { meta, first, rest } => {
            let format = ResponsesStream::new(shape, &meta);
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

/// A stored response a request continues from.
struct Previous {
    input: Input,
    episode_id: uuid::Uuid,
}

impl Previous {
    /// Puts the stored conversation (and the answer) before the request's own input.
    fn continue_into(self, request: &mut InferenceRequest) {
        let Previous { input, episode_id } = self;
        if request.input.system.is_none() {
            request.input.system = input.system;
        }
        let mut messages = input.messages;
        messages.append(&mut request.input.messages);
        request.input.messages = messages;
        request.episode_id = Some(episode_id);
    }
}

/// The stored response `id` (`resp_<inference id>`) as a conversation to continue.
async fn previous_response(state: &AppState, id: &str) -> Result<Previous, Error> {
    let Some(store) = state.engine.store() else {
        return Err(bad(
            "`previous_response_id` continues a stored response, and the observability store is off: set TENSORZERO_POSTGRES_URL to store responses, or send the whole conversation in `input` (with `store: false`)",
        ));
    };
    let not_found = || {
        Error::NotFound(format!(
            "Previous response with id '{id}' not found (it was not stored: `store: false`, or another gateway's database)"
        ))
    };
    let inference_id: uuid::Uuid = id
        .strip_prefix("resp_")
        .and_then(|s| s.parse().ok())
        .ok_or_else(not_found)?;
    // A response stored a moment ago may still be in the write queue: wait for it as
    // feedback waits for its target.
    let arrived = crate::observability::targets::target_exists(store.pool(), inference_id, false)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "reading a stored response failed");
            Error::StoreUnavailable(
                "the observability store (Postgres) did not answer; retry shortly".into(),
            )
        })?;
    if !arrived {
        return Err(not_found());
    }
    let is_json = |name: &str| state.engine.function(name).map(|f| f.is_json());
    let catalog = crate::observability::reads::Catalog {
        metrics: &state.feedback.metrics,
        function_is_json: &is_json,
    };
    let found = crate::observability::reads::get_inferences(
        store.pool(),
        &catalog,
        vec![inference_id],
        None,
        crate::observability::reads::OutputSource::Inference,
    )
    .await?;
    let stored = found.into_iter().next().ok_or_else(not_found)?;
    let mut messages = stored
        .get("input")
        .and_then(|i| i.get("messages"))
        .cloned()
        .and_then(|m| match m {
            Value::Array(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    // The answer, as the assistant's turn (a json function's raw text).
    let answer: Vec<Value> = match stored.get("output") {
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => Some(json!({"type": "text", "text": b["text"]})),
                Some("tool_call") => Some(json!({
                    "type": "tool_call", "id": b["id"], "name": b["raw_name"], "arguments": b["raw_arguments"]
                })),
                Some("thought") => Some(b.clone()),
                _ => None,
            })
            .collect(),
        Some(Value::Object(o)) => o
            .get("raw")
            .and_then(Value::as_str)
            .map(|raw| vec![json!({"type": "text", "text": raw})])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if !answer.is_empty() {
        messages.push(json!({"role": "assistant", "content": answer}));
    }
    crate::api::stored_files::resolve(
        state.engine.files(),
        messages
            .iter_mut()
            .filter_map(|m| m.get_mut("content"))
            .collect(),
    )
    .await
    .map_err(|why| {
        bad(format!(
            "the previous response's input cannot be sent again: {why}; set `[object_storage]` to keep files, or send the whole conversation in `input`"
        ))
    })?;
    let wire: crate::native_wire::InputBody = serde_json::from_value(json!({
        "system": stored.get("input").and_then(|i| i.get("system")),
        "messages": messages,
    }))
    .map_err(|e| {
        Error::InvalidRequest(format!(
            "the stored response `{id}` cannot be continued ({e}): send the whole conversation in `input`"
        ))
    })?;
    let input = crate::api::inference::input_from_wire(wire)?;
    let episode_id = stored
        .get("episode_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(not_found)?;
    Ok(Previous { input, episode_id })
}

fn bad(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

fn into_request(
    body: ResponsesRequest,
    target: Target,
) -> Result<(InferenceRequest, ResponseShape), Error> {
    if body.conversation.is_some() {
        return Err(bad(
            "`conversation` objects are not supported: continue with `previous_response_id` (with the observability store on), or send the whole conversation in `input`",
        ));
    }
    if body.background == Some(true) {
        return Err(bad(
            "`background: true` is not supported: switchyard answers while the connection is open",
        ));
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(bad("`n` must be 1; the gateway returns one answer"));
    }
    let unknown: Vec<&String> = body
        .unknown
        .keys()
        .filter(|k| !IGNORED_FIELDS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(fields = ?unknown, "ignoring unknown fields in a Responses API request");
    }
    let mut input = match body.input {
        None | Some(Value::Null) => Input::default(),
        Some(Value::String(text)) => Input {
            system: None,
            messages: vec![InputMessage {
                role: Role::User,
                content: vec![InputBlock::Text(text)],
            }],
        },
        Some(Value::Array(items)) => convert_items(&items)?,
        Some(_) => return Err(bad("`input` must be a string or a list of items")),
    };
    if let Some(instructions) = &body.instructions {
        input.system = Some(match input.system.take() {
            Some(SystemInput::Text(rest)) => SystemInput::Text(format!("{instructions}\n\n{rest}")),
            _ => SystemInput::Text(instructions.clone()),
        });
    }
    if input.messages.is_empty() {
        return Err(bad("`input` holds no message to answer"));
    }
    let (json_mode, output_schema) =
        match body.text.as_ref().and_then(|t| t.format.as_ref()) {
            None => (None, None),
            Some(format) => match format.get("type").and_then(Value::as_str) {
                Some("text") => (None, None),
                Some("json_object") => (Some(JsonMode::On), None),
                Some("json_schema") => (
                    Some(JsonMode::Strict),
                    Some(format.get("schema").cloned().ok_or_else(|| {
                        bad("`text.format` of type `json_schema` needs `schema`")
                    })?),
                ),
                _ => {
                    return Err(bad(
                        "`text.format.type` must be `text`, `json_object` or `json_schema`",
                    ));
                }
            },
        };
    let additional_tools = body
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| tool_def(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = body.tool_choice.as_ref().map(tool_choice).transpose()?;
    let params = InferenceParams {
        temperature: body.temperature,
        max_tokens: body.max_output_tokens,
        top_p: body.top_p,
        json_mode,
        reasoning_effort: body.reasoning.and_then(|r| r.effort),
        verbosity: body.text.as_ref().and_then(|t| t.verbosity.clone()),
        ..InferenceParams::default()
    };
    // `metadata` becomes the request's tags (string values; others as their JSON text), so rate
    // limits and the log scope by them as by `tags` on `/inference`.
    let tags = body
        .metadata
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    let shape = ResponseShape {
        model: body.model,
        instructions: body.instructions,
        max_output_tokens: body.max_output_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        tools: body.tools,
        tool_choice: body.tool_choice.unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
        text_format: body
            .text
            .and_then(|t| t.format)
            .unwrap_or_else(|| json!({"type": "text"})),
        store: false,
        previous_response_id: body.previous_response_id,
    };
    let (function_name, model_name) = target.into_names();
    let request = InferenceRequest {
        namespace: None,
        function_name,
        model_name,
        variant_name: None,
        episode_id: None,
        input,
        stream: body.stream.unwrap_or(false),
        params,
        tags,
        tools: DynamicToolParams {
            allowed_tools: None,
            additional_tools,
            tool_choice,
            parallel_tool_calls: body.parallel_tool_calls,
        },
        output_schema,
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
    };
    Ok((request, shape))
}

/// The conversation of `input` items: messages (system and developer ones become the system
/// prompt), function calls and their outputs, and reasoning items.
fn convert_items(items: &[Value]) -> Result<Input, Error> {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<InputMessage> = Vec::new();
    // Function names by call id: a `function_call_output` must answer a call made earlier.
    let mut calls: BTreeMap<String, String> = BTreeMap::new();
    let push = |messages: &mut Vec<InputMessage>, role: Role, block: InputBlock| match messages
        .last_mut()
    {
        Some(last) if last.role == role => last.content.push(block),
        _ => messages.push(InputMessage {
            role,
            content: vec![block],
        }),
    };
    for (i, item) in items.iter().enumerate() {
        let at = |m: &str| bad(format!("`input[{i}]`: {m}"));
        let Some(object) = item.as_object() else {
            return Err(at("each item must be an object"));
        };
        let kind = object.get("type").and_then(Value::as_str);
        match (kind, object.get("role").and_then(Value::as_str)) {
            (None | Some("message"), Some(role)) => {
                let content = object.get("content").unwrap_or(&Value::Null);
                let blocks = content_parts(content).map_err(|m| at(&m))?;
                match role {
                    "system" | "developer" => {
                        for block in blocks {
                            match block {
                                InputBlock::Text(t) => system.push(t),
                                _ => return Err(at("a system message holds text only")),
                            }
                        }
                    }
                    "user" => {
                        for block in blocks {
                            push(&mut messages, Role::User, block);
                        }
                    }
                    "assistant" => {
                        for block in blocks {
                            push(&mut messages, Role::Assistant, block);
                        }
                    }
                    other => {
                        return Err(at(&format!(
                            "`role` must be `user`, `assistant`, `system` or `developer`, not `{other}`"
                        )));
                    }
                }
            }
            (Some("message"), None) => return Err(at("a message needs a `role`")),
            (Some("function_call"), _) => {
                let text = |k: &str| {
                    object
                        .get(k)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| at(&format!("a `function_call` needs a string `{k}`")))
                };
                let (id, name, arguments) = (text("call_id")?, text("name")?, text("arguments")?);
                calls.insert(id.clone(), name.clone());
                push(
                    &mut messages,
                    Role::Assistant,
                    InputBlock::Other(ContentBlock::ToolCall(ToolCall {
                        id,
                        name,
                        arguments,
                    })),
                );
            }
            (Some("function_call_output"), _) => {
                let id = object
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| at("a `function_call_output` needs a string `call_id`"))?;
                let name = calls.get(id).cloned().ok_or_else(|| {
                    at(&format!(
                        "this `function_call_output` answers `call_id` `{id}`, but no `function_call` with that id comes before it in `input`"
                    ))
                })?;
                let result = match object.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => return Err(at("a `function_call_output` needs `output`")),
                };
                push(
                    &mut messages,
                    Role::User,
                    InputBlock::Other(ContentBlock::ToolResult(ToolResult {
                        id: id.to_owned(),
                        name,
                        result,
                    })),
                );
            }
            (Some("reasoning"), _) => {
                let summary: Vec<&str> = object
                    .get("summary")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.get("text").and_then(Value::as_str))
                    .collect();
                let thought = Thought {
                    text: (!summary.is_empty()).then(|| summary.join("\n")),
                    signature: object
                        .get("encrypted_content")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                };
                push(
                    &mut messages,
                    Role::Assistant,
                    InputBlock::Other(ContentBlock::Thought(thought)),
                );
            }
            (Some(other), _) => {
                return Err(at(&format!(
                    "items of type `{other}` are not supported (messages, `function_call`, `function_call_output` and `reasoning` are)"
                )));
            }
            (None, None) => return Err(at("an item needs a `type` or a `role`")),
        }
    }
    Ok(Input {
        system: (!system.is_empty()).then(|| SystemInput::Text(system.join("\n\n"))),
        messages,
    })
}

/// A message's content: a string, or parts (`input_text`, `output_text`, `input_image`,
/// `input_file`, `refusal`).
fn content_parts(content: &Value) -> Result<Vec<InputBlock>, String> {
    match content {
        Value::String(s) => Ok(vec![InputBlock::Text(s.clone())]),
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                let text = |k: &str| {
                    p.get(k)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| format!("a content part needs a string `{k}`"))
                };
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text") => text("text").map(InputBlock::Text),
                    Some("refusal") => text("refusal").map(InputBlock::Text),
                    Some("input_image") => {
                        let url = text("image_url").map_err(|_| {
                            "an `input_image` part needs `image_url` (a URL or a data: URL); `file_id` needs stored files, which the gateway has not".to_owned()
                        })?;
                        Ok(InputBlock::Other(ContentBlock::File(file_from_url(&url))))
                    }
                    Some("input_file") => {
                        if let Some(data) = p.get("file_data").and_then(Value::as_str) {
                            Ok(InputBlock::Other(ContentBlock::File(file_from_url(data))))
                        } else if let Some(url) = p.get("file_url").and_then(Value::as_str) {
                            Ok(InputBlock::Other(ContentBlock::File(file_from_url(url))))
                        } else {
                            Err("an `input_file` part needs `file_data` (a data: URL) or `file_url`".to_owned())
                        }
                    }
                    Some(other) => Err(format!("content parts of type `{other}` are not supported")),
                    None => Err("every content part needs a `type`".to_owned()),
                }
            })
            .collect(),
        Value::Null => Err("the message needs `content`".to_owned()),
        _ => Err("`content` must be a string or a list of parts".to_owned()),
    }
}

/// A `tools` entry: Responses function tools are flat (`{type, name, description,
/// parameters, strict}`).
fn tool_def(i: usize, tool: &Value) -> Result<ToolDef, Error> {
    let at = |m: &str| bad(format!("`tools[{i}]`: {m}"));
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(at(&format!(
                "tools of type `{other}` are not supported; only `function` tools are"
            )));
        }
        None => return Err(at("needs a `type`")),
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
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
        strict: tool.get("strict").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn tool_choice(v: &Value) -> Result<ToolChoice, Error> {
    match v {
        Value::String(s) if s == "none" => Ok(ToolChoice::None),
        Value::String(s) if s == "auto" => Ok(ToolChoice::Auto),
        Value::String(s) if s == "required" => Ok(ToolChoice::Required),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => o
            .get("name")
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Specific(n.to_owned()))
            .ok_or_else(|| bad("`tool_choice` of type `function` needs a `name`")),
        _ => Err(bad(
            "`tool_choice` must be `none`, `auto`, `required` or `{\"type\": \"function\", \"name\": ...}`",
        )),
    }
}
