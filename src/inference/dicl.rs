//! `experimental_dynamic_in_context_learning`: embed the input with the variant's
//! `embedding_model`, take the `k` nearest stored examples of this function and variant
//! (within `max_distance`), and show them to the model as earlier turns (each example's input
//! as a user message, its output as the assistant's answer) before the input itself.
//!
//! TensorZero 2026.4 reads examples only from ClickHouse, so in a Postgres-only deployment it
//! finds none; switchyard reads `tensorzero.dicl_examples` (see `observability::dicl`).

use std::sync::Arc;

use serde_json::Value;
use switchyard_layers::call::Call;
use switchyard_layers::ext::{ApiKeyPublicId, Tags};

use super::*;
use crate::config::functions::DiclConfig;
use crate::embeddings::EmbeddingRequest;
use crate::model_call::{ContentBlock, Message, Role, ToolCall};
use crate::observability::dicl::{self, Ranking};

/// What the model is told when the variant names no `system_instructions`.
const DEFAULT_INSTRUCTIONS: &str = "Earlier turns of this conversation are solved examples: each user message is a task input and the assistant message after it is the right output for it. Learn from them what is asked, then answer the last user message the same way, in the same format.";

impl Engine {
    pub(super) async fn run_dicl(
        &self,
        request: &InferenceRequest,
        function: &FunctionInfo,
        function_name: &str,
        variant_name: &str,
        variant: &Variant,
        ids: Ids,
    ) -> Result<InferenceOutcome, Error> {
        let VariantConfig::ExperimentalDynamicInContextLearning(config) = &variant.config else {
            return Err(Error::Internal(format!(
                "variant `{variant_name}` is not a DICL variant"
            )));
        };
        let Some(store) = &self.store else {
            return Err(Error::NotSupported(format!(
                "variant `{variant_name}` is an `experimental_dynamic_in_context_learning` variant, which reads its examples from the observability store: set TENSORZERO_POSTGRES_URL (and run `switchyard --run-postgres-migrations`), or pin another variant"
            )));
        };
        let has_files = request.input.messages.iter().any(|m| {
            m.content
                .iter()
                .any(|b| matches!(b, input::InputBlock::Other(ContentBlock::File(_))))
        });
        if has_files {
            return Err(Error::InvalidRequest(format!(
                "variant `{variant_name}` (dynamic in-context learning) cannot take file inputs: it embeds the input as text"
            )));
        }
        // (No files reach here, so no pointer's storage kind shows in the text.)
        let text = super::stored::stored_input(
            &request.input,
            &crate::observability::files::Files::disabled(),
        )
        .to_string();
        let started = tokio::time::Instant::now();
        let mut call = Call::new(EmbeddingRequest::new(
            Value::String(text.clone()),
            None,
            None,
        )?);
        call.extensions.insert(request.credentials.clone());
        call.extensions.insert(Tags(Arc::new(request.tags.clone())));
        if let Some(id) = &request.api_key_public_id {
            call.extensions.insert(ApiKeyPublicId(id.clone()));
        }
        if let Some(trace) = request.trace {
            call.extensions.insert(trace);
        }
        // Stored inferences keep the embedding call's exchange in its model row.
        let exchange = request
            .recorder
            .as_ref()
            .map(|_| crate::model_call::ExchangeLog::default());
        if let Some(log) = &exchange {
            call.extensions.insert(log.clone());
        }
        let embedded = self.embeddings.embed(&config.embedding_model, call).await?;
        let query: Vec<f32> = embedded
            .embeddings
            .first()
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_f64().map(|x| x as f32))
                    .collect()
            })
            .ok_or_else(|| {
                Error::Internal(format!(
                    "embedding model `{}` answered without a vector",
                    config.embedding_model
                ))
            })?;
        if let Some(recorder) = &request.recorder {
            let exchange = exchange
                .and_then(|log| log.take(&embedded.provider))
                .unwrap_or_default();
            recorder.embedding_call(
                ids.inference_id,
                &config.embedding_model,
                &embedded,
                &text,
                exchange,
                started.elapsed(),
            );
        }
        let ranking = *self
            .dicl_ranking
            .get_or_try_init(|| async {
                let ranking = dicl::ranking(store.pool()).await?;
                match ranking {
                    Some(Ranking::Pgvector) => tracing::info!("DICL: examples ranked by Postgres (pgvector cosine distance)"),
                    Some(Ranking::InGateway) => tracing::info!(
                        "DICL: pgvector is not installed; examples ranked in the gateway (at most {} per variant)",
                        dicl::MAX_IN_GATEWAY
                    ),
                    None => tracing::warn!("DICL: the database has no tensorzero.dicl_examples table (TensorZero's layout without pgvector); DICL variants run without examples"),
                }
                Ok::<_, String>(ranking)
            })
            .await
            .map_err(|e| Error::StoreUnavailable(format!("DICL could not read its examples: {e}")))?;
        let examples = match ranking {
            Some(ranking) => dicl::nearest(
                store.pool(),
                ranking,
                function_name,
                variant_name,
                &query,
                config.k,
                config.max_distance,
            )
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "DICL: reading examples failed");
                Error::StoreUnavailable(
                    "DICL could not read its examples from Postgres; retry shortly".into(),
                )
            })?,
            None => Vec::new(),
        };
        if examples.len() < config.k as usize {
            tracing::debug!(
                variant = %variant_name,
                found = examples.len(),
                k = config.k,
                "DICL: fewer examples than k"
            );
        }
        let mut messages = Vec::with_capacity(examples.len() * 2 + 1);
        for example in &examples {
            messages.push(Message {
                role: Role::User,
                content: vec![ContentBlock::Text(example.input.clone())],
            });
            messages.push(Message {
                role: Role::Assistant,
                content: example_answer(&example.output),
            });
        }
        messages.push(Message {
            role: Role::User,
            content: vec![ContentBlock::Text(text)],
        });
        let system = variant
            .prompt
            .system_instructions
            .as_deref()
            .unwrap_or(DEFAULT_INSTRUCTIONS)
            .to_owned();
        let cc = chat_completion_of(config);
        let call = ChatCall {
            request,
            function: Some(function),
            function_name,
            variant_name,
            cc: &cc,
            ids,
        };
        call.run(self, Some(system), messages).await
    }
}

