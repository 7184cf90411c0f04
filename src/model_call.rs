//! The typed model call: what inference builds after resolving a function and variant, what the
//! model stacks carry, and what providers translate to and from their wire formats. It sits
//! below all three, so none of them depends on another through it.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_layers::call::Payload;
use switchyard_layers::rate_limit::{
    EstimateTokens, ReportUsage, TokenEstimate, TokenReport, UsageReport,
};
use switchyard_layers::timeout::{LimitStream, StreamLimits};

use crate::config::JsonMode;
use crate::error::Error;

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The end user.
    User,
    /// The model.
    Assistant,
}

/// One message of a model call.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The speaker.
    pub role: Role,
    /// The blocks, in order.
    pub content: Vec<ContentBlock>,
}

/// A block of message content, after templates are rendered.
#[derive(Clone, Debug, PartialEq)]
pub enum ContentBlock {
    /// Plain text.
    Text(String),
    /// A tool call the model made earlier.
    ToolCall(ToolCall),
    /// The result of a tool call.
    ToolResult(ToolResult),
    /// An image or document.
    File(FileInput),
    /// Reasoning the model produced earlier.
    Thought(Thought),
    /// A provider-specific block passed through as is.
    Unknown {
        /// The raw block.
        data: Value,
    },
}

/// A tool call (in input or output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id.
    pub id: String,
    /// The tool name as the model wrote it.
    pub name: String,
    /// The arguments as the model wrote them (JSON text, possibly invalid).
    pub arguments: String,
}

/// The result of a tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call this answers.
    pub id: String,
    /// The tool name.
    pub name: String,
    /// The result text.
    pub result: String,
}

/// An input file.
#[derive(Clone, Debug, PartialEq)]
pub enum FileInput {
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
        /// The MIME type, when known.
        mime_type: Option<String>,
    },
    /// Inline base64 data.
    Base64 {
        /// The MIME type.
        mime_type: String,
        /// The data.
        data: String,
    },
}

/// Model reasoning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thought {
    /// The reasoning text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The provider's signature for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Sampling and output parameters. `None` leaves the provider's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceParams {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// JSON output handling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_mode: Option<JsonMode>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Reasoning effort for reasoning models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Service tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Thinking budget, for providers that take one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget_tokens: Option<u32>,
    /// Verbosity, for models that take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    /// Top-k sampling (from the Anthropic Messages route; a switchyard extension elsewhere):
    /// sent to Anthropic and Gemini providers, left out for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
}

impl InferenceParams {
    /// `self`, with every unset field taken from `fallback`.
    pub fn or(self, fallback: &InferenceParams) -> InferenceParams {
        let f = fallback.clone();
        InferenceParams {
            temperature: self.temperature.or(f.temperature),
            max_tokens: self.max_tokens.or(f.max_tokens),
            seed: self.seed.or(f.seed),
            top_p: self.top_p.or(f.top_p),
            presence_penalty: self.presence_penalty.or(f.presence_penalty),
            frequency_penalty: self.frequency_penalty.or(f.frequency_penalty),
            json_mode: self.json_mode.or(f.json_mode),
            stop_sequences: self.stop_sequences.or(f.stop_sequences),
            reasoning_effort: self.reasoning_effort.or(f.reasoning_effort),
            service_tier: self.service_tier.or(f.service_tier),
            thinking_budget_tokens: self.thinking_budget_tokens.or(f.thinking_budget_tokens),
            verbosity: self.verbosity.or(f.verbosity),
            top_k: self.top_k.or(f.top_k),
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// The name sent to the model.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// Strict argument generation.
    #[serde(default)]
    pub strict: bool,
}

/// How the model must use tools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// No tool.
    None,
    /// The model decides.
    #[default]
    Auto,
    /// Some tool.
    Required,
    /// This tool.
    Specific(String),
}

/// The tools of one call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolConfig {
    /// The tools.
    pub tools: Vec<ToolDef>,
    /// The choice.
    pub tool_choice: ToolChoice,
    /// Several calls at once.
    pub parallel_tool_calls: Option<bool>,
}

/// An `extra_body` edit, already merged from config and request (later entries win).
#[derive(Clone, Debug, PartialEq)]
pub struct BodyEdit {
    /// JSON Pointer.
    pub pointer: String,
    /// `Some` sets, `None` deletes.
    pub value: Option<Value>,
}

