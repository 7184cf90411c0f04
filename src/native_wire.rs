//! The native `/inference` wire format, one set of types both ways:
//!
//! - the request ([`InferenceRequestBody`]): what the handler parses (`deny_unknown_fields`, as
//!   in the TensorZero Gateway) and what the edge sends a relay;
//! - the answer ([`InferenceResponse`], [`InferenceChunk`]): what the handler writes and what
//!   the relay client reads back from a relay (switchyard's or the TensorZero Gateway's).
//!
//! Reading answers is lenient where a relay may add or omit things (unknown fields and block
//! types are ignored, counts that are not counts are dropped). Writing a request leaves out what
//! is unset, as the TensorZero Gateway's own edge does.

use std::collections::BTreeMap;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::cost::Dollars;
use crate::model_call::{
    ChunkBlock, FinishReason, InferenceParams, ModelChunk, ModelResponse, OutputBlock, Raw,
    RawResponse, RawUsage, Role, Thought, ToolCall, ToolChoice, ToolDef, Usage,
};
use crate::providers::bounds::token_count;
use switchyard_layers::Secret;

/// An `/inference` request body.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceRequestBody {
    /// The function to run (sent as null by an edge: it calls models by name).
    pub function_name: Option<String>,
    /// The model to call.
    pub model_name: Option<String>,
    /// The episode.
    pub episode_id: Option<Uuid>,
    /// Accepted, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The system prompt and the conversation.
    pub input: InputBody,
    /// Stream the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Inference-time parameters.
    #[serde(default)]
    pub params: ParamsBody,
    /// A pinned variant.
    pub variant_name: Option<String>,
    /// Accepted, unused (nothing is stored).
    pub dryrun: Option<bool>,
    /// Accepted, unused.
    #[serde(default)]
    pub internal: bool,
    /// User tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Restricts the function's tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    /// Tools defined in the request (written with `"type": "function"`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "function_tools"
    )]
    pub additional_tools: Vec<ToolDef>,
    /// Overrides the tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Overrides parallel tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Not supported (refused when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_tools: Option<Value>,
    /// An output schema for json functions.
    pub output_schema: Option<Value>,
    /// Accepted, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_options: Option<Value>,
    /// Dynamic credentials: read straight into [`Secret`]s, and written out only here, to the
    /// relay the request is for.
    #[serde(
        default,
        deserialize_with = "crate::request_credentials::deserialize_map",
        serialize_with = "expose_secrets"
    )]
    pub credentials: BTreeMap<String, Secret>,
    /// Adds `raw_response` to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_raw_response: Option<bool>,
    /// Adds `raw_usage` to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_raw_usage: Option<bool>,
    /// Checked (streaming only), unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_aggregated_response: Option<bool>,
    /// Accepted, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_original_response: Option<bool>,
    /// Request-time `extra_body` entries.
    #[serde(default)]
    pub extra_body: Vec<Value>,
    /// Request-time `extra_headers` entries.
    #[serde(default)]
    pub extra_headers: Vec<Value>,
    /// Not supported (refused when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_dynamic_variant_config: Option<Value>,
}

/// `params`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsBody {
    /// `params.chat_completion` (unset fields left out when written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_completion: Option<InferenceParams>,
}

/// `input`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    /// A system prompt: text, or template arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Value>,
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<MessageBody>,
}

/// One message of `input.messages`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// Who said it.
    pub role: Role,
    /// A string, or a list of [`InputContentBlock`]s (checked one by one by the handler, so
    /// each error names its block).
    pub content: Value,
}

/// One input content block, by `type`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputContentBlock {
    /// Text, or template arguments.
    Text {
        /// The text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Template arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arguments: Option<Value>,
    },
    /// A named template with its arguments.
    Template {
        /// The template's name.
        name: String,
        /// Its arguments.
        arguments: Value,
    },
    /// Text that skips templates.
    RawText {
        /// The text.
        value: String,
    },
    /// A tool call: as written for input, or echoed back from an answer (with `raw_name` and
    /// `raw_arguments`, where `name` and `arguments` may be null).
    ToolCall {
        /// The call id.
        id: String,
        /// The tool's name.
        #[serde(default)]
        name: Option<String>,
        /// Its arguments (a JSON string or value).
        #[serde(default)]
        arguments: Option<Value>,
        /// The name as the model wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw_name: Option<String>,
        /// The arguments as the model wrote them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw_arguments: Option<String>,
    },
    /// A tool's result.
    ToolResult {
        /// The call it answers.
        id: String,
        /// The tool's name.
        name: String,
        /// What it returned.
        result: String,
    },
    /// A file: by URL, or inline base64.
    File {
        /// `url` or `base64`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_type: Option<String>,
        /// The URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The media type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// The base64 data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        /// Accepted, unused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Accepted, unused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    /// Reasoning sent back.
    Thought {
        /// Its text.
        #[serde(default)]
        text: Option<String>,
        /// Its signature.
        #[serde(default)]
        signature: Option<String>,
        /// Accepted, unused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<Value>,
    },
    /// A provider-specific block passed through.
    Unknown {
        /// The block.
        data: Value,
        /// Accepted, unused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_name: Option<String>,
        /// Accepted, unused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_name: Option<String>,
    },
}