/// An example's stored output as the assistant's turn: chat blocks (text and tool calls as
/// the model wrote them), or a json output's raw text.
fn example_answer(output: &str) -> Vec<ContentBlock> {
    match serde_json::from_str::<Value>(output) {
        Ok(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b
                    .get("text")
                    .and_then(Value::as_str)
                    .map(|t| ContentBlock::Text(t.to_owned())),
                Some("tool_call") => Some(ContentBlock::ToolCall(ToolCall {
                    id: b
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    name: b
                        .get("raw_name")
                        .or_else(|| b.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: match b.get("raw_arguments").or_else(|| b.get("arguments")) {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "{}".into(),
                    },
                })),
                _ => None,
            })
            .collect(),
        Ok(Value::Object(json)) => match json.get("raw") {
            Some(Value::String(raw)) => vec![ContentBlock::Text(raw.clone())],
            _ => vec![ContentBlock::Text(Value::Object(json).to_string())],
        },
        _ => vec![ContentBlock::Text(output.to_owned())],
    }
}

/// The generation call's settings, as a chat completion's.
fn chat_completion_of(d: &DiclConfig) -> ChatCompletionConfig {
    ChatCompletionConfig {
        model: d.model.clone(),
        temperature: d.temperature,
        top_p: d.top_p,
        max_tokens: d.max_tokens,
        presence_penalty: d.presence_penalty,
        frequency_penalty: d.frequency_penalty,
        seed: d.seed,
        json_mode: d.json_mode,
        stop_sequences: d.stop_sequences.clone(),
        reasoning_effort: d.reasoning_effort.clone(),
        thinking_budget_tokens: d.thinking_budget_tokens.and_then(|t| u32::try_from(t).ok()),
        verbosity: d.verbosity.clone(),
        retries: d.retries.clone(),
        timeouts: d.timeouts.clone(),
        extra_body: d.extra_body.clone(),
        extra_headers: d.extra_headers.clone(),
        ..default_variant(&d.model)
    }
}
