//! Turning an inference request into model calls: resolve the function (or the built-in
//! default function for `model_name`), sample a variant, build the typed model request, call the
//! model with fallback over its providers, and fall back over variants.
//!
//! Both API routes (`/inference` and `/openai/v1/chat/completions`) parse their own wire format
//! into an [`InferenceRequest`] and format the [`InferenceOutcome`] back.

pub mod adaptive;
mod chat_call;
mod dicl;
pub mod ensemble;
pub mod functions;
pub mod input;
pub mod models;
mod request;
mod sampling;
pub mod schema;
mod store;
pub mod stored;
pub mod templates;
mod url_files;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_layers::call::Call;
use switchyard_layers::credentials::CredentialSource;
use switchyard_layers::ext::{ApiKeyPublicId, Tags};
use switchyard_layers::rate_limit::{CostEstimate, EstimateTokens, RateLimitLayer};
use switchyard_layers::retry::RetryPolicy;
use switchyard_layers::timeout::Timeouts;
use tower::ServiceExt;
use uuid::Uuid;

use crate::config::{ChatCompletionConfig, Config, JsonMode, VariantConfig};
use crate::error::Error;
use crate::http_client::HttpClient;
use crate::model_call::{
    ChunkStream, EditTarget, ExtraEdits, InferenceParams, Message, ModelChunk, ModelOutput,
    ModelRequest, OutputBlock, ProviderOutput, Targeted,
};
use crate::providers::relay::RelaySettings;
use crate::stack::model::StackContext;
use functions::{FunctionInfo, OutputCheck, Variant};
use models::ModelTable;
use templates::Templates;

pub(crate) use chat_call::ChatCall;
use chat_call::count_stream_tokens;
pub use request::{
    DEFAULT_FUNCTION_NAME, DynamicToolParams, InferenceMeta, InferenceOutcome, InferenceRequest,
    RequestEdit, RequestEditFilter, RequestSchemas, check_namespace,
};

/// The inference engine: everything `/inference` and the OpenAI routes need (models,
/// functions, templates, embeddings, the rate limit), built once per configuration.
#[derive(Debug)]
pub struct Engine {
    metrics: Arc<crate::metrics::GatewayMetrics>,
    models: ModelTable,
    embeddings: crate::embeddings::EmbeddingModels,
    functions: HashMap<String, FunctionInfo>,
    templates: Templates,
    rate_limit: RateLimitLayer,
    limits: crate::config::gateway::LimitsConfig,
    /// `[gateway.retry_budget]`, shared by every call's retries.
    retry_budget: Option<Arc<switchyard_layers::retry::RetryBudget>>,
    /// Where inferences are stored, when the observability store is on.
    store: Option<Arc<crate::observability::Writer>>,
    /// `[object_storage]`: where stored input files' bytes go.
    files: Arc<crate::observability::files::Files>,
    /// With `fetch_and_encode_input_files_before_inference`: fetches URL files first.
    url_files: Option<url_files::UrlFiles>,
    /// How DICL examples are ranked in the store's database (found out on first use).
    dicl_ranking: tokio::sync::OnceCell<Option<crate::observability::dicl::Ranking>>,
    /// The adaptive experiments' bandits, recomputing sampling probabilities.
    adaptive_tasks: Vec<AbortOnDrop>,
}