impl From<&crate::config::ExtraBodyEntry> for BodyEdit {
    /// Validation has already rejected entries that are neither a set nor a delete.
    fn from(e: &crate::config::ExtraBodyEntry) -> Self {
        BodyEdit {
            pointer: e.pointer.clone(),
            value: match e.edit() {
                Ok(crate::config::Edit::Set(v)) => Some(v.clone()),
                _ => None,
            },
        }
    }
}

impl From<&crate::config::ExtraHeaderEntry> for HeaderEdit {
    fn from(e: &crate::config::ExtraHeaderEntry) -> Self {
        HeaderEdit {
            name: e.name.clone(),
            value: match e.edit() {
                Ok(crate::config::Edit::Set(v)) => Some(v.clone()),
                _ => None,
            },
        }
    }
}

/// An `extra_headers` edit.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderEdit {
    /// Header name.
    pub name: String,
    /// `Some` sets, `None` deletes.
    pub value: Option<String>,
}

/// One call of one model.
#[derive(Clone, Debug, Default)]
pub struct ModelRequest {
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling parameters.
    pub params: InferenceParams,
    /// Tools, when any.
    pub tools: Option<ToolConfig>,
    /// The schema the output must follow (json functions, `response_format`).
    pub output_schema: Option<Value>,
    /// Stream the answer.
    pub stream: bool,
    /// Edits to the provider body.
    pub extra_body: ExtraEdits<BodyEdit>,
    /// Edits to the provider headers.
    pub extra_headers: ExtraEdits<HeaderEdit>,
}

/// `extra_body` or `extra_headers` edits from the variant and the request. A provider applies
/// the variant's, then its own, then the request's that target it: later edits win.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtraEdits<T> {
    /// From the variant's config.
    pub variant: Vec<T>,
    /// From the request, each with the providers it targets.
    pub request: Vec<Targeted<T>>,
}

impl<T> Default for ExtraEdits<T> {
    fn default() -> Self {
        Self {
            variant: Vec::new(),
            request: Vec::new(),
        }
    }
}

/// A request-time edit and what it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Targeted<T> {
    /// Which providers it applies to.
    pub target: EditTarget,
    /// The edit.
    pub edit: T,
}

/// Which model calls a request-time edit applies to. Variant filters are resolved by the
/// handler before the model call, so only these two remain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditTarget {
    /// Every provider.
    Always,
    /// Providers of this model (all of them, or the one named).
    ModelProvider {
        /// The gateway model name.
        model: String,
        /// The provider name, or every provider of the model.
        provider: Option<String>,
    },
}

impl EditTarget {
    /// Whether the edit applies to provider `provider` of model `model`.
    pub fn applies_to(&self, model: &str, provider: &str) -> bool {
        match self {
            EditTarget::Always => true,
            EditTarget::ModelProvider {
                model: m,
                provider: p,
            } => m == model && p.as_deref().is_none_or(|p| p == provider),
        }
    }
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end.
    Stop,
    /// A stop sequence.
    StopSequence,
    /// The token limit.
    Length,
    /// A tool call.
    ToolCall,
    /// A content filter.
    ContentFilter,
    /// Anything else (any other value reads as this).
    #[serde(other)]
    Unknown,
}

/// Token counts as the provider reported them, and what the call cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: Option<u32>,
    /// Completion tokens.
    pub output_tokens: Option<u32>,
    /// The cost, from the provider's `cost` prices (`None`: unknown or not configured).
    #[serde(default)]
    pub cost: Option<crate::cost::Dollars>,
}

impl Usage {
    /// Adds another report (a stream may report usage in parts; each carries the running
    /// totals, so later values replace earlier ones).
    pub fn merge(&mut self, other: Usage) {
        if other.input_tokens.is_some() {
            self.input_tokens = other.input_tokens;
        }
        if other.output_tokens.is_some() {
            self.output_tokens = other.output_tokens;
        }
        if other.cost.is_some() {
            self.cost = other.cost;
        }
    }
}

/// What a client asked to see of the providers' own answers (`include_raw_usage`,
/// `include_raw_response`); carried to the model calls as a request extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawWanted {
    /// Each call's usage object, as the provider wrote it.
    pub usage: bool,
    /// Each call's answer (or stream chunks), as the provider sent it.
    pub response: bool,
}

