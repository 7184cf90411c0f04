//! `POST /inference`: the native TensorZero API.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde_json::{Map, Value, json};

use super::stream::{StreamFormat, sse_response};
use super::{
    AppState, RequestFacts, annotate, annotate_failure, json_response, parse_json, read_body,
    server_timing,
};
use crate::body::Body;
use crate::error::Error;
use crate::inference::functions::{checked_tool_call, output_text, parsed_json};
use crate::inference::input::{Input, InputBlock, InputMessage, SystemInput};
use crate::inference::{
    DynamicToolParams, InferenceMeta, InferenceOutcome, InferenceRequest, RequestEdit,
    RequestEditFilter,
};
use crate::model_call::BodyEdit;
use crate::model_call::{
    ChunkBlock, ContentBlock, FileInput, FinishReason, HeaderEdit, ModelChunk, ModelResponse,
    OutputBlock, Role, Thought, ToolCall, ToolResult, Usage,
};
use crate::native_wire::{self, InferenceRequestBody, InputContentBlock, MessageBody};
use std::sync::Arc;
use switchyard_layers::ext::DynamicCredentials;

/// Handles `POST /inference`.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = tokio::time::Instant::now();
    let (parts, bytes) = read_body(req, state.body_limit).await?;
    let mut native: InferenceRequestBody = parse_json(&bytes)?;
    // TensorZero's stored-file pointers (a datapoint's or a stored inference's input, sent
    // again): their bytes from object storage.
    super::stored_files::resolve(
        state.engine.files(),
        native
            .input
            .messages
            .iter_mut()
            .map(|m| &mut m.content)
            .collect(),
    )
    .await
    .map_err(Error::InvalidRequest)?;
    let mut request = into_request(native)?;
    super::take_caller_context(&mut request, &parts);
    let stream = request.stream;
    let facts = RequestFacts::of(&request, &parts);
    let outcome = match state.engine.infer(request).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let mut res = e.into_response(crate::error::ErrorFlavor::Native);
            annotate_failure(&mut res, &facts);
            return Ok(res);
        }
    };
    Ok(match outcome {
        InferenceOutcome::Complete { meta, response } => {
            let mut res = json_response(StatusCode::OK, &response_json(&meta, &response));
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
        InferenceOutcome::Stream { meta, first, rest } => {
            debug_assert!(stream);
            let mut res = sse_response(
                first,
                rest,
                NativeStream { meta: meta.clone() },
                state.metrics.streams_in_flight.with(&[]),
            );
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
    })
}

fn into_request(n: InferenceRequestBody) -> Result<InferenceRequest, Error> {
    if n.include_aggregated_response == Some(true) && n.stream != Some(true) {
        return Err(Error::InvalidRequest(
            "`include_aggregated_response` is only for streaming requests".into(),
        ));
    }
    if n.internal_dynamic_variant_config.is_some() {
        return Err(Error::NotSupported(
            "`internal_dynamic_variant_config`".into(),
        ));
    }
    if n.provider_tools
        .as_ref()
        .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(Error::NotSupported(
            "`provider_tools` (built-in provider tools)".into(),
        ));
    }
    let namespace = crate::inference::check_namespace(n.namespace)?;
    // Accepted for compatibility; switchyard has no cache, so these change nothing.
    let _ = (n.internal, n.cache_options, n.include_original_response);
    let raw_wanted = crate::model_call::RawWanted {
        usage: n.include_raw_usage == Some(true),
        response: n.include_raw_response == Some(true),
    };
    let input = input_from_wire(n.input)?;
    Ok(InferenceRequest {
        namespace,
        function_name: n.function_name,
        model_name: n.model_name,
        variant_name: n.variant_name,
        episode_id: n.episode_id,
        input,
        stream: n.stream.unwrap_or(false),
        params: n.params.chat_completion.unwrap_or_default(),
        tags: n.tags,
        tools: DynamicToolParams {
            allowed_tools: n.allowed_tools,
            additional_tools: n.additional_tools,
            tool_choice: n.tool_choice,
            parallel_tool_calls: n.parallel_tool_calls,
        },
        output_schema: n.output_schema,
        credentials: DynamicCredentials(Arc::new(n.credentials)),
        extra_body: parse_extra_body(&n.extra_body)?,
        extra_headers: parse_extra_headers(&n.extra_headers)?,
        api_key_public_id: None,
        stats: Default::default(),
        schemas: Default::default(),
        trace: None,
        trace_extras: None,
        raw_wanted,
        dryrun: n.dryrun == Some(true),
        recorder: None,
    })
}

