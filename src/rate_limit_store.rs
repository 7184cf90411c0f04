//! Rate-limit rules from `[rate_limiting]`, and the Redis/Valkey backend that lets every relay
//! replica share the same buckets.
//!
//! The Redis backend keeps each bucket in a hash (`b`: balance, `t`: last update, seconds from
//! the server's clock) and decides with one Lua script per reservation and one per settlement,
//! so a decision over several buckets is atomic across every replica. Keys expire when idle
//! (twice the time a bucket takes to refill from empty, at least a minute): an expired bucket
//! and a full one are the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchyard_layers::rate_limit::{
    Charge, InProcessBackend, Limit, LimiterBackend, LimiterUnavailable, Priority, RateLimitLayer,
    Resource, Rule, Rules, Scope, ScopeMatch, Verdict, Window,
};

use crate::config::rate_limiting::{RateLimitingConfig, ScopeEntry};

/// The output allowance assumed for calls that set no `max_tokens`, when no
/// `rate_limiting.default_max_tokens` is configured.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Prefix of every bucket key in Redis.
const KEY_PREFIX: &str = "switchyard_ratelimit:";

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

/// Buckets in Redis or Valkey, shared by every replica.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    reserve: Arc<Script>,
    settle: Arc<Script>,
    /// `redis://host:port` without credentials, for messages.
    pub label: String,
}

const RESERVE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS
local balances = {}
local ok = 1
for i = 1, n do
  local cap = tonumber(ARGV[4 * i - 3])
  local rate = tonumber(ARGV[4 * i - 2])
  local state = redis.call('HMGET', KEYS[i], 'b', 't')
  local b = tonumber(state[1])
  local last = tonumber(state[2])
  if b == nil then b = cap; last = now end
  if now > last and b < cap then b = math.min(cap, b + (now - last) * rate) end
  balances[i] = b
  if b < tonumber(ARGV[4 * i - 1]) then ok = 0 end
end
local out = { ok }
for i = 1, n do
  local b = balances[i]
  if ok == 1 then
    b = b - tonumber(ARGV[4 * i - 1])
    redis.call('HSET', KEYS[i], 'b', string.format('%.17g', b), 't', string.format('%.17g', now))
    redis.call('PEXPIRE', KEYS[i], ARGV[4 * i])
  end
  out[i + 1] = string.format('%.17g', b)
end
return out
"#;

const SETTLE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  local cap = tonumber(ARGV[4 * i - 3])
  local rate = tonumber(ARGV[4 * i - 2])
  local state = redis.call('HMGET', KEYS[i], 'b', 't')
  local b = tonumber(state[1])
  local last = tonumber(state[2])
  if b == nil then b = cap; last = now end
  if now > last and b < cap then b = math.min(cap, b + (now - last) * rate) end
  b = math.min(cap, b - tonumber(ARGV[4 * i - 1]))
  redis.call('HSET', KEYS[i], 'b', string.format('%.17g', b), 't', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[i], ARGV[4 * i])
end
return 1
"#;

/// `redis://user:pass@host:port/db` → `redis://host:port/db`; a query (where
/// `redis+unix:///path?pass=...` keeps its password) is dropped whole.
fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => "the configured Valkey/Redis".into(),
    }
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn passwords_never_survive() {
        for url in [
            "redis://user:s3cret@host:6379/0",
            "redis+unix:///run/redis.sock?db=0&pass=s3cret",
            "rediss://:s3cret@host:6380?x=1",
            "s3cret",
        ] {
            assert!(!super::redact(url).contains("s3cret"), "{url}");
        }
    }
}

fn idle_ttl_ms(limit: &Limit) -> u64 {
    if limit.refill_rate == 0 {
        return 31 * 24 * 3_600_000;
    }
    let fill = limit.capacity as f64 / limit.rate_per_second();
    ((2.0 * fill).max(60.0) * 1000.0).ceil() as u64
}

impl RedisBackend {
    /// Connects (and checks the connection): start-up fails if the store cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, String> {
        let label = redact(url);
        let unavailable =
            |e: redis::RedisError| format!("cannot reach the rate-limit store at {label}: {e}");
        let client = redis::Client::open(url)
            .map_err(|e| format!("TENSORZERO_VALKEY_URL is not a valid Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            Duration::from_secs(3),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| format!("cannot reach the rate-limit store at {label}: no answer within 3 s"))?
        .map_err(unavailable)?;
        let backend = Self {
            connection,
            reserve: Arc::new(Script::new(RESERVE)),
            settle: Arc::new(Script::new(SETTLE)),
            label,
        };
        backend.ping().await?;
        Ok(backend)
    }

    /// Checks that the store answers (for `/health`).
    pub async fn ping(&self) -> Result<(), String> {
        let mut c = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.label))
    }

    fn invocation<'s>(script: &'s Script, charges: &[Charge]) -> redis::ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        for c in charges {
            inv.key(format!("{KEY_PREFIX}{}", c.bucket.key));
            let l = &c.bucket.limit;
            inv.arg(l.capacity)
                .arg(l.rate_per_second())
                .arg(c.amount)
                .arg(idle_ttl_ms(l));
        }
        inv
    }

    fn unavailable(&self, e: redis::RedisError) -> LimiterUnavailable {
        LimiterUnavailable::Unreachable {
            detail: format!("Valkey/Redis at {} did not answer: {e}", self.label),
        }
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("label", &self.label)
            .finish()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl LimiterBackend for RedisBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        Box::pin(async move {
            let mut c = self.connection.clone();
            let out: Vec<String> = Self::invocation(&self.reserve, charges)
                .invoke_async(&mut c)
                .await
                .map_err(|e| self.unavailable(e))?;
            let balances: Vec<f64> = out
                .iter()
                .skip(1)
                .map(|b| b.parse().unwrap_or(0.0))
                .collect();
            Ok(if out.first().map(String::as_str) == Some("1") {
                Verdict::Allowed { balances }
            } else {
                Verdict::Denied { balances }
            })
        })
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        Box::pin(async move {
            let mut c = self.connection.clone();
            Self::invocation(&self.settle, charges)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
                .map_err(|e| self.unavailable(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact("redis://user:secret@cache:6379/0"),
            "redis://cache:6379/0"
        );
        assert_eq!(redact("rediss://:pw@h:1"), "rediss://h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