impl RawWanted {
    /// Whether anything is wanted.
    pub fn any(self) -> bool {
        self.usage || self.response
    }
}

/// One model call's usage as its provider wrote it (a `raw_usage` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawUsage {
    /// The model call.
    pub model_inference_id: uuid::Uuid,
    /// The provider's type (`openai`, `anthropic`, ...).
    pub provider_type: String,
    /// Which of its APIs: `chat_completions`, `responses`, `embeddings` or `other`.
    pub api_type: String,
    /// The usage object (null when the provider sent none).
    pub data: Value,
}

/// One model call's answer as its provider sent it (a `raw_response` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawResponse {
    /// The model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_inference_id: Option<uuid::Uuid>,
    /// The provider's type.
    pub provider_type: String,
    /// Which of its APIs.
    pub api_type: String,
    /// The answer's text.
    pub data: String,
}

/// What the observability store keeps of one provider attempt: the body sent and the answer
/// received (a stream's events joined by newlines), verbatim. Written by the call's tap,
/// read once the call that owns it has ended; never shown to clients.
#[derive(Debug, Default)]
pub struct ExchangeText {
    /// The request body sent to the provider (or the relay).
    pub request: String,
    /// The whole answer, or every stream event's data so far.
    pub response: String,
}

/// One model call's provider attempts, each with its exchange, when the observability store
/// records the call (a call extension: no store, no extension, nothing recorded). With
/// retries, fallback and hedging a call makes several attempts; the one that answered is
/// found by its provider's name (the last attempt of that name).
#[derive(Clone, Debug, Default)]
pub struct ExchangeLog(Arc<std::sync::Mutex<Vec<Attempt>>>);

/// One provider attempt's exchange, shared between the log and the attempt's tap.
pub type SharedExchange = Arc<std::sync::Mutex<ExchangeText>>;

/// A provider's name and the exchange of one attempt at it.
type Attempt = (Arc<str>, SharedExchange);

impl ExchangeLog {
    /// Starts recording an attempt at `provider`.
    pub fn attempt(&self, provider: &Arc<str>) -> SharedExchange {
        let text = SharedExchange::default();
        self.lock().push((provider.clone(), text.clone()));
        text
    }

    /// The request and answer of the last attempt at `provider`, taken out of the log.
    pub fn take(&self, provider: &str) -> Option<ExchangeText> {
        let attempts = self.lock();
        let (_, text) = attempts.iter().rev().find(|(p, _)| &**p == provider)?;
        let mut text = text.lock().unwrap_or_else(|e| e.into_inner());
        Some(std::mem::take(&mut *text))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Attempt>> {
        // Nothing panics while holding it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a client asked to see of the providers' own answers, gathered over the model calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Raw {
    /// Usage objects, one per model call.
    pub usage: Vec<RawUsage>,
    /// Whole answers, one per model call (in a stream: the calls made before it started).
    pub responses: Vec<RawResponse>,
    /// In a stream: the provider's chunks since the previous one.
    pub chunk: Option<String>,
}

impl Raw {
    /// Adds another call's records (usage entries of the same call replace earlier ones: a
    /// stream reports running totals).
    pub fn absorb(&mut self, other: Raw) {
        for u in other.usage {
            match self
                .usage
                .iter_mut()
                .find(|e| e.model_inference_id == u.model_inference_id)
            {
                Some(e) => *e = u,
                None => self.usage.push(u),
            }
        }
        self.responses.extend(other.responses);
        if let Some(chunk) = other.chunk {
            match &mut self.chunk {
                Some(c) => c.push_str(&chunk),
                None => self.chunk = Some(chunk),
            }
        }
    }
}

/// A block of model output.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputBlock {
    /// Text.
    Text(String),
    /// A tool call.
    ToolCall(ToolCall),
    /// Reasoning.
    Thought(Thought),
}

/// A complete answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelResponse {
    /// The content.
    pub content: Vec<OutputBlock>,
    /// Token counts.
    pub usage: Usage,
    /// Why it stopped.
    pub finish_reason: Option<FinishReason>,
    /// The provider's own answer, when the client asked for it.
    pub raw: Option<Box<Raw>>,
}

