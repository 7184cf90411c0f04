//! Rate-limit rules from `[rate_limiting]`, and where their buckets live: in this process by
//! default, or in Redis/Valkey ([`redis`]) so that every relay replica shares them.

mod batcher;
mod postgres;
mod redis;

use std::sync::Arc;

use switchyard_layers::rate_limit::{
    DEFAULT_COST_NANODOLLARS, InProcessBackend, Limit, Priority, RateLimitLayer, Resource, Rule,
    Rules, Scope, ScopeMatch, Window,
};

pub use self::postgres::{PostgresBackend, migrate};
pub use self::redis::RedisBackend;
use crate::config::rate_limiting::{RateLimitingConfig, ScopeEntry};

/// The output allowance assumed for calls that set no `max_tokens`, when no
/// `rate_limiting.default_max_tokens` is configured.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// How long an idle bucket is kept in a shared store: twice the time it takes to refill from
/// empty, at least a minute (a month for one that never refills). An expired bucket and a full
/// one are the same.
fn idle_ttl_ms(limit: &Limit) -> u64 {
    if limit.refill_rate == 0 {
        return 31 * 24 * 3_600_000;
    }
    let fill = limit.capacity as f64 / limit.rate_per_second();
    ((2.0 * fill).max(60.0) * 1000.0).ceil() as u64
}

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
                            resource: match resource {
                                "tokens" => Resource::Tokens,
                                "cost" => Resource::Cost,
                                _ => Resource::ModelInferences,
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

/// Where a configuration's buckets live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// In this process (`backend = "memory"`, switchyard's extension): each replica counts on
    /// its own.
    InProcess,
    /// Valkey/Redis at `TENSORZERO_VALKEY_URL`, shared by every replica.
    Valkey,
    /// Postgres at `TENSORZERO_POSTGRES_URL`, shared by every replica.
    Postgres,
}

/// Chooses the store as TensorZero does: `auto` takes Valkey when `TENSORZERO_VALKEY_URL` is
/// set, else Postgres when `TENSORZERO_POSTGRES_URL` is; rules with neither stop start-up
/// (a limit each replica counts alone is not the limit that was written). `None`: no rules.
pub fn choose(
    config: &RateLimitingConfig,
    valkey: bool,
    postgres: bool,
) -> Result<Option<Store>, String> {
    if rules(config).is_empty() {
        return Ok(None);
    }
    let backend = config.backend.as_deref().unwrap_or("auto");
    match (backend, valkey, postgres) {
        ("memory", _, _) => Ok(Some(Store::InProcess)),
        ("valkey", true, _) | ("auto", true, _) => Ok(Some(Store::Valkey)),
        ("postgres", _, true) | ("auto", false, true) => Ok(Some(Store::Postgres)),
        ("valkey", false, _) => Err("`rate_limiting.backend = \"valkey\"` needs TENSORZERO_VALKEY_URL (redis://host:port)".into()),
        ("postgres", _, false) => Err("`rate_limiting.backend = \"postgres\"` needs TENSORZERO_POSTGRES_URL".into()),
        ("auto", false, false) => Err(
            "rate-limit rules need a store shared by every replica: set TENSORZERO_VALKEY_URL (Valkey/Redis) or TENSORZERO_POSTGRES_URL, as the TensorZero Gateway requires. To keep buckets in this process instead (each replica then counts on its own), set `backend = \"memory\"` under [rate_limiting]".into(),
        ),
        (other, _, _) => Err(format!("unknown rate-limit backend `{other}`")),
    }
}

/// The limiter for this configuration, in the store [`choose`] picked (`postgres` is the pool
/// when that store is Postgres).
///
/// The stores come from `stores`, which outlives configuration reloads: the buckets keep their
/// balances when the rules are reloaded, and the Redis connection is made once.
pub async fn build(
    store: Option<Store>,
    config: &RateLimitingConfig,
    max_in_process_buckets: usize,
    valkey_url: Option<&str>,
    postgres: Option<deadpool_postgres::Pool>,
    stores: &BucketStores,
) -> Result<(RateLimitLayer, Option<RedisBackend>), String> {
    let rules = rules(config);
    let Some(store) = store.filter(|_| !rules.is_empty()) else {
        return Ok((RateLimitLayer::disabled(), None));
    };
    let default_max_tokens = config.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    // Checked at load: finite and not negative.
    let default_cost = config
        .default_cost
        .and_then(crate::cost::Dollars::from_f64)
        .map_or(
            DEFAULT_COST_NANODOLLARS,
            crate::cost::Dollars::nanodollars_ceil,
        );
    let layer = |backend: Arc<dyn switchyard_layers::rate_limit::LimiterBackend>| {
        RateLimitLayer::new(rules.clone(), backend, default_max_tokens)
            .with_default_cost(default_cost)
    };
    let n = config.rules.len();
    match store {
        Store::InProcess => {
            stores.in_process.set_max_buckets(max_in_process_buckets);
            tracing::info!("Rate limiting: {n} rule(s), buckets in this process");
            Ok((layer(stores.in_process.clone()), None))
        }
        Store::Valkey => {
            let url = valkey_url.ok_or("TENSORZERO_VALKEY_URL is not set")?;
            let redis = stores
                .redis
                .get_or_try_init(|| RedisBackend::connect(url))
                .await?
                .clone();
            tracing::info!("Rate limiting: {n} rule(s), buckets in {}", redis.label);
            Ok((layer(Arc::new(redis.clone())), Some(redis)))
        }
        Store::Postgres => {
            let pool = postgres.ok_or("TENSORZERO_POSTGRES_URL is not set")?;
            let backend = stores
                .postgres
                .get_or_try_init(|| PostgresBackend::connect(pool))
                .await?
                .clone();
            tracing::info!("Rate limiting: {n} rule(s), buckets in Postgres");
            Ok((layer(Arc::new(backend)), None))
        }
    }
}

/// Where buckets live, kept for the life of the process (across configuration reloads).
#[derive(Default)]
pub struct BucketStores {
    in_process: Arc<InProcessBackend>,
    redis: tokio::sync::OnceCell<RedisBackend>,
    postgres: tokio::sync::OnceCell<PostgresBackend>,
}

impl BucketStores {
    /// Applies the settlements still waiting to be sent (at shutdown, once requests have
    /// drained); gives up after `limit` if the store does not answer.
    pub async fn flush(&self, limit: std::time::Duration) {
        let redis = async {
            if let Some(redis) = self.redis.get() {
                redis.flush().await;
            }
        };
        let postgres = async {
            if let Some(postgres) = self.postgres.get() {
                postgres.flush().await;
            }
        };
        if tokio::time::timeout(limit, async { tokio::join!(redis, postgres) })
            .await
            .is_err()
        {
            tracing::warn!(
                "rate-limit settlements were still unsent at shutdown; the store did not answer in time"
            );
        }
    }
}