/// A native `input` (system text or template arguments, and messages) in the gateway's terms.
pub(crate) fn input_from_wire(input: native_wire::InputBody) -> Result<Input, Error> {
    let system = match input.system {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SystemInput::Text(s)),
        Some(Value::Object(arguments)) => Some(SystemInput::Arguments(arguments)),
        Some(other) => {
            return Err(Error::JsonRequest(format!(
                "Invalid request body at `input.system`: expected a string or an object of template arguments, got {}",
                type_name(&other)
            )));
        }
    };
    let messages = input
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| convert_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Input { system, messages })
}

fn convert_message(index: usize, m: MessageBody) -> Result<InputMessage, Error> {
    let at = |j: usize| format!("input.messages[{index}].content[{j}]");
    let content = match m.content {
        Value::String(text) => vec![InputBlock::Text(text)],
        Value::Array(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(j, block)| {
                let block: InputContentBlock = serde_json::from_value(block).map_err(|e| {
                    Error::JsonRequest(format!("Invalid request body at `{}`: {e}", at(j)))
                })?;
                convert_block(m.role, block).map_err(|e| match e {
                    Error::InvalidRequest(msg) => {
                        Error::InvalidRequest(format!("`{}`: {msg}", at(j)))
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => {
            return Err(Error::JsonRequest(format!(
                "Invalid request body at `input.messages[{index}].content`: expected a string or a list of content blocks, got {}",
                type_name(&other)
            )));
        }
    };
    Ok(InputMessage {
        role: m.role,
        content,
    })
}

fn convert_block(role: Role, block: InputContentBlock) -> Result<InputBlock, Error> {
    let arguments_object = |arguments: Value| match arguments {
        Value::Object(map) => Ok(map),
        other => Err(Error::InvalidRequest(format!(
            "template `arguments` must be an object, got {}",
            type_name(&other)
        ))),
    };
    Ok(InputBlock::Other(match block {
        InputContentBlock::Text {
            text: Some(text),
            arguments: None,
        } => return Ok(InputBlock::Text(text)),
        // The older spelling of a template block for the role's own template.
        InputContentBlock::Text {
            text: None,
            arguments: Some(arguments),
        } => {
            return Ok(InputBlock::Template {
                name: match role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                }
                .to_owned(),
                arguments: arguments_object(arguments)?,
            });
        }
        InputContentBlock::Text { .. } => {
            return Err(Error::InvalidRequest(
                "a text block needs exactly one of `text` and `arguments`".into(),
            ));
        }
        InputContentBlock::Template { name, arguments } => {
            return Ok(InputBlock::Template {
                name,
                arguments: arguments_object(arguments)?,
            });
        }
        InputContentBlock::RawText { value } => return Ok(InputBlock::RawText(value)),
        InputContentBlock::ToolCall {
            id,
            name,
            arguments,
            raw_name,
            raw_arguments,
        } => ContentBlock::ToolCall(ToolCall {
            id,
            // What the model wrote is what it should see again.
            name: raw_name.or(name).ok_or_else(|| {
                Error::InvalidRequest("a tool call block needs a `name` (or `raw_name`)".into())
            })?,
            arguments: match (raw_arguments, arguments) {
                (Some(raw), _) => raw,
                (None, Some(Value::String(s))) => s,
                (None, Some(other)) => other.to_string(),
                (None, None) => {
                    return Err(Error::InvalidRequest(
                        "a tool call block needs `arguments` (or `raw_arguments`)".into(),
                    ));
                }
            },
        }),
        InputContentBlock::ToolResult { id, name, result } => {
            ContentBlock::ToolResult(ToolResult { id, name, result })
        }
        InputContentBlock::File {
            file_type,
            url,
            mime_type,
            data,
            ..
        } => match (file_type.as_deref(), url, data) {
            (None | Some("url"), Some(url), None) => {
                ContentBlock::File(FileInput::Url { url, mime_type })
            }
            (None | Some("base64"), None, Some(data)) => ContentBlock::File(FileInput::Base64 {
                mime_type: mime_type.ok_or_else(|| {
                    Error::InvalidRequest(
                        "a base64 file needs `mime_type` (e.g. `image/png`)".into(),
                    )
                })?,
                data,
            }),
            _ => {
                return Err(Error::InvalidRequest(
                    "a file block is `{\"file_type\": \"url\", \"url\": ...}` or `{\"file_type\": \"base64\", \"mime_type\": ..., \"data\": ...}`".into(),
                ));
            }
        },
        InputContentBlock::Thought {
            text, signature, ..
        } => ContentBlock::Thought(Thought { text, signature }),
        InputContentBlock::Unknown { data, .. } => ContentBlock::Unknown { data },
    }))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The filter part of a request-time `extra_body`/`extra_headers` entry.
fn edit_filter(entry: &Map<String, Value>, what: &str) -> Result<RequestEditFilter, Error> {
    let s = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
    match (s("variant_name"), s("model_name"), s("provider_name")) {
        (Some(v), None, None) => Ok(RequestEditFilter::Variant(v)),
        (None, Some(model), provider) => Ok(RequestEditFilter::ModelProvider { model, provider }),
        (None, None, None) => Ok(RequestEditFilter::Always),
        _ => Err(Error::InvalidRequest(format!(
            "an `{what}` entry targets either a `variant_name` or a `model_name` (with an optional `provider_name`), not both"
        ))),
    }
}

/// Parses request-time `extra_body` entries.
pub(super) fn parse_extra_body(entries: &[Value]) -> Result<Vec<RequestEdit<BodyEdit>>, Error> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let bad = |msg: &str| Error::InvalidRequest(format!("`extra_body[{i}]`: {msg}"));
            let obj = e.as_object().ok_or_else(|| bad("must be an object"))?;
            let pointer = obj
                .get("pointer")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("needs a `pointer` (a JSON Pointer such as `/temperature`)"))?;
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(bad("`pointer` must start with `/`"));
            }
            let value = match (obj.get("value"), obj.get("delete")) {
                (Some(v), None) => Some(v.clone()),
                (None, Some(Value::Bool(true))) => None,
                _ => return Err(bad("needs either `value` or `delete: true`")),
            };
            for key in obj.keys() {
                if ![
                    "pointer",
                    "value",
                    "delete",
                    "variant_name",
                    "model_name",
                    "provider_name",
                ]
                .contains(&key.as_str())
                {
                    return Err(bad(&format!("unknown field `{key}`")));
                }
            }
            Ok(RequestEdit {
                filter: edit_filter(obj, "extra_body")?,
                edit: BodyEdit {
                    pointer: pointer.to_owned(),
                    value,
                },
            })
        })
        .collect()
}