/// A background task that ends with its owner.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Engine {
    /// Sets up models, credentials, functions and templates. Every problem is returned at once.
    /// `template_base` is where `{% include %}` may read (when the config allows it).
    pub fn new(
        config: &Config,
        template_base: Option<&std::path::Path>,
        client: HttpClient,
        rate_limit: RateLimitLayer,
        metrics: Arc<crate::metrics::GatewayMetrics>,
        spans: Arc<crate::otlp::SpanSink>,
        health: Arc<crate::health::ProviderHealth>,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let relay = match relay_settings(config) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let context = StackContext {
            upstream: crate::upstream::Upstream::new(client.clone()),
            global_timeout: Duration::from_millis(config.gateway.global_outbound_http_timeout_ms),
            relay,
            metrics: metrics.clone(),
            debug: config.gateway.debug,
            spans,
            health,
            circuit_breaker: config.gateway.circuit_breaker.clone(),
        };
        let embeddings =
            match crate::embeddings::EmbeddingModels::new(config, &context, rate_limit.clone()) {
                Ok(e) => Some(e),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            };
        let models = match ModelTable::new(config, context) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let functions = match functions::build_all(config, template_base) {
            Ok(f) => Some(f),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let retry_budget = config.gateway.retry_budget.as_ref().map(|b| {
            Arc::new(switchyard_layers::retry::RetryBudget::new(
                b.ratio,
                b.min_per_second,
                Duration::from_secs(b.window_s),
                Some(metrics.retries_skipped.with(&["budget"])),
            ))
        });
        match (models, embeddings, functions) {
            (Some(models), Some(embeddings), Some((functions, templates))) if errors.is_empty() => {
                Ok(Self {
                    metrics,
                    models,
                    embeddings,
                    functions,
                    templates,
                    rate_limit,
                    limits: config.gateway.limits.clone(),
                    retry_budget,
                    store: None,
                    files: Arc::default(),
                    url_files: config
                        .gateway
                        .fetch_and_encode_input_files_before_inference
                        .then(|| {
                            url_files::UrlFiles::new(
                                client.clone(),
                                config.gateway.limits.max_request_body_bytes,
                            )
                        }),
                    dicl_ranking: tokio::sync::OnceCell::new(),
                    adaptive_tasks: Vec::new(),
                })
            }
            _ => Err(errors),
        }
    }

    /// Stores every inference from now on in `store` (or none), and starts the bandits of
    /// adaptive experiments on its feedback (`metrics` is `[metrics]`). They stop when this
    /// engine is dropped (a reload starts the new configuration's).
    pub fn set_store(
        &mut self,
        store: Option<Arc<crate::observability::Writer>>,
        metrics: &std::collections::BTreeMap<String, crate::config::functions::MetricConfig>,
    ) {
        self.adaptive_tasks.clear();
        if let Some(writer) = &store {
            for (name, function) in &self.functions {
                for (experiment, probabilities) in function.sampler.adaptive() {
                    let metric = metrics.get(&experiment.metric).cloned();
                    let Some(metric) = metric else { continue };
                    let task = adaptive::Experiment {
                        function: name.clone(),
                        json: function.is_json(),
                        metric_name: experiment.metric.clone(),
                        settings: adaptive::Settings::new(experiment, Some(&metric)),
                        metric,
                        probabilities,
                    };
                    self.adaptive_tasks
                        .push(AbortOnDrop(tokio::spawn(adaptive::keep_updated(
                            writer.pool().clone(),
                            task,
                        ))));
                }
            }
        } else if self
            .functions
            .values()
            .any(|f| !f.sampler.adaptive().is_empty())
        {
            tracing::warn!(
                "adaptive experiments need the observability store's feedback (TENSORZERO_POSTGRES_URL): their candidates are sampled uniformly"
            );
        }
        self.store = store;
    }

    /// Where stored inferences' input files go (`[object_storage]`).
    pub fn set_files(&mut self, files: Arc<crate::observability::files::Files>) {
        self.files = files;
    }

    /// Where stored inferences' input files go.
    pub fn files(&self) -> &Arc<crate::observability::files::Files> {
        &self.files
    }

    /// The observability store's writer, when it is on.
    pub fn store(&self) -> Option<&Arc<crate::observability::Writer>> {
        self.store.as_ref()
    }

    /// The function `name` (the default function too).
    pub fn function(&self, name: &str) -> Option<&FunctionInfo> {
        self.functions.get(name)
    }

    /// Whether `name` is a configured model (not a shorthand).
    pub fn has_model(&self, name: &str) -> bool {
        self.models.is_configured(name)
    }

    /// Whether `name` is a configured model or a well-formed shorthand.
    pub fn knows_model(&self, name: &str) -> bool {
        self.models.knows(name)
    }

    /// Whether `name` is a function (the default function is not one a client names).
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains_key(name) && name != DEFAULT_FUNCTION_NAME
    }

    /// The configured models' names, sorted.
    pub fn model_names(&self) -> Vec<&str> {
        self.models.names()
    }

    /// The functions' names (not the default function), sorted.
    pub fn function_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .functions
            .keys()
            .map(String::as_str)
            .filter(|n| *n != DEFAULT_FUNCTION_NAME)
            .collect();
        names.sort_unstable();
        names
    }

    /// Configured models whose calls go to the relay.
    pub fn relayed_models(&self) -> Vec<&str> {
        self.models.relayed()
    }

    /// The embedding models.
    pub fn embeddings(&self) -> &crate::embeddings::EmbeddingModels {
        &self.embeddings
    }

    /// Runs one inference. A rate-limit refusal comes back as itself, not wrapped: its message
    /// and headers are for the client to act on.
    pub async fn infer(&self, mut request: InferenceRequest) -> Result<InferenceOutcome, Error> {
        let started = tokio::time::Instant::now();
        let stats = request.stats.clone();
        self.count_request(&request);
        if let Some(url_files) = &self.url_files {
            url_files.inline(&mut request.input).await?;
        }
        let storing = match &self.store {
            Some(writer) if !request.dryrun => {
                let recorder = Arc::new(crate::observability::Recorder::new(self.files.clone()));
                request.recorder = Some(recorder.clone());
                Some(store::Pending::new(
                    writer.clone(),
                    recorder,
                    &self.files,
                    &request,
                    started,
                ))
            }
            _ => None,
        };
        let result = self.infer_inner(request).await.map_err(|e| {
            if e.is_rate_limit() {
                e.into_unwrapped()
            } else {
                e
            }
        });
        Ok(match result? {
            InferenceOutcome::Complete { meta, response } => {
                self.record_overhead(&meta, started.elapsed(), &stats);
                if let Some(pending) = storing {
                    pending.complete(self, &meta, &response).await;
                }
                let usage = response.usage;
                self.metrics.tokens(usage.input_tokens, usage.output_tokens);
                stats.set_tokens(usage.input_tokens, usage.output_tokens);
                stats.set_cost(usage.cost.map(crate::cost::Dollars::to_f64));
                InferenceOutcome::Complete { meta, response }
            }
            InferenceOutcome::Stream { meta, first, rest } => {
                // For a stream, the overhead is the time to its first chunk.
                let elapsed = started.elapsed();
                stats.set_first_chunk(elapsed);
                self.metrics
                    .time_to_first_chunk
                    .with(&[&meta.function_name, &meta.variant_name])
                    .observe(elapsed.as_secs_f64());
                self.record_overhead(&meta, elapsed, &stats);
                let rest = count_stream_tokens(self.metrics.clone(), stats, &first, rest);
                let rest = match storing {
                    Some(pending) => pending.stream(self, &meta, elapsed, &first, rest),
                    None => rest,
                };
                InferenceOutcome::Stream { meta, first, rest }
            }
        })
    }

    /// `tensorzero_requests_total` and `tensorzero_inferences_total`, as the TensorZero Gateway
    /// counts them: once per request, before it runs, labelled with the function (the default
    /// function for `model_name`) and, for `model_name` calls, the model.
    fn count_request(&self, request: &InferenceRequest) {
        let function = match (&request.function_name, &request.model_name) {
            (Some(f), _) if self.functions.contains_key(f) => f.as_str(),
            (Some(_), _) => return,
            (None, Some(_)) => DEFAULT_FUNCTION_NAME,
            (None, None) => return,
        };
        let model = match &request.model_name {
            Some(m) if request.function_name.is_none() && self.models.knows(m) => m.as_str(),
            Some(_) if request.function_name.is_none() => return,
            _ => "",
        };
        let labels = ["inference", function, model];
        self.metrics.requests.with(&labels).inc();
        self.metrics.inferences.with(&labels).inc();
    }

    /// The TensorZero overhead histogram (time minus provider wait) and the layer split.
    fn record_overhead(
        &self,
        meta: &InferenceMeta,
        elapsed: Duration,
        stats: &switchyard_layers::ext::InferenceStats,
    ) {
        let waited = stats.provider_wait();
        let rate_limit = stats.rate_limit();
        let overhead = elapsed.saturating_sub(waited);
        self.metrics
            .overhead
            .with(&[&meta.function_name, &meta.variant_name])
            .observe(overhead.as_secs_f64());
        let layers = &self.metrics.layer_duration;
        layers.with(&["provider"]).observe(waited.as_secs_f64());
        layers
            .with(&["rate_limit"])
            .observe(rate_limit.as_secs_f64());
        layers
            .with(&["gateway"])
            .observe(overhead.saturating_sub(rate_limit).as_secs_f64());
    }

    /// The bounds of `[gateway.limits]` on what one request may carry: tags feed rate-limit
    /// buckets and tools are compiled, so both are counted and measured before anything else.
    fn check_limits(&self, request: &InferenceRequest) -> Result<(), Error> {
        let l = &self.limits;
        let refuse = |what: String, setting: &str| {
            Err(Error::InvalidRequest(format!(
                "{what}; raise `gateway.limits.{setting}` if you need more"
            )))
        };
        if request.tags.len() > l.max_tags {
            return refuse(
                format!(
                    "{} tags is more than the {} allowed",
                    request.tags.len(),
                    l.max_tags
                ),
                "max_tags",
            );
        }
        for (key, value) in &request.tags {
            if key.starts_with("tensorzero::") {
                return Err(Error::InvalidRequest(format!(
                    "Tag name cannot start with 'tensorzero::': `{key}` (that prefix is reserved for the gateway's own tags)"
                )));
            }
            if key.len() > l.max_tag_key_bytes {
                return refuse(
                    format!(
                        "a tag name of {} bytes is longer than the {} allowed",
                        key.len(),
                        l.max_tag_key_bytes
                    ),
                    "max_tag_key_bytes",
                );
            }
            if value.len() > l.max_tag_value_bytes {
                return refuse(
                    format!(
                        "the value of tag `{key}` ({} bytes) is longer than the {} allowed",
                        value.len(),
                        l.max_tag_value_bytes
                    ),
                    "max_tag_value_bytes",
                );
            }
        }
        let tools = request.tools.additional_tools.len();
        if tools > l.max_tools {
            return refuse(
                format!(
                    "{tools} tools is more than the {} allowed in one request",
                    l.max_tools
                ),
                "max_tools",
            );
        }
        Ok(())
    }

    /// Whether `request` brings schemas of its own (tools, an output schema for a JSON
    /// function) that must be compiled before it runs; and whether its function is JSON.
    fn brings_schemas(&self, request: &InferenceRequest) -> (bool, bool) {
        let json = request
            .function_name
            .as_ref()
            .and_then(|name| self.functions.get(name))
            .is_some_and(FunctionInfo::is_json);
        let brings =
            !request.tools.additional_tools.is_empty() || (json && request.output_schema.is_some());
        (brings, json)
    }

    /// `request` with its own schemas compiled, on the blocking pool.
    async fn with_schemas(
        request: InferenceRequest,
        json: bool,
    ) -> Result<InferenceRequest, Error> {
        tokio::task::spawn_blocking(move || {
            let schemas = RequestSchemas::compile(&request, json)?;
            Ok(InferenceRequest { schemas, ..request })
        })
        .await
        .map_err(|e| Error::Internal(format!("compiling the request's schemas failed: {e}")))?
    }

    async fn infer_inner(&self, request: InferenceRequest) -> Result<InferenceOutcome, Error> {
        self.check_limits(&request)?;
        let mut request = match self.brings_schemas(&request) {
            // Boxed: the compiling future holds the request twice over, and inline it would
            // make every request's future that much larger.
            (true, json) => Box::pin(Self::with_schemas(request, json)).await?,
            (false, _) => request,
        };
        if let Some(id) = &request.api_key_public_id {
            // Set by the gateway after the check above, so clients cannot forge it.
            request
                .tags
                .insert("tensorzero::api_key_public_id".into(), id.to_string());
        }
        let episode_id = match request.episode_id {
            Some(id) => check_episode_id(id)?,
            None => Uuid::now_v7(),
        };
        let ids = Ids {
            inference_id: Uuid::now_v7(),
            episode_id,
        };
        match (&request.function_name, &request.model_name) {
            (Some(_), Some(_)) => Err(Error::InvalidInferenceTarget(
                "Only one of `function_name` or `model_name` can be provided".into(),
            )),
            (None, None) => Err(Error::InvalidInferenceTarget(
                "Either `function_name` or `model_name` must be provided".into(),
            )),
            (None, Some(model)) => {
                if request.variant_name.is_some() {
                    return Err(Error::InvalidInferenceTarget(
                        "`variant_name` cannot be used with `model_name`; it pins a variant of a function".into(),
                    ));
                }
                // An unknown model is the client's mistake: say so before any variant runs.
                self.models.get(model)?;
                let model = model.clone();
                let cc = default_variant(&model);
                let (system, messages) = request.input.untemplated()?;
                let call = ChatCall {
                    request: &request,
                    function: None,
                    function_name: DEFAULT_FUNCTION_NAME,
                    variant_name: &model,
                    cc: &cc,
                    ids,
                };
                call.run(self, system, messages)
                    .await
                    .map_err(|e| Error::AllVariantsFailed(vec![(model.clone(), e)]))
            }
            (Some(function_name), None) => {
                let function = self
                    .functions
                    .get(function_name)
                    .ok_or_else(|| Error::UnknownFunction(function_name.clone()))?;
                request
                    .input
                    .validate(&function.schemas, |name| function.has_template(name))?;
                let variants = &function.variants;
                if let Some(pinned) = &request.variant_name {
                    let variant = variants.get(pinned).ok_or_else(|| Error::UnknownVariant {
                        function: function_name.clone(),
                        variant: pinned.clone(),
                    })?;
                    // A pinned variant runs alone: no sampling, no fallback.
                    return self
                        .run_variant(&request, function, function_name, pinned, variant, ids)
                        .await;
                }
                if variants.is_empty() {
                    return Err(Error::InvalidRequest(format!(
                        "function `{function_name}` has no variants; add one under [functions.{function_name}.variants]"
                    )));
                }
                let plan = function.sampler.plan(request.namespace.as_deref());
                if plan.is_empty() {
                    return Err(Error::InvalidRequest(format!(
                        "function `{function_name}` has no variant to sample{}: its variants have weight 0 or belong to another namespace; pin one with `variant_name`",
                        request
                            .namespace
                            .as_deref()
                            .map(|ns| format!(" in namespace `{ns}`"))
                            .unwrap_or_default()
                    )));
                }
                let mut order = plan.order(function_name, episode_id);
                if plan.is_adaptive()
                    && let Some(store) = &self.store
                {
                    let episode = Episode {
                        id: episode_id,
                        store_draw: !request.dryrun,
                    };
                    self.keep_episode_variant(store, plan, function_name, episode, &mut order)
                        .await;
                }
                let mut errors = Vec::new();
                for name in order {
                    let variant = &variants[name];
                    match self
                        .run_variant(&request, function, function_name, name, variant, ids)
                        .await
                    {
                        Ok(outcome) => return Ok(outcome),
                        Err(e) if e.is_rate_limit() => {
                            // Every variant would be limited the same way: stop here.
                            errors.push((name.to_owned(), e));
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(function = %function_name, variant = %name, error = %e, "variant failed");
                            errors.push((name.to_owned(), e));
                        }
                    }
                }
                Err(Error::AllVariantsFailed(errors))
            }
        }
    }

    /// Moves the variant the episode ran first in this adaptive experiment to the front of
    /// `order` (storing this draw when the episode is new, unless it is a dryrun). Without an
    /// answer from Postgres within [`adaptive::EPISODE_LOOKUP_TIMEOUT`], the draw stands
    /// (logged).
    async fn keep_episode_variant<'p>(
        &self,
        store: &crate::observability::Writer,
        plan: &'p sampling::SamplingPlan,
        function_name: &str,
        episode: Episode,
        order: &mut Vec<&'p str>,
    ) {
        let episode_id = episode.id;
        let Some(drawn) = order.first().copied() else {
            return;
        };
        let stored = tokio::time::timeout(
            adaptive::EPISODE_LOOKUP_TIMEOUT,
            adaptive::episode_variant(
                store.pool(),
                function_name,
                episode_id,
                drawn,
                episode.store_draw,
            ),
        )
        .await
        .map_err(|_| "no answer within 500 ms".to_owned())
        .and_then(|r| r);
        match stored {
            Ok(stored) if stored == drawn => {}
            Ok(stored) => match order.iter().position(|n| *n == stored) {
                Some(at) if plan.is_candidate(&stored) => {
                    let name = order.remove(at);
                    order.insert(0, name);
                }
                _ => tracing::debug!(
                    function = %function_name,
                    episode_id = %episode_id,
                    variant = %stored,
                    "the episode's stored variant is no longer a candidate; using this draw"
                ),
            },
            Err(e) => {
                if adaptive::LOOKUP_WARNING.due() {
                    tracing::warn!(
                        function = %function_name,
                        error = %e,
                        "adaptive experiment: the episode's variant could not be read or stored; using this draw (logged once a second at most)"
                    );
                }
            }
        }
    }

    async fn run_variant(
        &self,
        request: &InferenceRequest,
        function: &FunctionInfo,
        function_name: &str,
        variant_name: &str,
        variant: &Variant,
        ids: Ids,
    ) -> Result<InferenceOutcome, Error> {
        let ensemble = || ensemble::Ensemble {
            engine: self,
            request,
            function,
            function_name,
            variant_name,
            ids,
        };
        match &variant.config {
            VariantConfig::ChatCompletion(cc) => {
                let (system, messages) = variant
                    .prompt
                    .render(&request.input, Some(&self.templates))?;
                let call = ChatCall {
                    request,
                    function: Some(function),
                    function_name,
                    variant_name,
                    cc,
                    ids,
                };
                call.run(self, system, messages).await
            }
            VariantConfig::ExperimentalChainOfThought(cc) => {
                if request.stream {
                    return Err(Error::InvalidRequest(format!(
                        "variant `{variant_name}` is an `experimental_chain_of_thought` variant, which does not stream; send `stream: false` or pin another variant"
                    )));
                }
                let (system, messages) = variant
                    .prompt
                    .render(&request.input, Some(&self.templates))?;
                let call = ChatCall {
                    request,
                    function: Some(function),
                    function_name,
                    variant_name,
                    cc,
                    ids,
                };
                // The rarer variant types run boxed: their futures are kilobytes, and inline
                // they would make every chat_completion request's future (and each move of
                // it) that large too.
                Box::pin(call.run_chain_of_thought(self, system, messages)).await
            }
            VariantConfig::ExperimentalBestOfN(config) => {
                Box::pin(ensemble().best_of_n(config, &variant.prompt)).await
            }
            VariantConfig::ExperimentalMixtureOfN(config) => {
                Box::pin(ensemble().mixture_of_n(config, &variant.prompt)).await
            }
            VariantConfig::ExperimentalDynamicInContextLearning(_) => {
                Box::pin(self.run_dicl(
                    request,
                    function,
                    function_name,
                    variant_name,
                    variant,
                    ids,
                ))
                .await
            }
        }
    }
}

