//! The model table: configured models (providers and credentials set up at start-up) and
//! shorthand models (`openai::gpt-4o-mini`), built per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ProviderType, ProviderTypesConfig, TimeoutsConfig};
use crate::error::Error;
use crate::inference::types::{ModelRequest, ProviderOutput};
use crate::providers::{CallContext, ModelProvider};

/// A model: its providers in `routing` order.
#[derive(Debug)]
pub struct Model {
    /// The gateway's name for it.
    pub name: Arc<str>,
    /// Providers, tried in order.
    pub providers: Vec<ModelProvider>,
    /// Limits on one call of the whole model.
    pub timeouts: TimeoutsConfig,
    /// Call providers directly even in relay mode.
    pub skip_relay: bool,
}

/// All configured models, and how to build shorthand ones.
#[derive(Debug)]
pub struct ModelTable {
    configured: HashMap<String, Arc<Model>>,
    provider_types: ProviderTypesConfig,
}

impl ModelTable {
    /// Sets up every configured model. Returns every credential or endpoint problem at once.
    pub fn new(config: &Config) -> Result<Self, Vec<String>> {
        let mut configured = HashMap::new();
        let mut errors = Vec::new();
        for (name, model) in &config.models {
            let mut providers = Vec::new();
            for provider_name in &model.routing {
                let Some(provider) = model.providers.get(provider_name) else {
                    continue;
                };
                match ModelProvider::from_config(
                    name,
                    provider_name,
                    provider,
                    &config.provider_types,
                ) {
                    Ok(p) => providers.push(p),
                    Err(e) => errors.push(e.0),
                }
            }
            configured.insert(
                name.clone(),
                Arc::new(Model {
                    name: name.as_str().into(),
                    providers,
                    timeouts: model.timeouts.clone(),
                    skip_relay: model.skip_relay,
                }),
            );
        }
        if errors.is_empty() {
            Ok(Self {
                configured,
                provider_types: config.provider_types.clone(),
            })
        } else {
            Err(errors)
        }
    }

    /// A configured model, or a shorthand one built now. Configured names win.
    pub fn get(&self, name: &str) -> Result<Arc<Model>, Error> {
        if let Some(m) = self.configured.get(name) {
            return Ok(m.clone());
        }
        if let Some((prefix, model)) = name.split_once("::") {
            if let Some(t) = ProviderType::from_shorthand(prefix).filter(|_| !model.is_empty()) {
                return Ok(Arc::new(Model {
                    name: name.into(),
                    providers: vec![ModelProvider::shorthand(
                        name,
                        t,
                        model,
                        &self.provider_types,
                    )],
                    timeouts: TimeoutsConfig::default(),
                    skip_relay: false,
                }));
            }
        }
        Err(Error::InvalidInferenceTarget(format!(
            "Invalid model name: Model name '{name}' not found in model table; define [models.{name}] \
             in the config or use a shorthand such as `openai::gpt-4o-mini`"
        )))
    }

    /// The configured model names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.configured.keys().map(String::as_str)
    }
}

/// The outcome of a model call: the output and the provider that produced it.
pub struct ModelOutput<'a> {
    /// What the provider returned.
    pub output: ProviderOutput,
    /// Who returned it.
    pub provider: &'a ModelProvider,
}

impl Model {
    /// Calls the providers in order until one succeeds, each attempt under its own timeout
    /// and the whole under the model's.
    pub async fn infer<'a>(
        &'a self,
        request: &ModelRequest,
        cx: &CallContext<'_>,
    ) -> Result<ModelOutput<'a>, Error> {
        let (limit, kind) = pick_timeout(&self.timeouts, request.stream);
        let Some(limit) = limit else {
            return self.fallback(request, cx).await;
        };
        match tokio::time::timeout(limit, self.fallback(request, cx)).await {
            Ok(result) => result,
            Err(_) => Err(Error::ModelTimeout {
                model: self.name.to_string(),
                kind,
                millis: limit.as_millis() as u64,
            }),
        }
    }

    async fn fallback<'a>(
        &'a self,
        request: &ModelRequest,
        cx: &CallContext<'_>,
    ) -> Result<ModelOutput<'a>, Error> {
        let mut errors = Vec::new();
        for provider in &self.providers {
            let (limit, kind) = pick_timeout(&provider.timeouts, request.stream);
            let limit = limit.unwrap_or(cx.global_timeout).min(cx.global_timeout);
            let attempt = tokio::time::timeout(limit, provider.infer(request, cx)).await;
            match attempt {
                Ok(Ok(output)) => return Ok(ModelOutput { output, provider }),
                Ok(Err(e)) => {
                    tracing::debug!(model = %self.name, provider = %provider.name, error = %e, "provider attempt failed");
                    errors.push((provider.name.to_string(), e));
                }
                Err(_) => errors.push((
                    provider.name.to_string(),
                    Error::ProviderTimeout {
                        provider: provider.name.to_string(),
                        kind: if limit == cx.global_timeout && kind.is_empty() {
                            "gateway.global_outbound_http_timeout_ms"
                        } else {
                            kind
                        },
                        millis: limit.as_millis() as u64,
                    },
                )),
            }
        }
        Err(Error::AllModelProvidersFailed(errors))
    }
}

/// The timeout that bounds getting an answer (non-streaming) or its first chunk (streaming).
fn pick_timeout(t: &TimeoutsConfig, stream: bool) -> (Option<Duration>, &'static str) {
    if stream {
        match (t.streaming.ttft_ms, t.streaming.total_ms) {
            (Some(ttft), Some(total)) if total < ttft => {
                (Some(Duration::from_millis(total)), "streaming.total_ms")
            }
            (Some(ttft), _) => (Some(Duration::from_millis(ttft)), "streaming.ttft_ms"),
            (None, Some(total)) => (Some(Duration::from_millis(total)), "streaming.total_ms"),
            (None, None) => (None, ""),
        }
    } else {
        match t.non_streaming.total_ms {
            Some(ms) => (Some(Duration::from_millis(ms)), "non_streaming.total_ms"),
            None => (None, ""),
        }
    }
}