/// A piece of a streamed answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelChunk {
    /// New content.
    pub content: Vec<ChunkBlock>,
    /// Usage, usually only in the last chunk.
    pub usage: Option<Usage>,
    /// Why it stopped, in the last chunk.
    pub finish_reason: Option<FinishReason>,
    /// The provider's own chunks (and, with usage, its usage object), when asked for.
    pub raw: Option<Box<Raw>>,
}

/// A delta of one output block.
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkBlock {
    /// More text.
    Text {
        /// Which text block.
        id: String,
        /// The new text.
        text: String,
    },
    /// Part of a tool call: the name comes once, the arguments in pieces.
    ToolCall {
        /// The call id.
        id: String,
        /// The name (empty after the first delta).
        raw_name: String,
        /// More argument text.
        raw_arguments: String,
    },
    /// More reasoning.
    Thought {
        /// Which thought block.
        id: String,
        /// The new text.
        text: Option<String>,
        /// Its signature.
        signature: Option<String>,
    },
}

/// The chunks after the first one.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ModelChunk, Error>> + Send>>;

/// What a provider call returns.
pub enum ProviderOutput {
    /// A complete answer.
    Complete(ModelResponse),
    /// A stream whose first chunk has already arrived (so errors before it can fall back).
    Stream {
        /// The first chunk.
        first: ModelChunk,
        /// The rest.
        rest: ChunkStream,
    },
}

/// What the model-call stack returns: the output, and who produced it.
pub struct ModelOutput {
    /// The provider that answered (`tensorzero::relay` for relayed calls).
    pub provider: Arc<str>,
    /// The answer.
    pub output: ProviderOutput,
}

impl Payload for ModelRequest {
    fn is_streaming(&self) -> bool {
        self.stream
    }
}

/// Bytes of text per estimated token (a common average for English; settlement corrects it).
const BYTES_PER_TOKEN: u64 = 4;
/// Tokens assumed for each image or document in the input.
const TOKENS_PER_FILE: u64 = 1_000;

impl EstimateTokens for ModelRequest {
    /// The input's text length / 4, plus 1,000 per file; the output is `max_tokens` (or the
    /// configured default when the call sets none).
    fn estimated_tokens(&self, default_max_tokens: u32) -> TokenEstimate {
        let text = |s: &str| s.len() as u64;
        let mut bytes = self.system.as_deref().map_or(0, text);
        let mut files = 0;
        for message in &self.messages {
            for block in &message.content {
                match block {
                    ContentBlock::Text(t) => bytes += text(t),
                    ContentBlock::ToolCall(c) => bytes += text(&c.name) + text(&c.arguments),
                    ContentBlock::ToolResult(r) => bytes += text(&r.name) + text(&r.result),
                    ContentBlock::Thought(t) => bytes += t.text.as_deref().map_or(0, text),
                    ContentBlock::File(_) => files += 1,
                    ContentBlock::Unknown { data } => bytes += data.to_string().len() as u64,
                }
            }
        }
        TokenEstimate {
            input: bytes.div_ceil(BYTES_PER_TOKEN) + files * TOKENS_PER_FILE,
            output: u64::from(self.params.max_tokens.unwrap_or(default_max_tokens)),
        }
    }
}

fn reported(u: &Usage) -> UsageReport {
    UsageReport {
        tokens: match (u.input_tokens, u.output_tokens) {
            (Some(input), Some(output)) => {
                TokenReport::Reported(u64::from(input) + u64::from(output))
            }
            _ => TokenReport::Unknown,
        },
        cost: u.cost.map(crate::cost::Dollars::nanodollars_ceil),
    }
}

impl ReportUsage for ModelOutput {
    /// A complete answer reports at once; a stream when it ends, or, dropped before its end,
    /// with what it had produced by then.
    fn report_usage(self, settle: Box<dyn FnOnce(UsageReport) + Send>) -> Self {
        match self.output {
            ProviderOutput::Complete(response) => {
                settle(reported(&response.usage));
                ModelOutput {
                    provider: self.provider,
                    output: ProviderOutput::Complete(response),
                }
            }
            ProviderOutput::Stream { first, rest } => {
                let rest = on_stream_end(&first, rest, move |end| {
                    settle(if end.ended {
                        reported(&end.usage)
                    } else {
                        UsageReport {
                            tokens: TokenReport::Abandoned {
                                input: end.usage.input_tokens.map(u64::from),
                                output: end
                                    .generated_bytes
                                    .div_ceil(BYTES_PER_TOKEN)
                                    .max(end.usage.output_tokens.map_or(0, u64::from)),
                            },
                            cost: end.usage.cost.map(crate::cost::Dollars::nanodollars_ceil),
                        }
                    })
                });
                ModelOutput {
                    provider: self.provider,
                    output: ProviderOutput::Stream { first, rest },
                }
            }
        }
    }
}