/// `[gateway.relay]` with a `gateway_url`, its key read now: a missing `env::` key stops
/// start-up, as for providers.
fn relay_settings(config: &Config) -> Result<Option<RelaySettings>, String> {
    let Some(relay) = config.gateway.relay.as_ref() else {
        return Ok(None);
    };
    let Some(url) = relay.gateway_url.as_ref() else {
        return Ok(None);
    };
    let key = match &relay.api_key_location {
        None => CredentialSource::None,
        Some(location) => crate::key_sources::load(location).map_err(|e| {
            format!(
                "API key missing for provider {}: {e}",
                crate::providers::relay::RELAY_PROVIDER
            )
        })?,
    };
    Ok(Some(RelaySettings {
        gateway_url: url.clone(),
        key,
    }))
}

/// The ids of one inference.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ids {
    pub inference_id: Uuid,
    pub episode_id: Uuid,
}

/// The variant the default function runs for `model_name`.
fn default_variant(model: &str) -> ChatCompletionConfig {
    ChatCompletionConfig {
        model: model.to_owned(),
        weight: None,
        namespace: None,
        system_template: None,
        user_template: None,
        assistant_template: None,
        input_wrappers: Default::default(),
        templates: Default::default(),
        system_instructions: None,
        temperature: None,
        top_p: None,
        max_tokens: None,
        presence_penalty: None,
        frequency_penalty: None,
        seed: None,
        json_mode: None,
        stop_sequences: None,
        reasoning_effort: None,
        service_tier: None,
        thinking_budget_tokens: None,
        verbosity: None,
        retries: Default::default(),
        timeouts: Default::default(),
        extra_body: Vec::new(),
        extra_headers: Vec::new(),
    }
}

