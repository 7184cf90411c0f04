//! The rows the store writes, and the JSON shapes of their JSONB columns, exactly as
//! TensorZero 2026.4 reads them (the reference's §4–§6). The shapes of what only the inference
//! side knows (its input, its checked output, a function's tools) are built there, in
//! `inference::stored`, from the blocks here. Its readers refuse unknown keys in
//! several of these values (`deny_unknown_fields`), so every builder here writes the
//! documented keys and nothing else.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::files::Files;
use crate::config::JsonMode;
use crate::model_call::{
    ContentBlock, FinishReason, InferenceParams, Message, OutputBlock, Role, Thought, ToolChoice,
    ToolDef,
};

/// One inference's row pair (`chat_inferences` + `chat_inference_data`, or the json tables).
#[derive(Clone, Debug)]
pub struct InferenceRow {
    /// The inference id (UUIDv7; `created_at` derives from it).
    pub id: Uuid,
    /// The function (`tensorzero::default` for `model_name` calls).
    pub function_name: String,
    /// The variant (the model name for the default function).
    pub variant_name: String,
    /// The episode.
    pub episode_id: Uuid,
    /// Request start to result (to the stream's end when streamed).
    pub processing_time_ms: Option<i32>,
    /// Request start to the first chunk (streams only).
    pub ttft_ms: Option<i32>,
    /// Request tags plus the gateway's `tensorzero::*` tags.
    pub tags: Value,
    /// The config hash (big-endian, leading zero bytes stripped).
    pub snapshot_hash: Option<Vec<u8>>,
    /// StoredInput.
    pub input: Value,
    /// Chat: ContentBlockChatOutput array; json: `{raw, parsed}`.
    pub output: Value,
    /// InferenceParams.
    pub inference_params: Value,
    /// Request-level `extra_body` entries.
    pub extra_body: Value,
    /// What only one of the two kinds has.
    pub kind: InferenceKind,
}

/// The columns that differ between chat and json inferences.
#[derive(Clone, Debug)]
pub enum InferenceKind {
    /// `chat_inference_data`'s tool columns.
    Chat {
        /// Tools supplied with the request.
        dynamic_tools: Value,
        /// Provider tools supplied with the request.
        dynamic_provider_tools: Value,
        /// `{"tools": [...], "choice": ...}`, or NULL without any tool config.
        allowed_tools: Option<Value>,
        /// ToolChoice, or NULL without any tool config.
        tool_choice: Option<Value>,
        /// The request's, else the function's.
        parallel_tool_calls: Option<bool>,
    },
    /// `json_inference_data`'s own columns.
    Json {
        /// The effective output schema.
        output_schema: Value,
        /// Output blocks that were not the JSON answer (thoughts).
        auxiliary_content: Value,
    },
}

impl InferenceRow {
    /// Whether this is a json function's inference.
    pub fn is_json(&self) -> bool {
        matches!(self.kind, InferenceKind::Json { .. })
    }
}

/// One model call's row pair (`model_inferences` + `model_inference_data`).
#[derive(Clone, Debug)]
pub struct ModelRow {
    /// A fresh UUIDv7, made when the row is built (after the call).
    pub id: Uuid,
    /// The inference it served.
    pub inference_id: Uuid,
    /// Input tokens (NULL when unknown or 0).
    pub input_tokens: Option<i32>,
    /// Output tokens (NULL when unknown or 0).
    pub output_tokens: Option<i32>,
    /// The call's latency (to the last chunk when streamed).
    pub response_time_ms: Option<i32>,
    /// The model, as named in the config or by shorthand.
    pub model_name: String,
    /// The provider within the model (`tensorzero::relay` for relayed calls).
    pub model_provider_name: String,
    /// The provider's first chunk (streams only).
    pub ttft_ms: Option<i32>,
    /// Why it stopped.
    pub finish_reason: Option<&'static str>,
    /// The config hash.
    pub snapshot_hash: Option<Vec<u8>>,
    /// Dollars, as decimal text (NUMERIC(18,9)); NULL without prices.
    pub cost: Option<String>,
    /// The body sent to the provider.
    pub raw_request: String,
    /// The provider's answer (stream events joined by newlines).
    pub raw_response: String,
    /// The rendered system prompt.
    pub system: Option<String>,
    /// The rendered messages (StoredRequestMessage array).
    pub input_messages: Value,
    /// ContentBlockOutput array.
    pub output: Value,
}

