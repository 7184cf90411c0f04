//! One model call of a chat-completion-shaped variant: the typed model request built from the
//! variant's settings and the request's, sent through the variant's stack, and its answer
//! checked.

use super::*;

/// One model call of a chat-completion-shaped variant (a `chat_completion` variant, a
/// chain-of-thought variant, a best-of-n candidate or evaluator, a mixture-of-n fuser).
pub(crate) struct ChatCall<'a> {
    pub request: &'a InferenceRequest,
    pub function: Option<&'a FunctionInfo>,
    pub function_name: &'a str,
    pub variant_name: &'a str,
    pub cc: &'a ChatCompletionConfig,
    pub ids: Ids,
}

impl ChatCall<'_> {
    /// Builds the model request from rendered messages and runs it.
    pub(super) async fn run(
        &self,
        engine: &Engine,
        system: Option<String>,
        messages: Vec<Message>,
    ) -> Result<InferenceOutcome, Error> {
        let (model_request, check) = self.model_request(system, messages)?;
        self.call(engine, model_request, check).await
    }

    /// The typed model request, and how its answer will be checked.
    pub(crate) fn model_request(
        &self,
        system: Option<String>,
        messages: Vec<Message>,
    ) -> Result<(ModelRequest, OutputCheck), Error> {
        let cc = self.cc;
        let request = self.request;
        let variant_params = InferenceParams {
            temperature: cc.temperature,
            max_tokens: cc.max_tokens,
            seed: cc.seed,
            top_p: cc.top_p,
            presence_penalty: cc.presence_penalty,
            frequency_penalty: cc.frequency_penalty,
            json_mode: cc.json_mode,
            stop_sequences: cc.stop_sequences.clone(),
            reasoning_effort: cc.reasoning_effort.clone(),
            service_tier: cc.service_tier.clone(),
            thinking_budget_tokens: cc.thinking_budget_tokens,
            verbosity: cc.verbosity.clone(),
            top_k: None,
        };
        let mut params = request.params.clone().or(&variant_params);
        let is_json = self.function.is_some_and(FunctionInfo::is_json);
        let (tools, check, output_schema) = if is_json {
            let schema = match (&request.output_schema, &request.schemas.output) {
                (Some(_), Some(compiled)) => Some(compiled.clone()),
                // Not compiled ahead (a request the gateway built itself): compile it here.
                (Some(dynamic), None) => Some(
                    schema::JsonSchema::compile(dynamic.clone())
                        .map_err(|e| Error::InvalidRequest(format!("`output_schema` is {e}")))?,
                ),
                (None, _) => self.function.and_then(|f| f.output_schema.clone()),
            };
            if params.json_mode.is_none() {
                params.json_mode = Some(JsonMode::Strict);
            }
            let document = schema.as_ref().map(|s| s.document().clone());
            (None, OutputCheck::Json(schema), document)
        } else {
            let (tools, offered) =
                functions::tool_config(self.function, &request.tools, &request.schemas.tools)?;
            let check = if offered.is_empty() {
                OutputCheck::Chat
            } else {
                OutputCheck::Tools(Arc::new(offered))
            };
            // `response_format` on a chat call (OpenAI route, default function).
            (tools, check, request.output_schema.clone())
        };
        Ok((
            ModelRequest {
                system,
                messages,
                params,
                tools,
                output_schema,
                stream: request.stream,
                extra_body: edits(&cc.extra_body, &request.extra_body, self.variant_name),
                extra_headers: edits(&cc.extra_headers, &request.extra_headers, self.variant_name),
            },
            check,
        ))
    }

    /// Sends `model_request` through the variant's stack (rate limit, timeouts, retries, the
    /// model's providers or the relay).
    pub(crate) async fn call(
        &self,
        engine: &Engine,
        model_request: ModelRequest,
        output_check: OutputCheck,
    ) -> Result<InferenceOutcome, Error> {
        let request = self.request;
        let model = engine.models.get(&self.cc.model)?;
        if let Some(namespace) = &model.namespace
            && request.namespace.as_deref() != Some(namespace)
        {
            return Err(Error::InvalidRequest(format!(
                "model `{}` belongs to namespace `{namespace}`: only requests with `namespace` = `{namespace}` may use it",
                model.name
            )));
        }
        let pending = request
            .recorder
            .as_ref()
            .map(|r| r.start(self.ids.inference_id, &model.name, &model_request));
        let mut call = Call::new(model_request);
        if let Some(pending) = &pending {
            call.extensions.insert(pending.log.clone());
        }
        call.extensions.insert(request.credentials.clone());
        call.extensions.insert(Tags(Arc::new(request.tags.clone())));
        if let Some(id) = &request.api_key_public_id {
            call.extensions.insert(ApiKeyPublicId(id.clone()));
        }
        call.extensions.insert(request.stats.clone());
        if let Some(trace) = request.trace {
            call.extensions.insert(trace);
        }
        if let Some(extras) = &request.trace_extras {
            call.extensions.insert(extras.clone());
        }
        if request.raw_wanted.any() {
            call.extensions.insert(request.raw_wanted);
        }
        // With cost limits, a call that sets `max_tokens` to a model with prices reserves what
        // it may cost at most, rather than the flat `default_cost`.
        if engine.rate_limit.limits_cost()
            && let Some(max_tokens) = call.payload.params.max_tokens
        {
            let input = call.payload.estimated_tokens(max_tokens).input;
            if let Some(nanodollars) = model.cost_estimate(input, u64::from(max_tokens)) {
                call.extensions.insert(CostEstimate(nanodollars));
            }
        }
        let retries = RetryPolicy::from(&self.cc.retries);
        let service = crate::stack::model::variant(
            &engine.rate_limit,
            self.variant_name.into(),
            Timeouts::from(&self.cc.timeouts),
            retries,
            (retries.num_retries > 0).then(|| engine.metrics.retries.with(&[&model.name])),
            engine.retry_budget.clone(),
            model.service.clone(),
        );
        let ModelOutput { provider, output } = service.oneshot(call).await?;
        let output = match (pending, output) {
            (None, output) => output,
            (Some(pending), ProviderOutput::Complete(response)) => {
                pending.complete(&provider, &response);
                ProviderOutput::Complete(response)
            }
            (Some(pending), ProviderOutput::Stream { first, rest }) => {
                let rest = pending.stream(&provider, &first, rest);
                ProviderOutput::Stream { first, rest }
            }
        };
        let meta = InferenceMeta {
            inference_id: self.ids.inference_id,
            episode_id: self.ids.episode_id,
            function_name: self.function_name.into(),
            variant_name: self.variant_name.into(),
            model_name: model.name.clone(),
            provider_name: provider,
            is_json: self.function.is_some_and(FunctionInfo::is_json),
            output_check,
            raw_wanted: request.raw_wanted,
        };
        Ok(match output {
            ProviderOutput::Complete(response) => InferenceOutcome::Complete { meta, response },
            ProviderOutput::Stream { first, rest } => {
                InferenceOutcome::Stream { meta, first, rest }
            }
        })
    }

    /// `experimental_chain_of_thought`: the model answers `{"thinking": ..., "response": ...}`
    /// under a schema that wraps the function's; the client gets `response` as the output and
    /// the thinking as a thought block.
    pub(super) async fn run_chain_of_thought(
        &self,
        engine: &Engine,
        system: Option<String>,
        messages: Vec<Message>,
    ) -> Result<InferenceOutcome, Error> {
        let (mut model_request, check) = self.model_request(system, messages)?;
        let response_schema = model_request
            .output_schema
            .clone()
            .unwrap_or_else(|| json!({}));
        model_request.output_schema = Some(json!({
            "type": "object",
            "properties": {
                "thinking": {
                    "type": "string",
                    "description": "Your reasoning, step by step, before the answer."
                },
                "response": response_schema
            },
            "required": ["thinking", "response"],
            "additionalProperties": false
        }));
        let outcome = self.call(engine, model_request, check).await?;
        let InferenceOutcome::Complete { meta, mut response } = outcome else {
            return Err(Error::Internal(
                "a non-streaming call returned a stream".into(),
            ));
        };
        let raw = functions::output_text(&response.content);
        if let Ok(Value::Object(mut answer)) = serde_json::from_str::<Value>(&raw) {
            if let (Some(Value::String(thinking)), Some(inner)) =
                (answer.remove("thinking"), answer.remove("response"))
            {
                response.content = vec![
                    OutputBlock::Thought(crate::model_call::Thought {
                        text: Some(thinking),
                        signature: None,
                    }),
                    OutputBlock::Text(inner.to_string()),
                ];
            }
        }
        // An answer without the two fields is passed on as it is; `parsed` will be null.
        Ok(InferenceOutcome::Complete { meta, response })
    }
}

