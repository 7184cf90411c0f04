//! What one inference's model calls did, gathered while it runs, for its `model_inferences`
//! rows: every successful model call (a chat completion, each best-of-n candidate and its
//! judge, each mixture-of-n candidate and its fuser), with the exchange the provider (or the
//! relay) saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use uuid::Uuid;

use super::rows::{self, ModelRow};
use crate::model_call::{
    ChunkBlock, ChunkStream, ExchangeLog, FinishReason, ModelChunk, ModelRequest, ModelResponse,
    OutputBlock, Thought, ToolCall, Usage,
};

/// One inference's model calls so far.
#[derive(Debug)]
pub struct Recorder {
    state: Mutex<Recorded>,
    /// What stored file pointers say (`[object_storage]`).
    files: Arc<super::files::Files>,
}

#[derive(Debug, Default)]
struct Recorded {
    calls: Vec<ModelRow>,
    /// The effective parameters of the inference's first model call.
    params: Option<Value>,
    /// The content of the last call (a stream's, assembled from its chunks).
    last_output: Option<Vec<OutputBlock>>,
}

/// What a model call sent, kept until its answer is in.
#[derive(Debug)]
pub struct PendingCall {
    recorder: Arc<Recorder>,
    /// The attempts' exchanges (a call extension the providers write to).
    pub log: ExchangeLog,
    inference_id: Uuid,
    model_name: String,
    system: Option<String>,
    input_messages: Value,
    started: tokio::time::Instant,
}

impl Recorder {
    /// A recorder whose rows point at files as `files` stores them.
    pub fn new(files: Arc<super::files::Files>) -> Self {
        Self {
            state: Mutex::default(),
            files,
        }
    }

    /// Starts recording a model call of inference `inference_id`.
    pub fn start(
        self: &Arc<Self>,
        inference_id: Uuid,
        model_name: &str,
        request: &ModelRequest,
    ) -> PendingCall {
        let mut state = self.lock();
        if state.params.is_none() {
            state.params = Some(rows::inference_params(&request.params));
        }
        PendingCall {
            recorder: self.clone(),
            log: ExchangeLog::default(),
            inference_id,
            model_name: model_name.to_owned(),
            system: request.system.clone(),
            input_messages: rows::input_messages(&request.messages, &self.files),
            started: tokio::time::Instant::now(),
        }
    }

    /// Records an embedding call (DICL's, of the serialized input): its row comes first.
    pub fn embedding_call(
        &self,
        inference_id: Uuid,
        model_name: &str,
        embedded: &crate::embeddings::EmbeddingOutput,
        text: &str,
        exchange: crate::model_call::ExchangeText,
        elapsed: Duration,
    ) {
        let (provider, prompt_tokens, cost) =
            (&embedded.provider, embedded.prompt_tokens, embedded.cost);
        let row = ModelRow {
            id: Uuid::now_v7(),
            inference_id,
            input_tokens: rows::tokens(prompt_tokens),
            output_tokens: None,
            response_time_ms: rows::millis(elapsed),
            model_name: model_name.to_owned(),
            model_provider_name: provider.to_string(),
            ttft_ms: None,
            finish_reason: None,
            snapshot_hash: None,
            cost: cost
                .filter(|c| c.to_f64().abs() < 1e9)
                .map(|c| c.to_string()),
            // The body sent and the answer, as for a chat call (when the provider's exchange
            // was not seen, the input that was embedded).
            raw_request: if exchange.request.is_empty() {
                serde_json::json!({ "input": text }).to_string()
            } else {
                exchange.request
            },
            raw_response: exchange.response,
            system: None,
            input_messages: serde_json::json!([{"role": "user", "content": [{"type": "text", "text": text}]}]),
            output: serde_json::json!([]),
        };
        self.lock().calls.insert(0, row);
    }

    /// The model rows recorded, taken out.
    pub fn take_calls(&self) -> Vec<ModelRow> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The effective parameters (of the first model call).
    pub fn params(&self) -> Value {
        self.lock()
            .params
            .clone()
            .unwrap_or_else(|| serde_json::json!({"chat_completion": {}}))
    }