/// Episode ids are UUIDv7 so that they sort by time; anything else is refused.
/// An episode as an adaptive experiment sees it: which one, and whether this inference may
/// store the episode's first draw.
#[derive(Clone, Copy, Debug)]
struct Episode {
    id: Uuid,
    store_draw: bool,
}

fn check_episode_id(id: Uuid) -> Result<Uuid, Error> {
    if id.get_version_num() != 7 {
        return Err(Error::InvalidRequest(format!(
            "Invalid Episode ID: `{id}` is a version {} UUID; episode ids must be UUIDv7 (take one from an earlier response)",
            id.get_version_num()
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampling::uniform_draw;

    #[test]
    fn draws_are_uniform() {
        let mut buckets = [0u32; 10];
        for i in 0..10_000u128 {
            let d = uniform_draw("f", Uuid::from_u128(i), 0);
            assert!((0.0..1.0).contains(&d));
            buckets[(d * 10.0) as usize] += 1;
        }
        // Each bucket expects 1000 (sd ~30).
        assert!(
            buckets.iter().all(|b| (880..1120).contains(b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn episode_ids_must_be_v7() {
        assert!(check_episode_id(Uuid::new_v4()).is_err());
        assert!(check_episode_id(Uuid::now_v7()).is_ok());
    }
}