/// A feedback row, by table.
#[derive(Clone, Debug)]
pub enum FeedbackRow {
    /// `boolean_metric_feedback`.
    Boolean {
        /// The feedback id.
        id: Uuid,
        /// The inference or episode.
        target_id: Uuid,
        /// The metric.
        metric_name: String,
        /// The value.
        value: bool,
        /// Tags.
        tags: Value,
        /// The config hash.
        snapshot_hash: Option<Vec<u8>>,
    },
    /// `float_metric_feedback`.
    Float {
        /// The feedback id.
        id: Uuid,
        /// The inference or episode.
        target_id: Uuid,
        /// The metric.
        metric_name: String,
        /// The value.
        value: f64,
        /// Tags.
        tags: Value,
        /// The config hash.
        snapshot_hash: Option<Vec<u8>>,
    },
    /// `comment_feedback`.
    Comment {
        /// The feedback id.
        id: Uuid,
        /// The inference or episode.
        target_id: Uuid,
        /// `inference` or `episode`.
        target_type: &'static str,
        /// The comment.
        value: String,
        /// Tags.
        tags: Value,
        /// The config hash.
        snapshot_hash: Option<Vec<u8>>,
    },
    /// `demonstration_feedback`.
    Demonstration {
        /// The feedback id.
        id: Uuid,
        /// The inference.
        inference_id: Uuid,
        /// Chat: ContentBlockChatOutput array; json: `{raw, parsed}`.
        value: Value,
        /// Tags.
        tags: Value,
        /// The config hash.
        snapshot_hash: Option<Vec<u8>>,
    },
}

impl FeedbackRow {
    /// The table it goes to.
    pub fn table(&self) -> &'static str {
        match self {
            FeedbackRow::Boolean { .. } => "boolean_metric_feedback",
            FeedbackRow::Float { .. } => "float_metric_feedback",
            FeedbackRow::Comment { .. } => "comment_feedback",
            FeedbackRow::Demonstration { .. } => "demonstration_feedback",
        }
    }
}

/// The config hash as TensorZero stores it: the hash's bytes as an unsigned big-endian
/// integer, so without leading zero bytes. `hex` is the hash as `/status` reports it.
pub fn snapshot_hash(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    let bytes = bytes?;
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    Some(bytes[first..].to_vec())
}

/// A count as the INTEGER columns take it; 0 and unknown are both NULL for tokens.
pub fn tokens(n: Option<u32>) -> Option<i32> {
    n.filter(|n| *n > 0)
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// Milliseconds as an INTEGER column.
pub fn millis(d: std::time::Duration) -> Option<i32> {
    Some(i32::try_from(d.as_millis()).unwrap_or(i32::MAX))
}

/// `finish_reason` as stored.
pub fn finish_reason(reason: Option<FinishReason>) -> Option<&'static str> {
    reason.map(|r| match r {
        FinishReason::Stop => "stop",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "length",
        FinishReason::ToolCall => "tool_call",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Unknown => "unknown",
    })
}