/// Parses request-time `extra_headers` entries.
pub(super) fn parse_extra_headers(
    entries: &[Value],
) -> Result<Vec<RequestEdit<HeaderEdit>>, Error> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let bad = |msg: &str| Error::InvalidRequest(format!("`extra_headers[{i}]`: {msg}"));
            let obj = e.as_object().ok_or_else(|| bad("must be an object"))?;
            let name = obj
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("needs a `name`"))?;
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(bad(&format!("`{name}` is not a valid header name")));
            }
            let value = match (obj.get("value"), obj.get("delete")) {
                (Some(Value::String(v)), None) => {
                    if http::HeaderValue::from_str(v).is_err() {
                        return Err(bad("`value` is not a valid header value"));
                    }
                    Some(v.clone())
                }
                (None, Some(Value::Bool(true))) => None,
                _ => return Err(bad("needs either a string `value` or `delete: true`")),
            };
            Ok(RequestEdit {
                filter: edit_filter(obj, "extra_headers")?,
                edit: HeaderEdit {
                    name: name.to_owned(),
                    value,
                },
            })
        })
        .collect()
}

fn response_json(meta: &InferenceMeta, r: &ModelResponse) -> native_wire::InferenceResponse {
    let (content, output) = if meta.is_json {
        let raw = output_text(&r.content);
        let parsed = parsed_json(&meta.output_check, &raw);
        (None, Some(native_wire::JsonOutput { raw, parsed }))
    } else {
        let blocks = r.content.iter().map(|b| output_block(meta, b)).collect();
        (Some(blocks), None)
    };
    native_wire::InferenceResponse {
        inference_id: meta.inference_id,
        episode_id: meta.episode_id,
        variant_name: meta.variant_name.to_string(),
        content,
        output,
        usage: r.usage.into(),
        raw_usage: meta.raw_wanted.usage.then(|| {
            r.raw
                .as_ref()
                .map(|raw| raw.usage.clone())
                .unwrap_or_default()
        }),
        raw_response: meta.raw_wanted.response.then(|| {
            r.raw
                .as_ref()
                .map(|raw| raw.responses.clone())
                .unwrap_or_default()
        }),
        finish_reason: r.finish_reason,
    }
}

