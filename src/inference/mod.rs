//! Turning an inference request into model calls: resolve the function (or the built-in
//! default function for `model_name`), sample a variant, build the typed model request, call the
//! model with fallback over its providers, and fall back over variants.
//!
//! Both API routes (`/inference` and `/openai/v1/chat/completions`) parse their own wire format
//! into an [`InferenceRequest`] and format the [`InferenceOutcome`] back.

pub mod models;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use switchyard_layers::call::Call;
use switchyard_layers::credentials::CredentialSource;
use switchyard_layers::ext::{ApiKeyPublicId, DynamicCredentials, Tags};
use switchyard_layers::rate_limit::RateLimitLayer;
use switchyard_layers::retry::RetryPolicy;
use switchyard_layers::timeout::Timeouts;
use tower::ServiceExt;
use uuid::Uuid;

use crate::config::{
    ChatCompletionConfig, Config, FunctionConfig, JsonMode, ToolChoiceConfig, VariantConfig,
};
use crate::error::Error;
use crate::http_client::HttpClient;
use models::{ModelTable, RelaySettings, StackContext};
use types::{
    BodyEdit, ChunkStream, EditTarget, ExtraEdits, HeaderEdit, InferenceParams, Message,
    ModelChunk, ModelOutput, ModelRequest, ModelResponse, ProviderOutput, Targeted, ToolChoice,
    ToolConfig, ToolDef,
};

/// The name the built-in function of `model_name` calls is stored under.
pub const DEFAULT_FUNCTION_NAME: &str = "tensorzero::default";

/// What a request-time `extra_body`/`extra_headers` entry applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEditFilter {
    /// Every model call.
    Always,
    /// Calls made by this variant.
    Variant(String),
    /// Calls to this model (and provider).
    ModelProvider {
        /// The model.
        model: String,
        /// The provider, or all of them.
        provider: Option<String>,
    },
}

/// A request-time edit with its filter.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestEdit<T> {
    /// What it applies to.
    pub filter: RequestEditFilter,
    /// The edit.
    pub edit: T,
}

/// Tool settings sent with the request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DynamicToolParams {
    /// Restricts the function's configured tools to these names.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools defined in the request.
    pub additional_tools: Vec<ToolDef>,
    /// Overrides the function's tool choice.
    pub tool_choice: Option<ToolChoice>,
    /// Overrides the function's setting.
    pub parallel_tool_calls: Option<bool>,
}

/// A request in the gateway's own terms, whichever route it came from.
#[derive(Clone, Debug, Default)]
pub struct InferenceRequest {
    /// The function to run.
    pub function_name: Option<String>,
    /// The model to call through the default function.
    pub model_name: Option<String>,
    /// A pinned variant.
    pub variant_name: Option<String>,
    /// The episode this inference belongs to (a new one when absent).
    pub episode_id: Option<Uuid>,
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Stream the answer.
    pub stream: bool,
    /// Inference-time parameters (they override the variant's).
    pub params: InferenceParams,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Tools sent with the request.
    pub tools: DynamicToolParams,
    /// An output schema for json functions (or OpenAI `response_format`).
    pub output_schema: Option<Value>,
    /// Dynamic credentials.
    pub credentials: DynamicCredentials,
    /// Request-time `extra_body`.
    pub extra_body: Vec<RequestEdit<BodyEdit>>,
    /// Request-time `extra_headers`.
    pub extra_headers: Vec<RequestEdit<HeaderEdit>>,
    /// The public id of the API key that authenticated the request, when auth is on.
    pub api_key_public_id: Option<Arc<str>>,
}

/// Who answered, for the response and the log.
#[derive(Clone, Debug)]
pub struct InferenceMeta {
    /// This inference.
    pub inference_id: Uuid,
    /// Its episode.
    pub episode_id: Uuid,
    /// The function (`tensorzero::default` for `model_name`).
    pub function_name: Arc<str>,
    /// The variant used (the model name for the default function).
    pub variant_name: Arc<str>,
    /// The model called.
    pub model_name: Arc<str>,
    /// The provider that answered.
    pub provider_name: Arc<str>,
    /// A json function: the answer is `output {raw, parsed}`.
    pub is_json: bool,
}

/// What an inference produced.
pub enum InferenceOutcome {
    /// A complete answer.
    Complete {
        /// Who answered.
        meta: InferenceMeta,
        /// The answer.
        response: ModelResponse,
    },
    /// A stream whose first chunk has arrived.
    Stream {
        /// Who answered.
        meta: InferenceMeta,
        /// The first chunk.
        first: ModelChunk,
        /// The rest.
        rest: ChunkStream,
    },
}

