//! `experimental_best_of_n` and `experimental_mixture_of_n`: run candidate variants at once,
//! then let a model pick the best answer (the evaluator) or write one from all of them (the
//! fuser).
//!
//! Candidates never stream and run concurrently, each under its own non-streaming timeout (the
//! deprecated `timeout_s` of the ensemble is copied there at load); one that fails or takes too
//! long is dropped (and logged). With no candidate left the variant fails; with one left it
//! is the answer, no judging needed. Each candidate, the evaluator and the fuser is its own model
//! inference (rate-limited, retried and relayed like any other); the usage reported to the client
//! is the sum of all of them.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde_json::{Value, json};
use switchyard_layers::timeout::{Elapsed, Scope, TimeoutKind};

use super::functions::{FunctionInfo, OutputCheck, output_text};
use super::input::Prompt;
use super::{ChatCall, Engine, Ids, InferenceMeta, InferenceOutcome, InferenceRequest};
use crate::config::{BestOfNConfig, JsonMode, MixtureOfNConfig, TimeoutsConfig, VariantConfig};
use crate::error::Error;
use crate::model_call::{ChunkBlock, ModelChunk, ModelResponse, OutputBlock, Raw, Usage};

/// What the evaluator is asked for, appended to its own system prompt.
const EVALUATOR_INSTRUCTIONS: &str = "You are judging candidate answers to the conversation that follows. \
Each candidate appears between <candidate index=\"N\"> and </candidate>. Pick the candidate that answers \
the conversation best: correct, complete, and following every instruction given. Reply with a JSON object \
only: {\"thinking\": \"<your reasoning>\", \"answer_choice\": N}, where N is the index of the best candidate.";

/// What the fuser is asked for, appended to its own system prompt.
const FUSER_INSTRUCTIONS: &str = "Other assistants have already answered the conversation that follows; \
their answers appear between <candidate index=\"N\"> and </candidate>. Write one answer that keeps what \
is right and complete in them and leaves out what is wrong. Answer the conversation directly, in the form \
it asks for, without mentioning the candidates.";

/// One run of an ensemble variant.
pub(crate) struct Ensemble<'a> {
    pub engine: &'a Engine,
    pub request: &'a InferenceRequest,
    pub function: &'a FunctionInfo,
    pub function_name: &'a str,
    pub variant_name: &'a str,
    pub ids: Ids,
}

/// A candidate's answer.
struct Candidate {
    meta: InferenceMeta,
    response: ModelResponse,
}