    /// The last call's content (for a streamed inference: what its stream said).
    pub fn last_output(&self) -> Vec<OutputBlock> {
        self.lock().last_output.clone().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // Nothing panics while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PendingCall {
    /// A complete answer from `provider`.
    pub fn complete(self, provider: &str, response: &ModelResponse) {
        let elapsed = self.started.elapsed();
        self.finish(
            provider,
            &response.content,
            response.usage,
            response.finish_reason,
            elapsed,
            None,
        );
    }

    /// A stream from `provider` whose first chunk arrived: the row is written when it ends
    /// (and not at all if it is cut off).
    pub fn stream(self, provider: &str, first: &ModelChunk, rest: ChunkStream) -> ChunkStream {
        let ttft = self.started.elapsed();
        let mut collector = Collector::default();
        collector.see(first);
        let provider = provider.to_owned();
        let state = Some((rest, collector, self));
        futures_util::stream::unfold(state, move |state| {
            let provider = provider.clone();
            async move {
                let (mut rest, mut collector, pending) = state?;
                match rest.next().await {
                    Some(item) => {
                        if let Ok(chunk) = &item {
                            collector.see(chunk);
                        }
                        Some((item, Some((rest, collector, pending))))
                    }
                    None => {
                        let elapsed = pending.started.elapsed();
                        let content = collector.blocks();
                        pending.finish(
                            &provider,
                            &content,
                            collector.usage,
                            collector.finish_reason,
                            elapsed,
                            Some(ttft),
                        );
                        None
                    }
                }
            }
        })
        .boxed()
    }

    fn finish(
        self,
        provider: &str,
        content: &[OutputBlock],
        usage: Usage,
        finish_reason: Option<FinishReason>,
        elapsed: Duration,
        ttft: Option<Duration>,
    ) {
        let exchange = self.log.take(provider).unwrap_or_default();
        let row = ModelRow {
            id: Uuid::now_v7(),
            inference_id: self.inference_id,
            input_tokens: rows::tokens(usage.input_tokens),
            output_tokens: rows::tokens(usage.output_tokens),
            response_time_ms: rows::millis(elapsed),
            model_name: self.model_name,
            model_provider_name: provider.to_owned(),
            ttft_ms: ttft.and_then(rows::millis),
            finish_reason: rows::finish_reason(finish_reason),
            snapshot_hash: None,
            // NUMERIC(18,9) holds under a billion dollars; a provider that reports more is
            // wrong, and one bad value must not fail the whole batch.
            cost: usage
                .cost
                .filter(|c| c.to_f64().abs() < 1e9)
                .map(|c| c.to_string()),
            raw_request: exchange.request,
            raw_response: exchange.response,
            system: self.system,
            input_messages: self.input_messages,
            output: rows::model_output(content),
        };
        let mut state = self.recorder.lock();
        state.calls.push(row);
        state.last_output = Some(content.to_vec());
    }
}

/// A stream's answer, assembled from its chunks: blocks by id, in the order they began.
#[derive(Debug, Default)]
pub struct Collector {
    blocks: Vec<(String, OutputBlock)>,
    usage: Usage,
    finish_reason: Option<FinishReason>,
}

impl Collector {
    /// Adds one chunk.
    pub fn see(&mut self, chunk: &ModelChunk) {
        if let Some(u) = chunk.usage {
            self.usage.merge(u);
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason = chunk.finish_reason;
        }
        for block in &chunk.content {
            match block {
                ChunkBlock::Text { id, text } => {
                    match self.find(id, |b| matches!(b, OutputBlock::Text(_))) {
                        Some(OutputBlock::Text(t)) => t.push_str(text),
                        _ => self
                            .blocks
                            .push((id.clone(), OutputBlock::Text(text.clone()))),
                    }
                }
                ChunkBlock::ToolCall {
                    id,
                    raw_name,
                    raw_arguments,
                } => match self.find(id, |b| matches!(b, OutputBlock::ToolCall(_))) {
                    Some(OutputBlock::ToolCall(call)) => {
                        call.name.push_str(raw_name);
                        call.arguments.push_str(raw_arguments);
                    }
                    _ => self.blocks.push((
                        id.clone(),
                        OutputBlock::ToolCall(ToolCall {
                            id: id.clone(),
                            name: raw_name.clone(),
                            arguments: raw_arguments.clone(),
                        }),
                    )),
                },
                ChunkBlock::Thought {
                    id,
                    text,
                    signature,
                } => match self.find(id, |b| matches!(b, OutputBlock::Thought(_))) {
                    Some(OutputBlock::Thought(t)) => {
                        if let Some(more) = text {
                            t.text.get_or_insert_with(String::new).push_str(more);
                        }
                        if signature.is_some() {
                            t.signature.clone_from(signature);
                        }
                    }
                    _ => self.blocks.push((
                        id.clone(),
                        OutputBlock::Thought(Thought {
                            text: text.clone(),
                            signature: signature.clone(),
                        }),
                    )),
                },
            }
        }
    }

    fn find(&mut self, id: &str, kind: impl Fn(&OutputBlock) -> bool) -> Option<&mut OutputBlock> {
        self.blocks
            .iter_mut()
            .find(|(i, b)| i == id && kind(b))
            .map(|(_, b)| b)
    }

    /// The blocks so far.
    pub fn blocks(&self) -> Vec<OutputBlock> {
        self.blocks.iter().map(|(_, b)| b.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_assemble_into_blocks_by_id() {
        let mut c = Collector::default();
        let chunk = |content| ModelChunk {
            content,
            ..Default::default()
        };
        c.see(&chunk(vec![ChunkBlock::Text {
            id: "0".into(),
            text: "Hel".into(),
        }]));
        c.see(&chunk(vec![
            ChunkBlock::Text {
                id: "0".into(),
                text: "lo".into(),
            },
            ChunkBlock::ToolCall {
                id: "call_1".into(),
                raw_name: "get".into(),
                raw_arguments: "{\"a\":".into(),
            },
        ]));
        c.see(&chunk(vec![ChunkBlock::ToolCall {
            id: "call_1".into(),
            raw_name: String::new(),
            raw_arguments: "1}".into(),
        }]));
        assert_eq!(
            c.blocks(),
            vec![
                OutputBlock::Text("Hello".into()),
                OutputBlock::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "get".into(),
                    arguments: "{\"a\":1}".into()
                })
            ]
        );
    }
}