/// Writes tools as the native format spells them: `{"type": "function", ...}`.
fn function_tools<S: Serializer>(tools: &[ToolDef], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct FunctionTool<'a> {
        r#type: &'static str,
        #[serde(flatten)]
        tool: &'a ToolDef,
    }
    let mut seq = s.serialize_seq(Some(tools.len()))?;
    for tool in tools {
        seq.serialize_element(&FunctionTool {
            r#type: "function",
            tool,
        })?;
    }
    seq.end()
}

/// Writes the request's credentials for the relay it goes to (the one place they are exposed).
fn expose_secrets<S: Serializer>(
    credentials: &BTreeMap<String, Secret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(credentials.iter().map(|(k, v)| (k, v.expose())))
}

/// A finished inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// This inference (the nil id when a relay left it out: the edge does not use it).
    #[serde(default)]
    pub inference_id: Uuid,
    /// Its episode.
    #[serde(default)]
    pub episode_id: Uuid,
    /// The variant that answered.
    #[serde(default)]
    pub variant_name: String,
    /// A chat function's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentBlock>>,
    /// A json function's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JsonOutput>,
    /// Tokens used.
    #[serde(default)]
    pub usage: WireUsage,
    /// Each model call's usage as its provider wrote it (`include_raw_usage`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub raw_usage: Option<Vec<RawUsage>>,
    /// Each model call's answer as its provider sent it (`include_raw_response`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub raw_response: Option<Vec<RawResponse>>,
    /// Why the model stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

/// A relay's optional extra that does not have the expected shape is dropped, rather than
/// failing an answer that is otherwise fine.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()))
}

/// The raw records of an answer or chunk, as a relay sent them.
fn raw_of(
    usage: Option<Vec<RawUsage>>,
    responses: Option<Vec<RawResponse>>,
    chunk: Option<String>,
) -> Option<Box<Raw>> {
    (usage.is_some() || responses.is_some() || chunk.is_some()).then(|| {
        Box::new(Raw {
            usage: usage.unwrap_or_default(),
            responses: responses.unwrap_or_default(),
            chunk,
        })
    })
}

/// One block of a chat answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A tool call: `name` and `arguments` as checked against the tool (null when they do not
    /// fit), `raw_name` and `raw_arguments` as the model wrote them.
    ToolCall {
        /// The call id.
        #[serde(default)]
        id: String,
        /// The tool's name, when it names an offered tool.
        #[serde(default)]
        name: Option<String>,
        /// The parsed arguments, when they are valid.
        #[serde(default)]
        arguments: Option<Value>,
        /// The name as the model wrote it.
        #[serde(default)]
        raw_name: Option<String>,
        /// The arguments as the model wrote them.
        #[serde(default)]
        raw_arguments: Option<String>,
    },
    /// Reasoning.
    Thought {
        /// Its text.
        #[serde(default)]
        text: Option<String>,
        /// Its signature.
        #[serde(default)]
        signature: Option<String>,
    },
    /// A block type this gateway does not know (ignored when read).
    #[serde(other)]
    Unknown,
}

/// A json function's answer: the text, and its parse when it fits the schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonOutput {
    /// The text as the model wrote it.
    #[serde(default)]
    pub raw: String,
    /// The parsed value (null when it is not valid).
    #[serde(default)]
    pub parsed: Option<Value>,
}

/// Token counts, and the cost (always written: `null` when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Input tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub input_tokens: Option<u32>,
    /// Output tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub output_tokens: Option<u32>,
    /// The cost in dollars, when known. A relay's figure that is not a finite number is
    /// dropped (unknown) rather than failing the answer.
    #[serde(default, deserialize_with = "lenient_cost")]
    pub cost: Option<Dollars>,
}

fn lenient_cost<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dollars>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .and_then(|v| v.as_f64())
        .and_then(Dollars::from_f64))
}

/// A count as a relay sent it: a number that is not a non-negative integer is dropped, and a
/// huge one is capped, rather than failing the whole answer.
fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .and_then(|v| v.as_u64())
        .map(token_count))
}

impl From<Usage> for WireUsage {
    fn from(u: Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost: u.cost,
        }
    }
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost: u.cost,
        }
    }
}