impl Ensemble<'_> {
    /// Best-of-n: candidates, then the evaluator picks one. If the evaluator fails or answers
    /// with no valid choice, the first candidate to have answered is used (and a warning logged).
    pub async fn best_of_n(
        &self,
        config: &BestOfNConfig,
        evaluator_prompt: &Prompt,
    ) -> Result<InferenceOutcome, Error> {
        let work = async {
            let mut candidates = self.run_candidates(&config.candidates).await?;
            let mut usage = total_usage(candidates.iter().map(|c| c.response.usage));
            let mut raw = gather(candidates.iter().map(|c| c.response.raw.clone()));
            let chosen = if candidates.len() == 1 {
                0
            } else {
                match self
                    .evaluate(&config.evaluator, evaluator_prompt, &candidates)
                    .await
                {
                    Ok((choice, evaluator)) => {
                        usage = add_usage(usage, evaluator.usage);
                        raw = gather([raw, evaluator.raw]);
                        choice
                    }
                    Err(e) => {
                        tracing::warn!(variant = %self.variant_name, error = %e, "best-of-n evaluator failed; using the first candidate");
                        0
                    }
                }
            };
            let Candidate {
                mut meta,
                mut response,
            } = candidates.swap_remove(chosen);
            meta.variant_name = self.variant_name.into();
            response.usage = usage;
            response.raw = raw;
            Ok(self.deliver(meta, response))
        };
        self.within(&config.timeouts, work).await
    }

    /// Mixture-of-n: candidates, then the fuser writes the answer (streamed if asked).
    pub async fn mixture_of_n(
        &self,
        config: &MixtureOfNConfig,
        fuser_prompt: &Prompt,
    ) -> Result<InferenceOutcome, Error> {
        let work = async {
            let mut candidates = self.run_candidates(&config.candidates).await?;
            let candidate_usage = total_usage(candidates.iter().map(|c| c.response.usage));
            let candidate_raw = gather(candidates.iter().map(|c| c.response.raw.clone()));
            if candidates.len() == 1 {
                let Candidate {
                    mut meta,
                    mut response,
                } = candidates.remove(0);
                meta.variant_name = self.variant_name.into();
                response.usage = candidate_usage;
                return Ok(self.deliver(meta, response));
            }
            let (system, messages) =
                fuser_prompt.render(&self.request.input, Some(&self.engine.templates))?;
            let system = with_candidates(system, FUSER_INSTRUCTIONS, &candidates);
            let call = ChatCall {
                request: self.request,
                function: Some(self.function),
                function_name: self.function_name,
                variant_name: self.variant_name,
                cc: &config.fuser,
                ids: self.ids,
            };
            let (model_request, check) = call.model_request(system, messages)?;
            let outcome = call.call(self.engine, model_request, check).await?;
            Ok(match outcome {
                InferenceOutcome::Complete { meta, mut response } => {
                    response.usage = add_usage(response.usage, candidate_usage);
                    response.raw = gather([candidate_raw, response.raw]);
                    InferenceOutcome::Complete { meta, response }
                }
                InferenceOutcome::Stream {
                    meta,
                    mut first,
                    rest,
                } => {
                    // Usage values in a stream replace each other; adding the candidates' to each
                    // one keeps the last one right.
                    add_to_chunk(&mut first, candidate_usage);
                    // The candidates' records arrive with the first chunk: their answers are
                    // complete before the stream starts.
                    first.raw = gather([candidate_raw, first.raw.take()]);
                    let rest = rest
                        .map(move |item| {
                            item.map(|mut chunk| {
                                add_to_chunk(&mut chunk, candidate_usage);
                                chunk
                            })
                        })
                        .boxed();
                    InferenceOutcome::Stream { meta, first, rest }
                }
            })
        };
        self.within(&config.timeouts, work).await
    }

    /// Runs the candidates at once, without streaming; keeps those that answered within their
    /// own `timeouts.non_streaming.total_ms` (where the deprecated `timeout_s` lands).
    async fn run_candidates(&self, names: &[String]) -> Result<Vec<Candidate>, Error> {
        let request = InferenceRequest {
            stream: false,
            ..self.request.clone()
        };
        let request = &request;
        let runs = names.iter().map(|name| async move {
            let limit = self
                .function
                .variants
                .get(name)
                .and_then(|v| v.config.timeouts().non_streaming.total_ms)
                .map(Duration::from_millis);
            let run = self.run_candidate(request, name);
            let result = match limit {
                Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| limit),
                None => Ok(run.await),
            };
            (name, result)
        });
        let mut candidates = Vec::new();
        let mut errors = Vec::new();
        for (name, result) in join_all(runs).await {
            match result {
                Ok(Ok(InferenceOutcome::Complete { meta, response })) => {
                    candidates.push(Candidate { meta, response })
                }
                Ok(Ok(InferenceOutcome::Stream { .. })) => {
                    errors.push((name.clone(), Error::Internal("a candidate streamed".into())))
                }
                Ok(Err(e)) => {
                    tracing::warn!(variant = %self.variant_name, candidate = %name, error = %e, "candidate failed; dropped");
                    errors.push((name.clone(), e));
                }
                Err(limit) => {
                    let ms = limit.as_millis() as u64;
                    tracing::warn!(variant = %self.variant_name, candidate = %name, timeout_ms = ms, "candidate timed out; dropped");
                    errors.push((
                        name.clone(),
                        Error::InvalidRequest(format!(
                            "candidate `{name}` took longer than its `timeouts.non_streaming.total_ms` = {ms} ms"
                        )),
                    ));
                }
            }
        }
        if candidates.is_empty() {
            return Err(Error::AllVariantsFailed(errors));
        }
        Ok(candidates)
    }

    async fn run_candidate(
        &self,
        request: &InferenceRequest,
        name: &str,
    ) -> Result<InferenceOutcome, Error> {
        let variant = self.function.variants.get(name).ok_or_else(|| {
            Error::Internal(format!(
                "candidate `{name}` is not a variant (config validation missed it)"
            ))
        })?;
        let (system, messages) = variant
            .prompt
            .render(&request.input, Some(&self.engine.templates))?;
        let call = |cc| ChatCall {
            request,
            function: Some(self.function),
            function_name: self.function_name,
            variant_name: name,
            cc,
            ids: self.ids,
        };
        match &variant.config {
            VariantConfig::ChatCompletion(cc) => call(cc).run(self.engine, system, messages).await,
            VariantConfig::ExperimentalChainOfThought(cc) => {
                call(cc)
                    .run_chain_of_thought(self.engine, system, messages)
                    .await
            }
            other => Err(Error::Internal(format!(
                "candidate `{name}` is a `{}` variant; candidates are `chat_completion` or `experimental_chain_of_thought` variants",
                other.type_name()
            ))),
        }
    }

    /// Asks the evaluator which candidate is best: its index and the evaluator's usage.
    async fn evaluate(
        &self,
        evaluator: &crate::config::ChatCompletionConfig,
        prompt: &Prompt,
        candidates: &[Candidate],
    ) -> Result<(usize, ModelResponse), Error> {
        let (system, messages) =
            prompt.render(&self.request.input, Some(&self.engine.templates))?;
        let system = with_candidates(system, EVALUATOR_INSTRUCTIONS, candidates);
        // The evaluator answers for itself: no tools, no output schema of the function's.
        let request = InferenceRequest {
            stream: false,
            tools: Default::default(),
            output_schema: None,
            schemas: Default::default(),
            ..self.request.clone()
        };
        let call = ChatCall {
            request: &request,
            function: None,
            function_name: self.function_name,
            variant_name: self.variant_name,
            cc: evaluator,
            ids: self.ids,
        };
        let (mut model_request, _) = call.model_request(system, messages)?;
        model_request.tools = None;
        model_request.params.json_mode = Some(evaluator.json_mode.unwrap_or(JsonMode::Strict));
        model_request.output_schema = Some(json!({
            "type": "object",
            "properties": {
                "thinking": { "type": "string" },
                "answer_choice": { "type": "integer", "minimum": 0 }
            },
            "required": ["thinking", "answer_choice"],
            "additionalProperties": false
        }));
        let InferenceOutcome::Complete { response, .. } = call
            .call(self.engine, model_request, OutputCheck::Json(None))
            .await?
        else {
            return Err(Error::Internal(
                "a non-streaming call returned a stream".into(),
            ));
        };
        let text = output_text(&response.content);
        let choice = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("answer_choice").and_then(Value::as_u64))
            .and_then(|c| usize::try_from(c).ok())
            .filter(|c| *c < candidates.len())
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "the evaluator's answer has no valid `answer_choice` (0 to {})",
                    candidates.len() - 1
                ))
            })?;
        Ok((choice, response))
    }

    /// The answer in the form the request asked for: a stream of one chunk when it streams.
    fn deliver(&self, meta: InferenceMeta, response: ModelResponse) -> InferenceOutcome {
        if !self.request.stream {
            return InferenceOutcome::Complete { meta, response };
        }
        let first = ModelChunk {
            content: response
                .content
                .into_iter()
                .enumerate()
                .map(|(i, block)| match block {
                    OutputBlock::Text(text) => ChunkBlock::Text {
                        id: i.to_string(),
                        text,
                    },
                    OutputBlock::ToolCall(call) => ChunkBlock::ToolCall {
                        id: call.id,
                        raw_name: call.name,
                        raw_arguments: call.arguments,
                    },
                    OutputBlock::Thought(t) => ChunkBlock::Thought {
                        id: i.to_string(),
                        text: t.text,
                        signature: t.signature,
                    },
                })
                .collect(),
            usage: Some(response.usage),
            finish_reason: response.finish_reason,
            raw: response.raw,
        };
        InferenceOutcome::Stream {
            meta,
            first,
            rest: futures_util::stream::empty().boxed(),
        }
    }

    /// Bounds the whole variant by its own `timeouts` (total without streaming, time to the
    /// first chunk with it).
    async fn within(
        &self,
        timeouts: &TimeoutsConfig,
        work: impl Future<Output = Result<InferenceOutcome, Error>>,
    ) -> Result<InferenceOutcome, Error> {
        let (limit, kind) = if self.request.stream {
            (timeouts.streaming.ttft_ms, TimeoutKind::StreamingTtft)
        } else {
            (
                timeouts.non_streaming.total_ms,
                TimeoutKind::NonStreamingTotal,
            )
        };
        let Some(ms) = limit else {
            return work.await;
        };
        let limit = Duration::from_millis(ms);
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(Error::Timeout(Elapsed {
                scope: Scope::Variant,
                name: self.variant_name.into(),
                kind,
                limit,
            }))
        })
    }
}