/// A function, with what start-up resolved for it (tool definitions, output schema).
#[derive(Debug)]
struct FunctionInfo {
    config: FunctionConfig,
    tools: Vec<ToolDef>,
    output_schema: Option<Value>,
}

/// Everything inference needs, built once at start-up.
#[derive(Debug)]
pub struct Gateway {
    models: ModelTable,
    functions: HashMap<String, FunctionInfo>,
    rate_limit: RateLimitLayer,
}

impl Gateway {
    /// Sets up models, credentials and functions. Every problem is returned at once.
    pub fn new(
        config: &Config,
        client: HttpClient,
        rate_limit: RateLimitLayer,
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
            client,
            global_timeout: Duration::from_millis(config.gateway.global_outbound_http_timeout_ms),
            relay,
        };
        let models = match ModelTable::new(config, context) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let mut functions = HashMap::new();
        for (name, function) in &config.functions {
            match function_info(config, function) {
                Ok(info) => {
                    functions.insert(name.clone(), info);
                }
                Err(e) => errors.push(format!("function `{name}`: {e}")),
            }
        }
        match models {
            Some(models) if errors.is_empty() => Ok(Self {
                models,
                functions,
                rate_limit,
            }),
            _ => Err(errors),
        }
    }

    /// Configured models whose calls go to the relay.
    pub fn relayed_models(&self) -> Vec<&str> {
        self.models.relayed()
    }

    /// Runs one inference. A rate-limit refusal comes back as itself, not wrapped: its message
    /// and headers are for the client to act on.
    pub async fn infer(&self, request: InferenceRequest) -> Result<InferenceOutcome, Error> {
        self.infer_inner(request).await.map_err(|e| {
            if e.is_rate_limit() {
                e.into_unwrapped()
            } else {
                e
            }
        })
    }

    async fn infer_inner(&self, request: InferenceRequest) -> Result<InferenceOutcome, Error> {
        for key in request.tags.keys() {
            if key.starts_with("tensorzero::") {
                return Err(Error::InvalidRequest(format!(
                    "Tag name cannot start with 'tensorzero::': `{key}` (that prefix is reserved for the gateway's own tags)"
                )));
            }
        }
        let mut request = request;
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
        let inference_id = Uuid::now_v7();
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
                let variant = default_variant(&model);
                let ids = Ids {
                    inference_id,
                    episode_id,
                };
                self.run_variant(&request, None, DEFAULT_FUNCTION_NAME, &model, &variant, ids)
                    .await
                    .map_err(|e| Error::AllVariantsFailed(vec![(model.clone(), e)]))
            }
            (Some(function_name), None) => {
                let function = self
                    .functions
                    .get(function_name)
                    .ok_or_else(|| Error::UnknownFunction(function_name.clone()))?;
                let ids = Ids {
                    inference_id,
                    episode_id,
                };
                let variants = function.config.variants();
                if let Some(pinned) = &request.variant_name {
                    let variant = variants.get(pinned).ok_or_else(|| Error::UnknownVariant {
                        function: function_name.clone(),
                        variant: pinned.clone(),
                    })?;
                    return self
                        .run_variant(
                            &request,
                            Some(function),
                            function_name,
                            pinned,
                            variant,
                            ids,
                        )
                        .await;
                }
                if variants.is_empty() {
                    return Err(Error::InvalidRequest(format!(
                        "function `{function_name}` has no variants; add one under [functions.{function_name}.variants]"
                    )));
                }
                let mut errors = Vec::new();
                for name in sampling_order(variants) {
                    let variant = &variants[name];
                    match self
                        .run_variant(&request, Some(function), function_name, name, variant, ids)
                        .await
                    {
                        Ok(outcome) => return Ok(outcome),
                        Err(e) if e.is_rate_limit() => {
                            // Every variant would be limited the same way: stop here.
                            errors.push((name.clone(), e));
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(function = %function_name, variant = %name, error = %e, "variant failed");
                            errors.push((name.clone(), e));
                        }
                    }
                }
                Err(Error::AllVariantsFailed(errors))
            }
        }
    }

    async fn run_variant(
        &self,
        request: &InferenceRequest,
        function: Option<&FunctionInfo>,
        function_name: &str,
        variant_name: &str,
        variant: &VariantConfig,
        ids: Ids,
    ) -> Result<InferenceOutcome, Error> {
        let VariantConfig::ChatCompletion(cc) = variant else {
            return Err(Error::NotSupported(format!(
                "variant `{variant_name}` is of type `{}`; only `chat_completion` variants run so far",
                variant.type_name()
            )));
        };
        if cc.system_template.is_some()
            || cc.user_template.is_some()
            || cc.assistant_template.is_some()
            || cc.system_instructions.is_some()
        {
            return Err(Error::NotSupported(format!(
                "variant `{variant_name}` uses prompt templates, which are not rendered yet"
            )));
        }
        if let Some(f) = function {
            let schemas = f.config.schema_files();
            if schemas.iter().any(|(k, _)| *k != "output_schema") {
                return Err(Error::NotSupported(format!(
                    "function `{function_name}` has input schemas, which are not validated yet"
                )));
            }
        }
        let is_json = matches!(function.map(|f| &f.config), Some(FunctionConfig::Json(_)));
        let model = self.models.get(&cc.model)?;
        let mut call =
            Call::new(self.model_request(request, function, variant_name, cc, is_json)?);
        call.extensions.insert(request.credentials.clone());
        call.extensions.insert(Tags(Arc::new(request.tags.clone())));
        if let Some(id) = &request.api_key_public_id {
            call.extensions.insert(ApiKeyPublicId(id.clone()));
        }
        let service = crate::stack::variant(
            &self.rate_limit,
            variant_name.into(),
            Timeouts::from(&cc.timeouts),
            RetryPolicy::from(&cc.retries),
            model.service.clone(),
        );
        let ModelOutput { provider, output } = service.oneshot(call).await?;
        let meta = InferenceMeta {
            inference_id: ids.inference_id,
            episode_id: ids.episode_id,
            function_name: function_name.into(),
            variant_name: variant_name.into(),
            model_name: model.name.clone(),
            provider_name: provider,
            is_json,
        };
        Ok(match output {
            ProviderOutput::Complete(response) => InferenceOutcome::Complete { meta, response },
            ProviderOutput::Stream { first, rest } => {
                InferenceOutcome::Stream { meta, first, rest }
            }
        })
    }

    fn model_request(
        &self,
        request: &InferenceRequest,
        function: Option<&FunctionInfo>,
        variant_name: &str,
        cc: &ChatCompletionConfig,
        is_json: bool,
    ) -> Result<ModelRequest, Error> {
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
        };
        let mut params = request.params.clone().or(&variant_params);
        let output_schema = request
            .output_schema
            .clone()
            .or_else(|| function.and_then(|f| f.output_schema.clone()));
        if is_json && params.json_mode.is_none() {
            params.json_mode = Some(JsonMode::Strict);
        }
        Ok(ModelRequest {
            system: request.system.clone(),
            messages: request.messages.clone(),
            params,
            tools: tool_config(function, &request.tools)?,
            output_schema,
            stream: request.stream,
            extra_body: edits(&cc.extra_body, &request.extra_body, variant_name),
            extra_headers: edits(&cc.extra_headers, &request.extra_headers, variant_name),
        })
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
        Some(location) => crate::credentials::load(location).map_err(|e| {
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

#[derive(Clone, Copy)]
struct Ids {
    inference_id: Uuid,
    episode_id: Uuid,
}

/// The variant the default function runs for `model_name`.
fn default_variant(model: &str) -> VariantConfig {
    VariantConfig::ChatCompletion(ChatCompletionConfig {
        model: model.to_owned(),
        weight: None,
        system_template: None,
        user_template: None,
        assistant_template: None,
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
    })
}

/// Variants with a positive weight, sampled by weight without replacement; then the ones with
/// weight 0 (fallbacks), in name order. With no weights set at all, every variant is equally
/// likely.
fn sampling_order(variants: &BTreeMap<String, VariantConfig>) -> Vec<&String> {
    let any_weight = variants.values().any(|v| v.weight().is_some());
    let mut weighted: Vec<(&String, f64)> = variants
        .iter()
        .map(|(name, v)| {
            (
                name,
                if any_weight {
                    v.weight().unwrap_or(0.0)
                } else {
                    1.0
                },
            )
        })
        .collect();
    let mut order = Vec::with_capacity(weighted.len());
    let mut rng = rand::rng();
    loop {
        let total: f64 = weighted
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(_, w)| w)
            .sum();
        if total <= 0.0 {
            break;
        }
        let mut pick = rng.random_range(0.0..total);
        let index = weighted
            .iter()
            .position(|(_, w)| {
                if *w <= 0.0 {
                    return false;
                }
                if pick < *w {
                    return true;
                }
                pick -= w;
                false
            })
            .unwrap_or_else(|| {
                weighted
                    .iter()
                    .rposition(|(_, w)| *w > 0.0)
                    .expect("total > 0")
            });
        order.push(weighted.remove(index).0);
    }
    order.extend(weighted.into_iter().map(|(name, _)| name));
    order
}

fn function_info(config: &Config, function: &FunctionConfig) -> Result<FunctionInfo, String> {
    let read_json = |path: &std::path::Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))
    };
    let (tools, output_schema) = match function {
        FunctionConfig::Chat(chat) => {
            let mut tools = Vec::new();
            for name in &chat.tools {
                let tool = config
                    .tools
                    .get(name)
                    .ok_or_else(|| format!("tool `{name}` is not defined"))?;
                tools.push(ToolDef {
                    name: tool.name.clone().unwrap_or_else(|| name.clone()),
                    description: tool.description.clone(),
                    parameters: read_json(&tool.parameters)?,
                    strict: tool.strict,
                });
            }
            (tools, None)
        }
        FunctionConfig::Json(json) => (
            Vec::new(),
            json.output_schema.as_deref().map(read_json).transpose()?,
        ),
    };
    Ok(FunctionInfo {
        config: function.clone(),
        tools,
        output_schema,
    })
}

