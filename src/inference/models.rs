//! The model table: every configured model's call stack, built once at start-up, and
//! shorthand models (`openai::gpt-4o-mini`), built when a request names one.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_layers::timeout::Timeouts;

use crate::config::{Config, ProviderType, ProviderTypesConfig};
use crate::error::Error;
use crate::providers::ProviderSpec;
use crate::stack::model::{self as stack, ModelService, StackContext};

/// A model, ready to call.
#[derive(Debug)]
pub struct Model {
    /// The gateway's name for it.
    pub name: Arc<str>,
    /// Its call stack.
    pub service: ModelService,
    /// Whether its calls go to the relay.
    pub relayed: bool,
    /// The only request `namespace` that may use it (`models.M.namespace`).
    pub namespace: Option<Arc<str>>,
    /// The prices of its providers that have them, for cost reservations.
    pub prices: Vec<Arc<crate::cost::CostTable>>,
}

impl Model {
    /// What a call of `input_tokens` in and at most `max_tokens` out may cost, in nano-dollars:
    /// the dearest of its providers' estimates (any of them may answer). `None` when no
    /// provider's prices say what output tokens cost.
    pub fn cost_estimate(&self, input_tokens: u64, max_tokens: u64) -> Option<i64> {
        self.prices
            .iter()
            .filter_map(|t| t.estimate(input_tokens, max_tokens))
            .max()
            .map(crate::cost::Dollars::nanodollars_ceil)
    }
}

/// All configured models, and how to build shorthand ones.
#[derive(Debug)]
pub struct ModelTable {
    configured: HashMap<String, Arc<Model>>,
    provider_types: ProviderTypesConfig,
    context: StackContext,
}

impl ModelTable {
    /// Builds every configured model's stack. Provider keys are checked now, except for models
    /// whose calls go to the relay (the edge holds no provider keys). Every problem is returned
    /// at once.
    pub fn new(config: &Config, context: StackContext) -> Result<Self, Vec<String>> {
        let mut configured = HashMap::new();
        let mut errors = Vec::new();
        for (name, model) in &config.models {
            let relayed = context.relay.is_some() && !model.skip_relay;
            let mut providers = Vec::new();
            for provider_name in &model.routing {
                let Some(provider) = model.providers.get(provider_name) else {
                    continue;
                };
                match ProviderSpec::from_config(
                    name,
                    provider_name,
                    provider,
                    &config.provider_types,
                    !relayed,
                ) {
                    Ok(mut p) => {
                        p.breaker = crate::health::breaker_settings(
                            provider.circuit_breaker.as_ref(),
                            &config.gateway.circuit_breaker,
                        );
                        providers.push(Arc::new(p));
                    }
                    Err(e) => errors.push(e.0),
                }
            }
            let prices = providers.iter().filter_map(|p| p.cost.clone()).collect();
            let service = stack::model(
                name.as_str().into(),
                providers,
                Timeouts::from(&model.timeouts),
                model.skip_relay,
                model.hedge_after_ms.map(|ms| stack::Hedge {
                    after: std::time::Duration::from_millis(ms),
                    max: model.max_hedges.unwrap_or(1),
                }),
                &context,
            );
            configured.insert(
                name.clone(),
                Arc::new(Model {
                    name: name.as_str().into(),
                    service,
                    relayed,
                    namespace: model.namespace.as_deref().map(Arc::from),
                    prices,
                }),
            );
        }
        if errors.is_empty() {
            Ok(Self {
                configured,
                provider_types: config.provider_types.clone(),
                context,
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
                let spec = ProviderSpec::shorthand(name, t, model, &self.provider_types)?;
                let service = stack::model(
                    name.into(),
                    vec![Arc::new(spec)],
                    Timeouts::default(),
                    false,
                    None,
                    &self.context,
                );
                return Ok(Arc::new(Model {
                    name: name.into(),
                    service,
                    relayed: self.context.relay.is_some(),
                    namespace: None,
                    prices: Vec::new(),
                }));
            }
        }
        Err(Error::InvalidInferenceTarget(format!(
            "Invalid model name: Model name '{name}' not found in model table; define [models.{name}] \
             in the config or use a shorthand such as `openai::gpt-4o-mini`"
        )))
    }

    /// Whether `name` is a configured model.
    pub fn is_configured(&self, name: &str) -> bool {
        self.configured.contains_key(name)
    }

    /// The configured models' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.configured.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Whether `name` is a configured model or a well-formed shorthand (without building it).
    pub fn knows(&self, name: &str) -> bool {
        self.configured.contains_key(name)
            || name.split_once("::").is_some_and(|(prefix, model)| {
                !model.is_empty() && ProviderType::from_shorthand(prefix).is_some()
            })
    }

    /// Configured models whose calls go to the relay.
    pub fn relayed(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .configured
            .values()
            .filter(|m| m.relayed)
            .map(|m| m.name.as_ref())
            .collect();
        names.sort_unstable();
        names
    }
}