/// The system prompt with the instructions and the candidates' answers after it.
fn with_candidates(
    system: Option<String>,
    instructions: &str,
    candidates: &[Candidate],
) -> Option<String> {
    let mut text = system.map(|s| s + "\n\n").unwrap_or_default();
    text.push_str(instructions);
    for (i, c) in candidates.iter().enumerate() {
        text.push_str(&format!("\n\n<candidate index=\"{i}\">\n"));
        text.push_str(&candidate_text(&c.response));
        text.push_str("\n</candidate>");
    }
    Some(text)
}

/// A candidate's answer as text: its text, and its tool calls as JSON.
fn candidate_text(response: &ModelResponse) -> String {
    let mut parts = Vec::new();
    for block in &response.content {
        match block {
            OutputBlock::Text(t) => parts.push(t.clone()),
            OutputBlock::ToolCall(c) => parts.push(
                json!({ "tool_call": { "name": c.name, "arguments": c.arguments } }).to_string(),
            ),
            OutputBlock::Thought(_) => {}
        }
    }
    parts.join("\n")
}

/// The raw records of several model calls together, in order.
fn gather(raws: impl IntoIterator<Item = Option<Box<Raw>>>) -> Option<Box<Raw>> {
    raws.into_iter().flatten().reduce(|mut all, next| {
        all.absorb(*next);
        all
    })
}

