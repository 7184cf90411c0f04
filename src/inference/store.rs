//! An inference's rows for the observability store: what the request said (taken before it
//! runs), what its model calls did (the recorder), and what it answered.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Engine, InferenceMeta, InferenceRequest};
use crate::model_call::{ChunkStream, ModelChunk, ModelResponse, OutputBlock};
use crate::observability::rows::{self, InferenceKind, InferenceRow};
use crate::observability::{Recorder, Row, Writer};

/// An inference being stored: the request's side, until the answer is in.
pub(super) struct Pending {
    writer: Arc<Writer>,
    recorder: Arc<Recorder>,
    started: tokio::time::Instant,
    input: Value,
    tags: Value,
    extra_body: Value,
    tools: super::DynamicToolParams,
    output_schema: Option<Value>,
}

impl Pending {
    /// Takes what the rows need from `request` before it runs.
    pub(super) fn new(
        writer: Arc<Writer>,
        recorder: Arc<Recorder>,
        files: &Arc<crate::observability::files::Files>,
        request: &InferenceRequest,
        started: tokio::time::Instant,
    ) -> Self {
        // The bytes of inline files go to object storage (when on) while the inference runs.
        request.input.for_each_file(|file| files.keep(file));
        let mut tags: Map<String, Value> = request
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Some(id) = &request.api_key_public_id {
            tags.insert(
                "tensorzero::api_key_public_id".into(),
                Value::String(id.to_string()),
            );
        }
        if let Some(ns) = &request.namespace {
            tags.insert("tensorzero::namespace".into(), Value::String(ns.clone()));
        }
        if let Some(variant) = &request.variant_name {
            tags.insert(
                "tensorzero::variant_pinned".into(),
                Value::String(variant.clone()),
            );
        }
        let extra_body = request
            .extra_body
            .iter()
            .map(|e| {
                let mut entry = Map::new();
                match &e.filter {
                    super::RequestEditFilter::Always => {}
                    super::RequestEditFilter::Variant(v) => {
                        entry.insert("variant_name".into(), json!(v));
                    }
                    super::RequestEditFilter::ModelProvider { model, provider } => {
                        entry.insert("model_name".into(), json!(model));
                        if let Some(p) = provider {
                            entry.insert("provider_name".into(), json!(p));
                        }
                    }
                }
                entry.insert("pointer".into(), json!(e.edit.pointer));
                match &e.edit.value {
                    Some(v) => entry.insert("value".into(), v.clone()),
                    None => entry.insert("delete".into(), json!(true)),
                };
                Value::Object(entry)
            })
            .collect();
        Self {
            writer,
            recorder,
            started,
            input: super::stored::stored_input(&request.input, files),
            tags: Value::Object(tags),
            extra_body: Value::Array(extra_body),
            tools: request.tools.clone(),
            output_schema: request.output_schema.clone(),
        }
    }

    /// A complete answer: its rows are handed to the store now (and written before the
    /// response in sync mode).
    pub(super) async fn complete(
        self,
        engine: &Engine,
        meta: &InferenceMeta,
        response: &ModelResponse,
    ) {
        let elapsed = self.started.elapsed();
        let writer = self.writer.clone();
        let row = self.row(engine, meta, &response.content, elapsed, None);
        writer.write(row).await;
    }

    /// A stream: its rows are queued when it ends, and not at all if it is cut off (as
    /// TensorZero does).
    pub(super) fn stream(
        self,
        engine: &Engine,
        meta: &InferenceMeta,
        ttft: Duration,
        first: &ModelChunk,
        rest: ChunkStream,
    ) -> ChunkStream {
        // What the row needs of the engine, taken now: the stream outlives this borrow.
        let function = engine.function(&meta.function_name).map(FunctionFacts::of);
        let meta = meta.clone();
        crate::model_call::on_stream_end(first, rest, move |end| {
            if !end.ended {
                return;
            }
            let elapsed = self.started.elapsed();
            let content = self.recorder.last_output();
            let writer = self.writer.clone();
            let row = self.row_with(function.as_ref(), &meta, &content, elapsed, Some(ttft));
            writer.enqueue(row);
        })
    }

    fn row(
        self,
        engine: &Engine,
        meta: &InferenceMeta,
        content: &[OutputBlock],
        elapsed: Duration,
        ttft: Option<Duration>,
    ) -> Row {
        let function = engine.function(&meta.function_name).map(FunctionFacts::of);
        self.row_with(function.as_ref(), meta, content, elapsed, ttft)
    }

    fn row_with(
        self,
        function: Option<&FunctionFacts>,
        meta: &InferenceMeta,
        content: &[OutputBlock],
        elapsed: Duration,
        ttft: Option<Duration>,
    ) -> Row {
        let (output, kind) = if meta.is_json {
            let (output, auxiliary) = super::stored::json_output(content, &meta.output_check);
            let output_schema = self
                .output_schema
                .clone()
                .or_else(|| function.and_then(|f| f.output_schema.clone()))
                .unwrap_or_else(|| json!({}));
            (
                output,
                InferenceKind::Json {
                    output_schema,
                    auxiliary_content: auxiliary,
                },
            )
        } else {
            (
                super::stored::chat_output(content, &meta.output_check),
                super::stored::tool_columns(function.map(|f| &f.tools), &self.tools),
            )
        };
        let models = self.recorder.take_calls();
        let inference = InferenceRow {
            id: meta.inference_id,
            function_name: meta.function_name.to_string(),
            variant_name: meta.variant_name.to_string(),
            episode_id: meta.episode_id,
            processing_time_ms: rows::millis(elapsed),
            ttft_ms: ttft.and_then(rows::millis),
            tags: self.tags,
            snapshot_hash: None,
            input: self.input,
            output,
            inference_params: self.recorder.params(),
            extra_body: self.extra_body,
            kind,
        };
        Row::Inference(Box::new(inference), models)
    }
}

/// What the rows need of a function's configuration.
struct FunctionFacts {
    tools: super::stored::FunctionTools,
    output_schema: Option<Value>,
}

impl FunctionFacts {
    fn of(f: &super::FunctionInfo) -> Self {
        Self {
            tools: super::stored::FunctionTools::of(f),
            output_schema: f.output_schema.as_ref().map(|s| s.document().clone()),
        }
    }
}