impl InferenceResponse {
    /// The answer as a model response (a relayed call's result).
    pub fn into_model_response(self) -> Result<ModelResponse, &'static str> {
        let content = match (self.output, self.content) {
            (Some(output), _) => vec![OutputBlock::Text(output.raw)],
            (None, Some(blocks)) => blocks
                .into_iter()
                .filter_map(ContentBlock::into_output)
                .collect(),
            (None, None) => return Err("the relay's answer has no `content`"),
        };
        Ok(ModelResponse {
            content,
            usage: self.usage.into(),
            finish_reason: self.finish_reason,
            raw: raw_of(self.raw_usage, self.raw_response, None),
        })
    }
}

impl ContentBlock {
    /// The block as model output (`None` for unknown types).
    fn into_output(self) -> Option<OutputBlock> {
        Some(match self {
            ContentBlock::Text { text } => OutputBlock::Text(text),
            ContentBlock::ToolCall {
                id,
                name,
                arguments,
                raw_name,
                raw_arguments,
            } => OutputBlock::ToolCall(ToolCall {
                id,
                name: raw_name.or(name).unwrap_or_default(),
                arguments: raw_arguments
                    .unwrap_or_else(|| arguments.unwrap_or(Value::Null).to_string()),
            }),
            ContentBlock::Thought { text, signature } => {
                OutputBlock::Thought(Thought { text, signature })
            }
            ContentBlock::Unknown => return None,
        })
    }
}

/// One event of a streamed inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceChunk {
    /// This inference (the nil id when a relay left it out: the edge does not use it).
    #[serde(default)]
    pub inference_id: Uuid,
    /// Its episode.
    #[serde(default)]
    pub episode_id: Uuid,
    /// The variant that answers.
    #[serde(default)]
    pub variant_name: String,
    /// New chat content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ChunkContent>>,
    /// New json text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Tokens used (in the last event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
    /// Each model call's usage as its provider wrote it (in the last event).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub raw_usage: Option<Vec<RawUsage>>,
    /// The answers of the model calls made before the stream started (in the first event).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub raw_response: Option<Vec<RawResponse>>,
    /// The provider's own chunk(s) behind this event.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub raw_chunk: Option<String>,
    /// Why the model stopped (in the last event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

fn first_block() -> String {
    "0".into()
}

/// A delta of one block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChunkContent {
    /// More text.
    Text {
        /// Which text block.
        #[serde(default = "first_block")]
        id: String,
        /// The new text.
        #[serde(default)]
        text: String,
    },
    /// Part of a tool call.
    ToolCall {
        /// The call id.
        #[serde(default = "first_block")]
        id: String,
        /// The name (empty after the first delta).
        #[serde(default)]
        raw_name: String,
        /// More argument text.
        #[serde(default)]
        raw_arguments: String,
    },
    /// More reasoning.
    Thought {
        /// Which thought block.
        #[serde(default = "first_block")]
        id: String,
        /// The new text.
        #[serde(default)]
        text: Option<String>,
        /// Its signature.
        #[serde(default)]
        signature: Option<String>,
    },
    /// A block type this gateway does not know (ignored when read).
    #[serde(other)]
    Unknown,
}

impl From<&ChunkBlock> for ChunkContent {
    fn from(b: &ChunkBlock) -> Self {
        match b {
            ChunkBlock::Text { id, text } => ChunkContent::Text {
                id: id.clone(),
                text: text.clone(),
            },
            ChunkBlock::ToolCall {
                id,
                raw_name,
                raw_arguments,
            } => ChunkContent::ToolCall {
                id: id.clone(),
                raw_name: raw_name.clone(),
                raw_arguments: raw_arguments.clone(),
            },
            ChunkBlock::Thought {
                id,
                text,
                signature,
            } => ChunkContent::Thought {
                id: id.clone(),
                text: text.clone(),
                signature: signature.clone(),
            },
        }
    }
}

impl InferenceChunk {
    /// The event as a model chunk (a relayed stream's piece).
    pub fn into_model_chunk(self) -> ModelChunk {
        let mut content: Vec<ChunkBlock> = Vec::new();
        if let Some(raw) = self.raw.filter(|r| !r.is_empty()) {
            content.push(ChunkBlock::Text {
                id: first_block(),
                text: raw,
            });
        }
        for block in self.content.into_iter().flatten() {
            content.push(match block {
                ChunkContent::Text { id, text } => ChunkBlock::Text { id, text },
                ChunkContent::ToolCall {
                    id,
                    raw_name,
                    raw_arguments,
                } => ChunkBlock::ToolCall {
                    id,
                    raw_name,
                    raw_arguments,
                },
                ChunkContent::Thought {
                    id,
                    text,
                    signature,
                } => ChunkBlock::Thought {
                    id,
                    text,
                    signature,
                },
                ChunkContent::Unknown => continue,
            });
        }
        ModelChunk {
            content,
            usage: self.usage.map(Usage::from),
            finish_reason: self.finish_reason,
            raw: raw_of(self.raw_usage, self.raw_response, self.raw_chunk),
        }
    }
}
