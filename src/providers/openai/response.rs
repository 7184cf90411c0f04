//! A chat completion in the OpenAI format, read.

use super::*;

#[derive(Deserialize)]
pub(super) struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
pub(super) struct Choice {
    message: WireMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireToolCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
pub(super) struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize, Clone, Copy)]
pub(super) struct WireUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cost: None,
        }
    }
}

pub(super) fn finish_reason(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCall,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Unknown,
    }
}

pub fn parse_completion(bytes: &[u8]) -> Result<ModelResponse, String> {
    let completion: Completion = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the answer is not an OpenAI chat completion ({e}); it began with: {}",
            snippet(bytes)
        )
    })?;
    let choice = completion.choices.into_iter().next().ok_or_else(|| {
        format!(
            "the answer has no `choices`; it began with: {}",
            snippet(bytes)
        )
    })?;
    let mut content = Vec::new();
    if let Some(reasoning) = choice.message.reasoning_content.filter(|r| !r.is_empty()) {
        content.push(OutputBlock::Thought(crate::model_call::Thought {
            text: Some(reasoning),
            signature: None,
        }));
    }
    if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
        content.push(OutputBlock::Text(text));
    }
    for call in choice.message.tool_calls {
        content.push(OutputBlock::ToolCall(ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        }));
    }
    Ok(ModelResponse {
        content,
        usage: completion.usage.map(Usage::from).unwrap_or_default(),
        finish_reason: choice.finish_reason.as_deref().map(finish_reason),
        raw: None,
    })
}

pub(super) fn response_as_chunk(r: ModelResponse) -> ModelChunk {
    ModelChunk {
        content: r
            .content
            .into_iter()
            .map(|b| match b {
                OutputBlock::Text(text) => ChunkBlock::Text {
                    id: "0".into(),
                    text,
                },
                OutputBlock::ToolCall(c) => ChunkBlock::ToolCall {
                    id: c.id,
                    raw_name: c.name,
                    raw_arguments: c.arguments,
                },
                OutputBlock::Thought(t) => ChunkBlock::Thought {
                    id: "0".into(),
                    text: t.text,
                    signature: t.signature,
                },
            })
            .collect(),
        usage: Some(r.usage),
        finish_reason: r.finish_reason,
        raw: r.raw,
    }
}
