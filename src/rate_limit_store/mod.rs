//! Rate-limit rules from `[rate_limiting]`, and where their buckets live: in this process by
//! default, or in Redis/Valkey ([`redis`]) so that every relay replica shares them.

mod redis;

use std::sync::Arc;

use switchyard_layers::rate_limit::{
    InProcessBackend, Limit, Priority, RateLimitLayer, Resource, Rule, Rules, Scope, ScopeMatch,
    Window,
};

pub use self::redis::RedisBackend;
use crate::config::rate_limiting::{RateLimitingConfig, ScopeEntry};

/// The output allowance assumed for calls that set no `max_tokens`, when no
/// `rate_limiting.default_max_tokens` is configured.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The rules of `[rate_limiting]` (none when it is disabled).
pub fn rules(config: &RateLimitingConfig) -> Rules {
    if !config.enabled {
        return Rules::default();
    }
    Rules::new(
        config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule {
                name: format!("rate_limiting.rules[{i}]"),
                limits: rule
                    .limits()
                    .into_iter()
                    .map(|(key, value)| {
                        let (resource, window) = key
                            .split_once("_per_")
                            .expect("limit keys are `<resource>_per_<window>`");
                        Limit {
                            resource: if resource == "tokens" {
                                Resource::Tokens
                            } else {
                                Resource::ModelInferences
                            },
                            window: match window {
                                "second" => Window::Second,
                                "minute" => Window::Minute,
                                "hour" => Window::Hour,
                                "day" => Window::Day,
                                "week" => Window::Week,
                                _ => Window::Month,
                            },
                            capacity: value.capacity,
                            refill_rate: value.refill_rate,
                        }
                    })
                    .collect(),
                priority: match (rule.always, rule.priority) {
                    (Some(true), _) => Priority::Always,
                    (_, p) => Priority::Level(p.unwrap_or(0)),
                },
                scope: rule
                    .scope
                    .iter()
                    .map(|entry| {
                        let matcher = |v: &str| match v {
                            "tensorzero::each" => ScopeMatch::Each,
                            "tensorzero::total" => ScopeMatch::Total,
                            other => ScopeMatch::Concrete(other.to_owned()),
                        };
                        match entry {
                            ScopeEntry::Tag { key, value } => Scope::Tag {
                                key: key.clone(),
                                value: matcher(value),
                            },
                            ScopeEntry::ApiKeyPublicId(v) => Scope::ApiKey(matcher(v)),
                        }
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// The limiter for this configuration: in-process by default, Redis/Valkey when
/// `TENSORZERO_VALKEY_URL` is set (or `backend = "valkey"` demands it).
///
/// The stores come from `stores`, which outlives configuration reloads: the buckets keep their
/// balances when the rules are reloaded, and the Redis connection is made once.
pub async fn build(
    config: &RateLimitingConfig,
    max_in_process_buckets: usize,
    valkey_url: Option<&str>,
    stores: &BucketStores,
) -> Result<(RateLimitLayer, Option<RedisBackend>), String> {
    let rules = rules(config);
    if rules.is_empty() {
        return Ok((RateLimitLayer::disabled(), None));
    }
    let default_max_tokens = config.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let backend = config.backend.as_deref().unwrap_or("auto");
    match (backend, valkey_url) {
        ("memory", _) | ("auto", None) => {
            stores.in_process.set_max_buckets(max_in_process_buckets);
            tracing::info!("Rate limiting: {} rule(s), buckets in this process", config.rules.len());
            Ok((RateLimitLayer::new(rules, stores.in_process.clone(), default_max_tokens), None))
        }
        ("valkey" | "auto", Some(url)) => {
            let redis = stores.redis.get_or_try_init(|| RedisBackend::connect(url)).await?.clone();
            tracing::info!("Rate limiting: {} rule(s), buckets in {}", config.rules.len(), redis.label);
            Ok((RateLimitLayer::new(rules, Arc::new(redis.clone()), default_max_tokens), Some(redis)))
        }
        ("valkey", None) => Err("`rate_limiting.backend = \"valkey\"` needs TENSORZERO_VALKEY_URL (redis://host:port)".into()),
        ("postgres", _) => Err(
            "`rate_limiting.backend = \"postgres\"` is not supported by switchyard; use Valkey/Redis (TENSORZERO_VALKEY_URL) or `backend = \"memory\"`".into(),
        ),
        (other, _) => Err(format!("unknown rate-limit backend `{other}`")),
    }
}

/// Where buckets live, kept for the life of the process (across configuration reloads).
#[derive(Default)]
pub struct BucketStores {
    in_process: Arc<InProcessBackend>,
    redis: tokio::sync::OnceCell<RedisBackend>,
}

impl BucketStores {
    /// Applies the settlements still waiting to be sent (at shutdown, once requests have
    /// drained); gives up after `limit` if the store does not answer.
    pub async fn flush(&self, limit: std::time::Duration) {
        if let Some(redis) = self.redis.get()
            && tokio::time::timeout(limit, redis.flush()).await.is_err()
        {
            tracing::warn!(
                store = %redis.label,
                "rate-limit settlements were still unsent at shutdown; the store did not answer in time"
            );
        }
    }
}
