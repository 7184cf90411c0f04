//! The native `/inference` answer on the wire: what the handler writes and what the relay
//! client reads back from a relay (switchyard's or the TensorZero Gateway's), one set of types
//! both ways. Reading is lenient where a relay may add or omit things (unknown fields and block
//! types are ignored, counts that are not counts are dropped); writing is what clients get.
//!
//! The request side (the body the edge sends a relay) is still written by hand in
//! `providers::relay::relay_body`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::model_call::{
    ChunkBlock, FinishReason, ModelChunk, ModelResponse, OutputBlock, Thought, ToolCall, Usage,
};
use crate::providers::bounds::token_count;

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
    /// Why the model stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
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

/// Token counts (`cost` is not computed yet: always null).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Input tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub input_tokens: Option<u32>,
    /// Output tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    pub output_tokens: Option<u32>,
    /// The cost, when known.
    #[serde(default)]
    pub cost: Option<f64>,
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
            cost: None,
        }
    }
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
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
        }
    }
}
