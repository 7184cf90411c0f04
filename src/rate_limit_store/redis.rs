//! Buckets in Redis or Valkey, shared by every replica.
//!
//! Each bucket is a hash (`b`: balance, `t`: when it was last updated, in seconds of the
//! server's clock). Keys expire when idle (twice the time a bucket takes to refill from empty,
//! at least a minute): an expired bucket and a full one are the same.
//!
//! Decisions go through the process's [batcher](super::batcher): one script call decides
//! every job that has queued, one after the other, reading and writing each bucket once.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use switchyard_layers::rate_limit::{Charge, LimiterBackend, LimiterUnavailable, Verdict};

use super::batcher::{BatchStore, Batched, BoxFuture, Job, Outcome};

/// Prefix of every bucket key in Redis.
const KEY_PREFIX: &str = "switchyard_ratelimit:";

/// The script. `ARGV[1]` is the number of jobs; then each job is `r` (reserve: take every
/// charge, or none if a bucket is short) or `s` (settle: add `-amount`, capped at capacity,
/// never refused), its number of charges, and per charge the capacity, the refill per second,
/// the amount and the idle expiry in ms. `KEYS` are the charges' buckets, job after job.
///
/// A bucket touched by several jobs is read once and written once: later jobs see earlier
/// jobs' effects in `state`. Answers, one per job: a reservation's `{ok, balance...}` (1 when
/// taken, with the balances after taking; 0 with the balances before), a settlement's 1.
/// Balances are strings, because Redis would truncate a Lua number to an integer.
const BATCH: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local state = {}
local dirty = {}
local function bucket(key, cap, rate)
  local s = state[key]
  if s == nil then
    local stored = redis.call('HMGET', key, 'b', 't')
    local b = tonumber(stored[1])
    local last = tonumber(stored[2])
    if b == nil then b = cap; last = now end
    if now > last and b < cap then b = math.min(cap, b + (now - last) * rate) end
    s = { b = b }
    state[key] = s
  end
  return s
end
local out = {}
local a = 2
local k = 0
for j = 1, tonumber(ARGV[1]) do
  local kind = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local charges = {}
  local ok = 1
  for i = 1, n do
    local c = {
      key = KEYS[k + i],
      cap = tonumber(ARGV[a]),
      amount = tonumber(ARGV[a + 2]),
      ttl = ARGV[a + 3],
    }
    c.s = bucket(c.key, c.cap, tonumber(ARGV[a + 1]))
    if c.s.b < c.amount then ok = 0 end
    charges[i] = c
    a = a + 4
  end
  k = k + n
  if kind == 'r' then
    local answer = { ok }
    for i = 1, n do
      local c = charges[i]
      if ok == 1 then
        c.s.b = c.s.b - c.amount
        dirty[c.key] = c
      end
      answer[i + 1] = string.format('%.17g', c.s.b)
    end
    out[j] = answer
  else
    for i = 1, n do
      local c = charges[i]
      c.s.b = math.min(c.cap, c.s.b - c.amount)
      dirty[c.key] = c
    end
    out[j] = 1
  end
end
for key, c in pairs(dirty) do
  redis.call('HSET', key, 'b', string.format('%.17g', c.s.b), 't', stamp)
  redis.call('PEXPIRE', key, c.ttl)
end
return out
"#;

/// Buckets in Redis or Valkey, shared by every replica; cheap to clone (one batcher per
/// process, however many clones).
#[derive(Clone)]
pub struct RedisBackend {
    batched: Batched,
    /// For `/health` only: decisions go through the batcher.
    connection: ConnectionManager,
    /// `redis://host:port` without credentials, for messages.
    pub label: Arc<str>,
}

/// A reservation's answer: `{ok, balance...}`.
fn verdict(answer: Value) -> Result<Verdict, LimiterUnavailable> {
    let fields: Vec<String> =
        redis::from_redis_value(answer).map_err(|e| LimiterUnavailable::Unreachable {
            detail: format!("the rate-limit script answered in an unexpected shape: {e}"),
        })?;
    let balances = fields
        .iter()
        .skip(1)
        .map(|b| b.parse().unwrap_or(0.0))
        .collect();
    Ok(if fields.first().map(String::as_str) == Some("1") {
        Verdict::Allowed { balances }
    } else {
        Verdict::Denied { balances }
    })
}

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

