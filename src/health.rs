//! The health of every model provider, shared by every request and kept across configuration
//! reloads: each provider's guard (circuit breaker and back-off, layers `guard`), created when
//! a model stack is built and listed by `GET /status`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_layers::guard::{BreakerSettings, GuardMetrics, GuardReport, ProviderGuard};

use crate::config::common::CircuitBreakerConfig;

/// A provider by model name and provider name.
type ProviderKey = (Arc<str>, Arc<str>);

/// Every provider's guard, by model and provider name.
#[derive(Debug)]
pub struct ProviderHealth {
    guards: Mutex<HashMap<ProviderKey, Arc<ProviderGuard>>>,
    metrics: Option<GuardMetrics>,
}

impl ProviderHealth {
    /// An empty registry reporting to `metrics`.
    pub fn new(metrics: Option<GuardMetrics>) -> Self {
        Self {
            guards: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The guard of `provider` of `model`, with these breaker settings (`None`: no breaker). A
    /// reload that keeps the provider keeps its state.
    pub fn guard(
        &self,
        model: &Arc<str>,
        provider: &Arc<str>,
        settings: Option<BreakerSettings>,
    ) -> Arc<ProviderGuard> {
        let mut guards = self.guards.lock().unwrap_or_else(|e| e.into_inner());
        let key = (model.clone(), provider.clone());
        let guard = match guards.get(&key) {
            Some(existing) => existing.reconfigure(settings),
            None => ProviderGuard::new(
                model.clone(),
                provider.clone(),
                settings,
                self.metrics.clone(),
            ),
        };
        guards.insert(key, guard.clone());
        guard
    }

    /// Every guard's state, sorted by model and provider.
    pub fn reports(&self) -> Vec<GuardReport> {
        let guards: Vec<Arc<ProviderGuard>> = self
            .guards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut reports: Vec<GuardReport> = guards.iter().map(|g| g.report()).collect();
        reports.sort_by(|a, b| (&a.model, &a.provider).cmp(&(&b.model, &b.provider)));
        reports
    }
}

impl Default for ProviderHealth {
    fn default() -> Self {
        Self::new(None)
    }
}

/// The breaker settings of a provider: its own `circuit_breaker` over the gateway's, over the
/// defaults; `None` when the result is not enabled.
pub fn breaker_settings(
    provider: Option<&CircuitBreakerConfig>,
    gateway: &CircuitBreakerConfig,
) -> Option<BreakerSettings> {
    let c = provider.map_or_else(|| gateway.clone(), |p| p.or(gateway));
    if c.enabled != Some(true) {
        return None;
    }
    let d = BreakerSettings::default();
    let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
    Some(BreakerSettings {
        consecutive_failures: c.consecutive_failures.unwrap_or(d.consecutive_failures),
        failure_rate: c.failure_rate.unwrap_or(d.failure_rate),
        window: ms(c.window_ms, d.window),
        min_requests: c.min_requests.unwrap_or(d.min_requests),
        cooldown: ms(c.cooldown_ms, d.cooldown),
        max_cooldown: ms(c.max_cooldown_ms, d.max_cooldown),
    })
}