/// Counts a stream's tokens when it ends (or is dropped): usage values replace each other as
/// they arrive, the last ones are the totals.
pub(super) fn count_stream_tokens(
    metrics: Arc<crate::metrics::GatewayMetrics>,
    stats: Arc<switchyard_layers::ext::InferenceStats>,
    first: &ModelChunk,
    rest: ChunkStream,
) -> ChunkStream {
    // A stream the client left still counts what it reported so far.
    crate::model_call::on_stream_end(first, rest, move |end| {
        let u = end.usage;
        metrics.tokens(u.input_tokens, u.output_tokens);
        stats.set_tokens(u.input_tokens, u.output_tokens);
        stats.set_cost(u.cost.map(crate::cost::Dollars::to_f64));
    })
}

fn edits<'c, C: 'c, T: Clone + From<&'c C>>(
    configured: &'c [C],
    requested: &[RequestEdit<T>],
    variant_name: &str,
) -> ExtraEdits<T> {
    ExtraEdits {
        variant: configured.iter().map(T::from).collect(),
        request: requested
            .iter()
            .filter_map(|e| {
                let target = match &e.filter {
                    RequestEditFilter::Always => EditTarget::Always,
                    RequestEditFilter::Variant(v) if v == variant_name => EditTarget::Always,
                    RequestEditFilter::Variant(_) => return None,
                    RequestEditFilter::ModelProvider { model, provider } => {
                        EditTarget::ModelProvider {
                            model: model.clone(),
                            provider: provider.clone(),
                        }
                    }
                };
                Some(Targeted {
                    target,
                    edit: e.edit.clone(),
                })
            })
            .collect(),
    }
}