/// How a stream ended, for whoever counts its tokens.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamEnd {
    /// The usage the chunks reported (later values replace earlier ones).
    pub usage: Usage,
    /// Whether the stream reached its end (`false`: it was dropped first, e.g. the client went
    /// away).
    pub ended: bool,
    /// Bytes of text, tool-call and reasoning content that went by.
    pub generated_bytes: u64,
}

impl ModelChunk {
    /// Bytes of generated content in this chunk.
    fn generated_bytes(&self) -> u64 {
        let bytes: usize = self
            .content
            .iter()
            .map(|block| match block {
                ChunkBlock::Text { text, .. } => text.len(),
                ChunkBlock::ToolCall {
                    raw_name,
                    raw_arguments,
                    ..
                } => raw_name.len() + raw_arguments.len(),
                ChunkBlock::Thought { text, .. } => text.as_deref().map_or(0, str::len),
            })
            .sum();
        bytes as u64
    }
}

/// The stream after `first`, unchanged, calling `done` once with how it ended.
pub fn on_stream_end(
    first: &ModelChunk,
    rest: ChunkStream,
    done: impl FnOnce(StreamEnd) + Send + 'static,
) -> ChunkStream {
    struct Watch<F: FnOnce(StreamEnd)> {
        done: Option<F>,
        end: StreamEnd,
    }
    impl<F: FnOnce(StreamEnd)> Watch<F> {
        fn see(&mut self, chunk: &ModelChunk) {
            if let Some(u) = chunk.usage {
                self.end.usage.merge(u);
            }
            self.end.generated_bytes = self
                .end
                .generated_bytes
                .saturating_add(chunk.generated_bytes());
        }
        fn finish(&mut self, ended: bool) {
            if let Some(done) = self.done.take() {
                self.end.ended = ended;
                done(self.end);
            }
        }
    }
    impl<F: FnOnce(StreamEnd)> Drop for Watch<F> {
        fn drop(&mut self) {
            self.finish(false);
        }
    }
    let mut watch = Watch {
        done: Some(done),
        end: StreamEnd::default(),
    };
    watch.see(first);
    futures_util::stream::unfold(Some((rest, watch)), |state| async move {
        let (mut rest, mut watch) = state?;
        match rest.next().await {
            Some(item) => {
                if let Ok(chunk) = &item {
                    watch.see(chunk);
                }
                Some((item, Some((rest, watch))))
            }
            None => {
                watch.finish(true);
                None
            }
        }
    })
    .boxed()
}

impl LimitStream for ModelOutput {
    /// Bounds the rest of a stream: past the deadline, or after a silence longer than the idle
    /// limit, the stream yields the timeout error and ends.
    fn limit_stream(self, limits: StreamLimits) -> Self {
        let ProviderOutput::Stream { first, rest } = self.output else {
            return self;
        };
        let limited = futures_util::stream::unfold(Some((rest, limits)), |state| async move {
            let (mut rest, limits) = state?;
            let deadline = async {
                match &limits.deadline {
                    Some((at, _)) => tokio::time::sleep_until(*at).await,
                    None => std::future::pending().await,
                }
            };
            let idle = async {
                match &limits.idle {
                    Some((after, _)) => tokio::time::sleep(*after).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = rest.next() => item.map(|item| (item, Some((rest, limits)))),
                () = deadline => {
                    let elapsed = limits.deadline.map(|(_, e)| e).expect("a deadline fired");
                    Some((Err(Error::Timeout(elapsed)), None))
                }
                () = idle => {
                    let elapsed = limits.idle.map(|(_, e)| e).expect("an idle limit fired");
                    Some((Err(Error::Timeout(elapsed)), None))
                }
            }
        });
        ModelOutput {
            provider: self.provider,
            output: ProviderOutput::Stream {
                first,
                rest: limited.boxed(),
            },
        }
    }
}
