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
use std::sync::Arc;
use switchyard_layers::Secret;
use switchyard_layers::ext::DynamicCredentials;

mod messages;
mod response;

pub(super) use messages::file_from_url;
use messages::{convert_messages, tool_choice, tool_def};
pub(super) use response::OpenAiStream;
use response::{completion, response_model};

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
        deserialize_with = "crate::request_credentials::deserialize_map"
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
    let outcome = match state.engine.infer(request).await {
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
            let mut res = json_response(StatusCode::OK, &completion(&meta, &response, &model));
            annotate(&mut res, &meta, &facts);
            server_timing(&mut res, &parts, &facts, started);
            res
        }
        InferenceOutcome::Stream { meta, first, rest } => {
            let format =
                OpenAiStream::new(&meta, response_model(&model_label, &meta), include_usage);
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
    // Accepted for compatibility; nothing is cached.
    let _ = (chat.cache_options, chat.include_original_response);
    let dryrun = chat.dryrun == Some(true);
    let namespace = crate::inference::check_namespace(chat.namespace)?;

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
        top_k: None,
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
        namespace,
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
        raw_wanted: crate::model_call::RawWanted {
            usage: chat.include_raw_usage == Some(true),
            response: chat.include_raw_response == Some(true),
        },
        dryrun,
        recorder: None,
    };
    Ok((request, target))
}
