//! A chat completion stream in the OpenAI format, read chunk by chunk.

use super::response::{Quirks, ThinkTags, WireReasoning, WireUsage, finish_reason};
use super::*;
use crate::providers::stream_status::StreamStatus;

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    #[serde(flatten)]
    reasoning: WireReasoning,
    #[serde(default)]
    tool_calls: Vec<DeltaToolCall>,
}

#[derive(Deserialize)]
struct DeltaToolCall {
    index: Option<u64>,
    id: Option<String>,
    function: Option<DeltaFunction>,
}

#[derive(Deserialize)]
struct DeltaFunction {
    name: Option<String>,
    arguments: Option<String>,
}

pub(super) struct StreamState {
    reader: SseReader,
    /// Tool call ids by stream index: only the first delta of a call carries its id.
    tool_ids: crate::providers::bounds::BlockSlots<String>,
    status: StreamStatus,
    saw_finish_reason: bool,
    quirks: Quirks,
    /// `<think>` tags in the content, when the provider reasons that way.
    think_tags: ThinkTags,
}

impl StreamState {
    /// Reads `provider`'s stream from `reader`, with `quirks`.
    pub(super) fn new(reader: SseReader, provider: &ProviderSpec, quirks: Quirks) -> Self {
        Self {
            reader,
            tool_ids: Default::default(),
            status: StreamStatus::of(provider),
            saw_finish_reason: false,
            quirks,
            think_tags: ThinkTags::default(),
        }
    }
}

impl ChunkSource for StreamState {
    async fn next_chunk(&mut self) -> Option<Result<ModelChunk, Error>> {
        loop {
            if self.status.is_finished() {
                return None;
            }
            match self.reader.next().await {
                Err(message) => return self.status.fail(message),
                Ok(Some(event)) if event.data.trim() == "[DONE]" => {
                    self.status.finish();
                    return None;
                }
                Ok(Some(event)) => match self.parse(&event.data) {
                    Ok(Some(chunk)) => return Some(Ok(chunk)),
                    Ok(None) => continue,
                    Err(message) => return self.status.fail(message),
                },
                // Some compatible servers end without `[DONE]` after the last chunk.
                Ok(None) if self.saw_finish_reason && !self.reader.ended_mid_event() => {
                    self.status.finish();
                    return None;
                }
                Ok(None) => {
                    return self
                        .status
                        .fail("the stream ended before the provider finished its answer");
                }
            }
        }
    }
}

impl StreamState {
    fn parse(&mut self, data: &str) -> Result<Option<ModelChunk>, String> {
        let value: Value = serde_json::from_str(data).map_err(|e| {
            format!(
                "a stream event is not JSON ({e}): {}",
                snippet(data.as_bytes())
            )
        })?;
        // An error inside a 200 stream: `{"error": {...}}` (OpenAI, SGLang, Groq, OpenRouter,
        // whose error chunks have empty `choices`), or vLLM's `{"object": "error", ...}`.
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(format!(
                "the provider reported an error mid-stream: {}",
                error_text(error)
            ));
        }
        if value["object"] == "error" {
            return Err(format!(
                "the provider reported an error mid-stream: {}",
                error_text(&value)
            ));
        }
        let chunk: StreamChunk = serde_json::from_value(value).map_err(|e| {
            format!(
                "a stream event is not a chat.completion.chunk ({e}): {}",
                snippet(data.as_bytes())
            )
        })?;
        let mut out = ModelChunk {
            usage: chunk
                .usage
                .map(|u| u.usage(self.quirks.reasoning_outside_completion)),
            ..ModelChunk::default()
        };
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(reason) = &choice.finish_reason {
                self.saw_finish_reason = true;
                out.finish_reason = Some(finish_reason(reason));
            }
            let delta = choice.delta;
            let reasoning = delta.reasoning.text();
            if !reasoning.is_empty() {
                out.content.push(ChunkBlock::Thought {
                    id: "0".into(),
                    text: Some(reasoning),
                    signature: None,
                });
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                let (thought, text) = if self.quirks.think_tags {
                    self.think_tags.push(&text)
                } else {
                    (String::new(), text)
                };
                if !thought.is_empty() {
                    out.content.push(ChunkBlock::Thought {
                        id: "0".into(),
                        text: Some(thought),
                        signature: None,
                    });
                }
                if !text.is_empty() {
                    out.content.push(ChunkBlock::Text {
                        id: "0".into(),
                        text,
                    });
                }
            }
            for call in delta.tool_calls {
                let index = call
                    .index
                    .unwrap_or(self.tool_ids.len().saturating_sub(1) as u64);
                if let Some(id) = call.id {
                    self.tool_ids.set(index, id)?;
                }
                let id = self.tool_ids.get(index).cloned().unwrap_or_default();
                let (name, arguments) = call
                    .function
                    .map(|f| (f.name.unwrap_or_default(), f.arguments.unwrap_or_default()))
                    .unwrap_or_default();
                out.content.push(ChunkBlock::ToolCall {
                    id,
                    raw_name: name,
                    raw_arguments: arguments,
                });
            }
        }
        // Chunks that carry nothing (Azure's first, with only content-filter results; a
        // role-only delta) are not passed on.
        if out.content.is_empty() && out.usage.is_none() && out.finish_reason.is_none() {
            return Ok(None);
        }
        Ok(Some(out))
    }
}