fn add_usage(a: Usage, b: Usage) -> Usage {
    let add = |x: Option<u32>, y: Option<u32>| match (x, y) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0).saturating_add(y.unwrap_or(0))),
    };
    Usage {
        input_tokens: add(a.input_tokens, b.input_tokens),
        output_tokens: add(a.output_tokens, b.output_tokens),
        cost: crate::cost::sum([a.cost, b.cost]),
    }
}

/// The usage of several calls together: a cost unknown for any of them is unknown in total.
fn total_usage(usages: impl Iterator<Item = Usage>) -> Usage {
    let nothing = Usage {
        cost: Some(crate::cost::Dollars::ZERO),
        ..Usage::default()
    };
    usages.fold(nothing, add_usage)
}

fn add_to_chunk(chunk: &mut ModelChunk, extra: Usage) {
    if let Some(usage) = &mut chunk.usage {
        if let Some(t) = &mut usage.input_tokens {
            *t = t.saturating_add(extra.input_tokens.unwrap_or(0));
        }
        if let Some(t) = &mut usage.output_tokens {
            *t = t.saturating_add(extra.output_tokens.unwrap_or(0));
        }
        if usage.cost.is_some() {
            usage.cost = crate::cost::sum([usage.cost, extra.cost]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_and_unknown_stays_unknown() {
        let dollars = |s: &str| crate::cost::Dollars::parse(s);
        let a = Usage {
            input_tokens: Some(10),
            output_tokens: None,
            cost: dollars("0.1"),
        };
        let b = Usage {
            input_tokens: Some(5),
            output_tokens: Some(2),
            cost: dollars("0.2"),
        };
        assert_eq!(
            add_usage(a, b),
            Usage {
                input_tokens: Some(15),
                output_tokens: Some(2),
                cost: dollars("0.3"),
            }
        );
        assert_eq!(total_usage([a, b].into_iter()).cost, dollars("0.3"));
        assert_eq!(
            total_usage([a, Usage::default()].into_iter()).cost,
            None,
            "one call of unknown cost makes the total unknown"
        );
        assert_eq!(
            add_usage(Usage::default(), Usage::default()),
            Usage::default()
        );
    }
}