fn output_block(meta: &InferenceMeta, b: &OutputBlock) -> native_wire::ContentBlock {
    match b {
        OutputBlock::Text(text) => native_wire::ContentBlock::Text { text: text.clone() },
        OutputBlock::ToolCall(c) => {
            let (name, arguments) = checked_tool_call(&meta.output_check, &c.name, &c.arguments);
            native_wire::ContentBlock::ToolCall {
                id: c.id.clone(),
                name,
                arguments,
                raw_name: Some(c.name.clone()),
                raw_arguments: Some(c.arguments.clone()),
            }
        }
        OutputBlock::Thought(t) => native_wire::ContentBlock::Thought {
            text: t.text.clone(),
            signature: t.signature.clone(),
        },
    }
}

/// Native SSE chunks.
pub(super) struct NativeStream {
    meta: InferenceMeta,
}

impl NativeStream {
    /// An event of this inference, empty but for its ids.
    fn event(&self) -> native_wire::InferenceChunk {
        native_wire::InferenceChunk {
            inference_id: self.meta.inference_id,
            episode_id: self.meta.episode_id,
            variant_name: self.meta.variant_name.to_string(),
            content: None,
            raw: None,
            usage: None,
            raw_usage: None,
            raw_response: None,
            raw_chunk: None,
            finish_reason: None,
        }
    }
}

fn to_value(event: native_wire::InferenceChunk) -> Value {
    serde_json::to_value(event).expect("a stream event serializes")
}

impl StreamFormat for NativeStream {
    fn chunk(&mut self, chunk: &ModelChunk) -> Vec<Value> {
        let mut event = self.event();
        if let Some(raw) = chunk.raw.as_ref().filter(|_| self.meta.raw_wanted.response) {
            event.raw_chunk = raw.chunk.clone();
            if !raw.responses.is_empty() {
                event.raw_response = Some(raw.responses.clone());
            }
        }
        let has_raw = event.raw_chunk.is_some() || event.raw_response.is_some();
        if self.meta.is_json {
            let raw: String = chunk
                .content
                .iter()
                .filter_map(|b| match b {
                    ChunkBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if raw.is_empty() && !has_raw {
                return Vec::new();
            }
            event.raw = Some(raw);
        } else {
            if chunk.content.is_empty() && !has_raw {
                return Vec::new();
            }
            event.content = Some(chunk.content.iter().map(Into::into).collect());
        }
        vec![to_value(event)]
    }

    fn finish(
        &mut self,
        usage: Usage,
        raw_usage: &[crate::model_call::RawUsage],
        finish_reason: Option<FinishReason>,
    ) -> Vec<Value> {
        let mut event = self.event();
        if self.meta.is_json {
            event.raw = Some(String::new());
        } else {
            event.content = Some(Vec::new());
        }
        event.usage = Some(usage.into());
        if self.meta.raw_wanted.usage {
            event.raw_usage = Some(raw_usage.to_vec());
        }
        event.finish_reason = finish_reason;
        vec![to_value(event)]
    }

    fn error(&mut self, error: &Error) -> Value {
        json!({ "error": error.to_string() })
    }

    const PANIC_EVENTS: &'static str = "data: {\"error\":\"the gateway failed while streaming this answer (an internal error, logged); the answer is incomplete\"}\n\ndata: [DONE]\n\n";
}