pub(crate) fn role(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// A rendered or passed-through content block (StoredContentBlock).
pub(crate) fn content_block(block: &ContentBlock, files: &Files) -> Value {
    match block {
        ContentBlock::Text(text) => json!({"type": "text", "text": text}),
        ContentBlock::ToolCall(call) => json!({
            "type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments
        }),
        ContentBlock::ToolResult(result) => json!({
            "type": "tool_result", "name": result.name, "result": result.result, "id": result.id
        }),
        ContentBlock::File(file) => files.pointer(file),
        ContentBlock::Thought(thought) => thought_block(thought),
        ContentBlock::Unknown { data } => json!({"type": "unknown", "data": data}),
    }
}

pub(crate) fn thought_block(thought: &Thought) -> Value {
    let mut block = json!({"type": "thought", "text": thought.text});
    if let Some(signature) = &thought.signature {
        block["signature"] = Value::String(signature.clone());
    }
    block
}

/// StoredRequestMessage array: the rendered messages a model call sent.
pub fn input_messages(messages: &[Message], files: &Files) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| {
                json!({
                    "role": role(m.role),
                    "content": m.content.iter().map(|b| content_block(b, files)).collect::<Vec<_>>()
                })
            })
            .collect(),
    )
}

/// ContentBlockOutput array: a model call's answer as the model wrote it.
pub fn model_output(content: &[OutputBlock]) -> Value {
    Value::Array(
        content
            .iter()
            .map(|block| match block {
                OutputBlock::Text(text) => json!({"type": "text", "text": text}),
                OutputBlock::ToolCall(call) => json!({
                    "type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments
                }),
                OutputBlock::Thought(thought) => thought_block(thought),
            })
            .collect(),
    )
}

/// InferenceParams: `{"chat_completion": {...}}` with the set keys only.
pub fn inference_params(params: &InferenceParams) -> Value {
    let mut cc = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            cc.insert(key.into(), v);
        }
    };
    put("temperature", params.temperature.map(Value::from));
    put("max_tokens", params.max_tokens.map(Value::from));
    put("seed", params.seed.map(Value::from));
    put("top_p", params.top_p.map(Value::from));
    put("presence_penalty", params.presence_penalty.map(Value::from));
    put(
        "frequency_penalty",
        params.frequency_penalty.map(Value::from),
    );
    put(
        "json_mode",
        params.json_mode.map(|m| {
            Value::from(match m {
                JsonMode::Off => "off",
                JsonMode::On => "on",
                JsonMode::Strict => "strict",
                JsonMode::ImplicitTool => "tool",
            })
        }),
    );
    put(
        "stop_sequences",
        params.stop_sequences.clone().map(Value::from),
    );
    put(
        "reasoning_effort",
        params.reasoning_effort.clone().map(Value::from),
    );
    put("service_tier", params.service_tier.clone().map(Value::from));
    put(
        "thinking_budget_tokens",
        params.thinking_budget_tokens.map(Value::from),
    );
    put("verbosity", params.verbosity.clone().map(Value::from));
    json!({ "chat_completion": cc })
}

/// A Tool object (`type: function`).
pub fn tool(def: &ToolDef) -> Value {
    json!({
        "type": "function",
        "name": def.name,
        "description": def.description,
        "parameters": def.parameters,
        "strict": def.strict,
    })
}

/// ToolChoice as stored.
pub fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::None => json!("none"),
        ToolChoice::Auto => json!("auto"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Specific(name) => json!({ "specific": name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_hashes_lose_their_leading_zero_bytes() {
        assert_eq!(snapshot_hash("00ff10"), Some(vec![0xff, 0x10]));
        assert_eq!(snapshot_hash("abcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(snapshot_hash("xyz"), None);
        assert_eq!(snapshot_hash(""), None);
    }

    #[test]
    fn zero_tokens_are_null() {
        assert_eq!(tokens(Some(0)), None);
        assert_eq!(tokens(Some(12)), Some(12));
        assert_eq!(tokens(Some(u32::MAX)), Some(i32::MAX));
    }

    #[test]
    fn params_carry_only_the_keys_tensorzero_reads() {
        let params = InferenceParams {
            temperature: Some(0.5),
            json_mode: Some(JsonMode::ImplicitTool),
            top_k: Some(3),
            ..Default::default()
        };
        assert_eq!(
            inference_params(&params),
            json!({"chat_completion": {"temperature": 0.5, "json_mode": "tool"}})
        );
    }
}
