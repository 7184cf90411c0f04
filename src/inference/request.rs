//! An inference request in the gateway's own terms, whichever route it came from, and what
//! inference answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use switchyard_layers::ext::DynamicCredentials;
use uuid::Uuid;

use super::functions::OutputCheck;
use super::input::Input;
use super::schema;
use crate::error::Error;
use crate::model_call::{
    BodyEdit, ChunkStream, HeaderEdit, InferenceParams, ModelChunk, ModelResponse, ToolChoice,
    ToolDef,
};

pub use crate::config::functions::DEFAULT_FUNCTION_NAME;

/// What a request-time `extra_body`/`extra_headers` entry applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEditFilter {
    /// Every model call.
    Always,
    /// Calls made by this variant.
    Variant(String),
    /// Calls to this model (and provider).
    ModelProvider {
        /// The model.
        model: String,
        /// The provider, or all of them.
        provider: Option<String>,
    },
}

/// A request-time edit with its filter.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestEdit<T> {
    /// What it applies to.
    pub filter: RequestEditFilter,
    /// The edit.
    pub edit: T,
}

/// Tool settings sent with the request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DynamicToolParams {
    /// Restricts the function's configured tools to these names.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools defined in the request.
    pub additional_tools: Vec<ToolDef>,
    /// Overrides the function's tool choice.
    pub tool_choice: Option<ToolChoice>,
    /// Overrides the function's setting.
    pub parallel_tool_calls: Option<bool>,
}

/// A request's `namespace` (`tensorzero::namespace` on the OpenAI route), checked: a non-empty
/// name that does not start with `tensorzero::`.
pub fn check_namespace(namespace: Option<String>) -> Result<Option<String>, Error> {
    match namespace {
        Some(ns) if ns.is_empty() => {
            Err(Error::InvalidRequest("`namespace` cannot be empty".into()))
        }
        Some(ns) if ns.starts_with("tensorzero::") => Err(Error::InvalidRequest(format!(
            "`namespace` `{ns}` uses the reserved prefix `tensorzero::`"
        ))),
        other => Ok(other),
    }
}

/// A request in the gateway's own terms, whichever route it came from.
#[derive(Clone, Debug, Default)]
pub struct InferenceRequest {
    /// Selects `experimentation.namespaces.NS` (and the models and variants of namespace NS).
    pub namespace: Option<String>,
    /// The function to run.
    pub function_name: Option<String>,
    /// The model to call through the default function.
    pub model_name: Option<String>,
    /// A pinned variant.
    pub variant_name: Option<String>,
    /// The episode this inference belongs to (a new one when absent).
    pub episode_id: Option<Uuid>,
    /// The system prompt and the conversation, before templates.
    pub input: Input,
    /// Stream the answer.
    pub stream: bool,
    /// Inference-time parameters (they override the variant's).
    pub params: InferenceParams,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Tools sent with the request.
    pub tools: DynamicToolParams,
    /// An output schema for json functions (or OpenAI `response_format`).
    pub output_schema: Option<Value>,
    /// Dynamic credentials.
    pub credentials: DynamicCredentials,
    /// Request-time `extra_body`.
    pub extra_body: Vec<RequestEdit<BodyEdit>>,
    /// Request-time `extra_headers`.
    pub extra_headers: Vec<RequestEdit<HeaderEdit>>,
    /// The public id of the API key that authenticated the request, when auth is on.
    pub api_key_public_id: Option<Arc<str>>,
    /// The trace the request belongs to (from the client's `traceparent`, or new).
    pub trace: Option<switchyard_layers::trace_context::TraceContext>,
    /// What the client asked to attach to the spans of its request (exported with its calls').
    pub trace_extras: Option<Arc<switchyard_layers::trace_context::TraceExtras>>,
    /// What the inference's model calls gather (attempts, provider wait, tokens, first chunk);
    /// the handler shares it with the request log.
    pub stats: Arc<switchyard_layers::ext::InferenceStats>,
    /// The request's own schemas, compiled by the gateway before any variant runs.
    pub schemas: RequestSchemas,
    /// What the client asked to see of the providers' own answers.
    pub raw_wanted: crate::model_call::RawWanted,
    /// `dryrun`: run the inference but store nothing.
    pub dryrun: bool,
    /// Gathers the model calls for the observability store (set by the engine when it stores
    /// this inference).
    pub recorder: Option<Arc<crate::observability::Recorder>>,
}

/// The JSON Schemas a request brings: its tools' parameters and, for a json function, its
/// output schema. They are compiled once per request (not once per variant tried), on the
/// blocking pool: a large schema costs real CPU, which must not stall the async workers that
/// serve every other connection.
#[derive(Clone, Debug, Default)]
pub struct RequestSchemas {
    /// One per `tools.additional_tools`, in order.
    pub tools: Vec<schema::JsonSchema>,
    /// `output_schema`, compiled.
    pub output: Option<schema::JsonSchema>,
}

impl RequestSchemas {
    /// Compiles the schemas of `request` (`output_schema` only when `json` says it is used).
    pub(super) fn compile(request: &InferenceRequest, json: bool) -> Result<Self, Error> {
        let tools = request
            .tools
            .additional_tools
            .iter()
            .map(|tool| {
                schema::JsonSchema::compile(tool.parameters.clone()).map_err(|e| {
                    Error::InvalidRequest(format!("the parameters of tool `{}` are {e}", tool.name))
                })
            })
            .collect::<Result<_, _>>()?;
        let output = match (&request.output_schema, json) {
            (Some(document), true) => Some(
                schema::JsonSchema::compile(document.clone())
                    .map_err(|e| Error::InvalidRequest(format!("`output_schema` is {e}")))?,
            ),
            _ => None,
        };
        Ok(Self { tools, output })
    }
}

/// Who answered, for the response and the log.
#[derive(Clone, Debug)]
pub struct InferenceMeta {
    /// This inference.
    pub inference_id: Uuid,
    /// Its episode.
    pub episode_id: Uuid,
    /// The function (`tensorzero::default` for `model_name`).
    pub function_name: Arc<str>,
    /// The variant used (the model name for the default function).
    pub variant_name: Arc<str>,
    /// The model called.
    pub model_name: Arc<str>,
    /// The provider that answered.
    pub provider_name: Arc<str>,
    /// A json function: the answer is `output {raw, parsed}`.
    pub is_json: bool,
    /// How the answer is checked (tool arguments, json output).
    pub output_check: OutputCheck,
    /// What the client asked to see of the providers' own answers.
    pub raw_wanted: crate::model_call::RawWanted,
}

/// What an inference produced.
pub enum InferenceOutcome {
    /// A complete answer.
    Complete {
        /// Who answered.
        meta: InferenceMeta,
        /// The answer.
        response: ModelResponse,
    },
    /// A stream whose first chunk has arrived.
    Stream {
        /// Who answered.
        meta: InferenceMeta,
        /// The first chunk.
        first: ModelChunk,
        /// The rest.
        rest: ChunkStream,
    },
}