fn tool_config(
    function: Option<&FunctionInfo>,
    dynamic: &DynamicToolParams,
) -> Result<Option<ToolConfig>, Error> {
    let (configured, choice, parallel) = match function.map(|f| &f.config) {
        Some(FunctionConfig::Chat(chat)) => (
            function.map(|f| f.tools.as_slice()).unwrap_or_default(),
            match &chat.tool_choice {
                ToolChoiceConfig::None => ToolChoice::None,
                ToolChoiceConfig::Auto => ToolChoice::Auto,
                ToolChoiceConfig::Required => ToolChoice::Required,
                ToolChoiceConfig::Specific(t) => ToolChoice::Specific(t.clone()),
            },
            chat.parallel_tool_calls,
        ),
        _ => (&[][..], ToolChoice::Auto, None),
    };
    let mut tools: Vec<ToolDef> = match &dynamic.allowed_tools {
        None => configured.to_vec(),
        Some(allowed) => {
            for name in allowed {
                if !configured.iter().any(|t| &t.name == name) {
                    return Err(Error::InvalidRequest(format!(
                        "`allowed_tools` names `{name}`, which is not a tool of this function"
                    )));
                }
            }
            configured
                .iter()
                .filter(|t| allowed.contains(&t.name))
                .cloned()
                .collect()
        }
    };
    for tool in &dynamic.additional_tools {
        if tools.iter().any(|t| t.name == tool.name) {
            return Err(Error::InvalidRequest(format!(
                "two tools are named `{}`; tool names must be unique in one request",
                tool.name
            )));
        }
        tools.push(tool.clone());
    }
    let tool_choice = dynamic.tool_choice.clone().unwrap_or(choice);
    if let ToolChoice::Specific(name) = &tool_choice {
        if !tools.iter().any(|t| &t.name == name) {
            return Err(Error::InvalidRequest(format!(
                "`tool_choice` names `{name}`, but no tool of that name is available"
            )));
        }
    }
    if tools.is_empty() {
        return Ok(None);
    }
    Ok(Some(ToolConfig {
        tools,
        tool_choice,
        parallel_tool_calls: dynamic.parallel_tool_calls.or(parallel),
    }))
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

/// Episode ids are UUIDv7 so that they sort by time; anything else is refused.
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

    fn variant(weight: Option<f64>) -> VariantConfig {
        match default_variant("m") {
            VariantConfig::ChatCompletion(mut c) => {
                c.weight = weight;
                VariantConfig::ChatCompletion(c)
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn zero_weight_variants_come_last() {
        let variants: BTreeMap<String, VariantConfig> = [
            ("a".to_owned(), variant(Some(0.0))),
            ("b".to_owned(), variant(Some(1.0))),
            ("c".to_owned(), variant(None)),
        ]
        .into_iter()
        .collect();
        for _ in 0..20 {
            let order = sampling_order(&variants);
            assert_eq!(order, vec!["b", "a", "c"]);
        }
    }

    #[test]
    fn weights_shape_the_first_pick() {
        let variants: BTreeMap<String, VariantConfig> = [
            ("a".to_owned(), variant(Some(1.0))),
            ("b".to_owned(), variant(Some(3.0))),
        ]
        .into_iter()
        .collect();
        let b_first = (0..4000)
            .filter(|_| sampling_order(&variants)[0] == "b")
            .count();
        // Expected 3000; the bound is many standard deviations (~27) wide.
        assert!((2700..3300).contains(&b_first), "{b_first}");
    }

    #[test]
    fn episode_ids_must_be_v7() {
        assert!(check_episode_id(Uuid::new_v4()).is_err());
        assert!(check_episode_id(Uuid::now_v7()).is_ok());
    }
}
