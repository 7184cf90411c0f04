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
    #[serde(flatten)]
    reasoning: WireReasoning,
}

/// Where OpenAI-compatible servers put reasoning: DeepSeek's `reasoning_content`, vLLM's,
/// Groq's and SGLang's `reasoning`, OpenRouter's `reasoning_details` (a list of typed parts).
#[derive(Deserialize, Default)]
pub(super) struct WireReasoning {
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    #[serde(default)]
    reasoning_details: Vec<Value>,
}

impl WireReasoning {
    /// The reasoning text, whichever field carried it (empty: none).
    pub(super) fn text(self) -> String {
        if let Some(t) = self.reasoning_content.filter(|t| !t.is_empty()) {
            return t;
        }
        if let Some(t) = self.reasoning.filter(|t| !t.is_empty()) {
            return t;
        }
        self.reasoning_details
            .iter()
            .filter_map(|d| d["text"].as_str().or_else(|| d["summary"].as_str()))
            .collect()
    }
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
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Clone, Copy)]
pub(super) struct CompletionDetails {
    reasoning_tokens: Option<u32>,
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

impl WireUsage {
    /// The usage, with reasoning tokens added to the output when the provider leaves them out
    /// of `completion_tokens` (xAI does), so limits and cost count them.
    pub(super) fn usage(self, reasoning_outside_completion: bool) -> Usage {
        let mut usage = Usage::from(self);
        if reasoning_outside_completion
            && let Some(reasoning) = self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
        {
            usage.output_tokens = Some(usage.output_tokens.unwrap_or(0).saturating_add(reasoning));
        }
        usage
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
    parse_completion_of(bytes, Quirks::default())
}

/// What a provider's answers need beyond the common format.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Quirks {
    /// Reasoning tokens are not in `completion_tokens` (xAI).
    pub reasoning_outside_completion: bool,
    /// Reasoning comes as `<think>...</think>` inside the content (Together, Fireworks).
    pub think_tags: bool,
}

/// A completion, read with `quirks`.
pub(crate) fn parse_completion_of(bytes: &[u8], quirks: Quirks) -> Result<ModelResponse, String> {
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
    let reasoning = choice.message.reasoning.text();
    if !reasoning.is_empty() {
        content.push(OutputBlock::Thought(crate::model_call::Thought {
            text: Some(reasoning),
            signature: None,
        }));
    }
    if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
        if quirks.think_tags {
            let (thought, rest) = split_think_tags(&text);
            if let Some(thought) = thought {
                content.push(OutputBlock::Thought(crate::model_call::Thought {
                    text: Some(thought),
                    signature: None,
                }));
            }
            if !rest.is_empty() {
                content.push(OutputBlock::Text(rest));
            }
        } else {
            content.push(OutputBlock::Text(text));
        }
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
        usage: completion
            .usage
            .map(|u| u.usage(quirks.reasoning_outside_completion))
            .unwrap_or_default(),
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

/// `<think>reasoning</think>answer` as the reasoning and the answer (text without tags is all
/// answer).
pub(super) fn split_think_tags(text: &str) -> (Option<String>, String) {
    let trimmed = text.trim_start();
    let Some(after_open) = trimmed.strip_prefix("<think>") else {
        return (None, text.to_owned());
    };
    match after_open.split_once("</think>") {
        Some((thought, rest)) => (
            Some(thought.trim().to_owned()),
            rest.trim_start().to_owned(),
        ),
        // Cut off while thinking: all of it is reasoning.
        None => (Some(after_open.trim().to_owned()), String::new()),
    }
}

/// Splits streamed content into reasoning and answer across chunks: `<think>` and `</think>`
/// may arrive split over deltas, so a possible partial tag at a delta's end waits for the next.
#[derive(Debug, Default)]
pub(super) struct ThinkTags {
    /// Text held back: it may be the start of a tag.
    pending: String,
    /// Inside `<think>`.
    thinking: bool,
    /// Whether any text went by (a `<think>` only counts at the start).
    started: bool,
}

impl ThinkTags {
    /// The reasoning and the answer text in `delta` (either may be empty).
    pub(super) fn push(&mut self, delta: &str) -> (String, String) {
        let mut text = std::mem::take(&mut self.pending);
        text.push_str(delta);
        let (mut thought, mut answer) = (String::new(), String::new());
        loop {
            if !self.started {
                let trimmed = text.trim_start();
                if trimmed.is_empty() {
                    return (thought, answer);
                }
                if let Some(rest) = trimmed.strip_prefix("<think>") {
                    self.thinking = true;
                    self.started = true;
                    text = rest.to_owned();
                    continue;
                }
                if "<think>".starts_with(trimmed) {
                    self.pending = text;
                    return (thought, answer);
                }
                self.started = true;
            }
            if !self.thinking {
                answer.push_str(&text);
                return (thought, answer);
            }
            match text.split_once("</think>") {
                Some((inside, rest)) => {
                    thought.push_str(inside);
                    self.thinking = false;
                    text = rest.trim_start().to_owned();
                }
                None => {
                    // Hold back a tail that may be the start of `</think>`.
                    let keep = (1..8)
                        .rev()
                        .find(|n| {
                            text.len() >= *n
                                && text.is_char_boundary(text.len() - n)
                                && "</think>".starts_with(&text[text.len() - n..])
                        })
                        .unwrap_or(0);
                    let cut = text.len() - keep;
                    thought.push_str(&text[..cut]);
                    self.pending = text[cut..].to_owned();
                    return (thought, answer);
                }
            }
        }
    }
}