impl RedisBackend {
    /// Connects (and checks the connection): start-up fails if the store cannot be reached.
    /// Starts the batcher on the current runtime.
    pub async fn connect(url: &str) -> Result<Self, String> {
        let label: Arc<str> = redact(url).into();
        let unavailable =
            |e: RedisError| format!("cannot reach the rate-limit store at {label}: {e}");
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
        let store = RedisStore {
            connection: connection.clone(),
            script: redis::Script::new(BATCH),
        };
        let backend = Self {
            batched: Batched::start(store, label.clone()),
            connection,
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

    /// Sends the settlements that wait for a reservation to ride along with, and returns once
    /// they are applied (or failed): called at shutdown, after the drain, so that the usage of
    /// the last requests is not lost with the process.
    pub async fn flush(&self) {
        self.batched.flush().await;
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("label", &self.label)
            .finish()
    }
}

impl LimiterBackend for RedisBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        self.batched.reserve(charges)
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        self.batched.settle(charges)
    }
}

/// The batcher's side: one script call per batch.
struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
}

impl BatchStore for RedisStore {
    fn decide<'a>(
        &'a mut self,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, LimiterUnavailable>> {
        Box::pin(async move {
            let answers = self
                .invoke(jobs)
                .await
                .map_err(|e| LimiterUnavailable::Unreachable {
                    detail: format!("Valkey/Redis did not answer: {e}"),
                })?;
            if answers.len() != jobs.len() {
                return Err(LimiterUnavailable::Unreachable {
                    detail: format!(
                        "the rate-limit script answered {} jobs of {}",
                        answers.len(),
                        jobs.len()
                    ),
                });
            }
            jobs.iter()
                .zip(answers)
                .map(|(job, answer)| {
                    if job.is_settlement() {
                        Ok(Outcome::Settled)
                    } else {
                        verdict(answer).map(Outcome::Reserved)
                    }
                })
                .collect()
        })
    }
}

impl RedisStore {
    /// `EVALSHA`, loading the script first if the server does not have it (after a restart, or
    /// on a replica that never saw it).
    async fn invoke(&mut self, jobs: &[Job]) -> Result<Vec<Value>, RedisError> {
        let command = evalsha(self.script.get_hash(), jobs);
        match command.query_async(&mut self.connection).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(BATCH)
                    .query_async::<String>(&mut self.connection)
                    .await?;
                command.query_async(&mut self.connection).await
            }
            answer => answer,
        }
    }
}

/// `EVALSHA hash numkeys key... njobs (kind ncharges (cap rate amount ttl)...)...`, written into
/// one command buffer.
fn evalsha(hash: &str, jobs: &[Job]) -> redis::Cmd {
    let keys: usize = jobs.iter().map(|j| j.charges.len()).sum();
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(hash).arg(keys);
    let mut key = String::new();
    for charge in jobs.iter().flat_map(|j| &j.charges) {
        key.clear();
        key.push_str(KEY_PREFIX);
        key.push_str(&charge.key);
        cmd.arg(&key);
    }
    cmd.arg(jobs.len());
    for job in jobs {
        cmd.arg(if job.is_settlement() { "s" } else { "r" })
            .arg(job.charges.len());
        for c in &job.charges {
            cmd.arg(c.capacity)
                .arg(c.rate_per_second)
                .arg(c.amount)
                .arg(c.idle_ttl_ms);
        }
    }
    cmd
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

    #[test]
    fn passwords_never_survive() {
        for url in [
            "redis://user:s3cret@host:6379/0",
            "redis+unix:///run/redis.sock?db=0&pass=s3cret",
            "rediss://:s3cret@host:6380?x=1",
            "s3cret",
        ] {
            assert!(!redact(url).contains("s3cret"), "{url}");
        }
    }
}
