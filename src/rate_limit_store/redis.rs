//! Buckets in Redis or Valkey, shared by every replica.
//!
//! Each bucket is a hash (`b`: balance, `t`: when it was last updated, in seconds of the
//! server's clock). Keys expire when idle (twice the time a bucket takes to refill from empty,
//! at least a minute): an expired bucket and a full one are the same.
//!
//! # One script call for many decisions
//!
//! A script call per decision is what made the shared limiter cost far more than the
//! in-process one, mostly inside redis-server: each call pays an event-loop turn, its reads and
//! writes, and the script's start, several times what the bucket arithmetic costs. So every
//! reservation and settlement of this process goes through one task, the batcher, which sends
//! whatever has queued up as one call of one script, and sends the next call as soon as the
//! previous one has answered. Nothing waits for a tick: an idle gateway sends a lone
//! reservation at once, a busy one sends many in one call.
//!
//! The script decides its jobs one after the other, atomically, so a batch decides exactly
//! what the same jobs sent one by one in that order would have: reservations stay all or
//! nothing, and the count of what is admitted across replicas stays exact.
//!
//! Settlements are on no request's path (the answer has gone out before usage is known), so
//! they wait for the next reservation to ride along with, up to [`SETTLE_LINGER`]: under steady
//! load a request costs one script call, not two. Until its settlement lands, a bucket holds
//! the reservation's estimate, which is what it held while the call ran.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use switchyard_layers::rate_limit::{Charge, LimiterBackend, LimiterUnavailable, Verdict};
use tokio::sync::{mpsc, oneshot};

/// Prefix of every bucket key in Redis.
const KEY_PREFIX: &str = "switchyard_ratelimit:";

/// The most jobs the batcher takes from its queue for one call (settlements that waited ride
/// along on top): bounds the call's size and how long the script holds the server.
const MAX_BATCH: usize = 256;

/// Jobs queued for the batcher. When it is full, callers wait for room (backpressure): a job is
/// never dropped.
const QUEUE_CAPACITY: usize = 4096;

/// The longest a settlement waits for a reservation to share a call with.
const SETTLE_LINGER: Duration = Duration::from_millis(10);

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
    jobs: mpsc::Sender<Job>,
    /// For `/health` only: decisions go through the batcher.
    connection: ConnectionManager,
    /// `redis://host:port` without credentials, for messages.
    pub label: Arc<str>,
}

/// One charge, ready for the script.
struct Encoded {
    key: String,
    capacity: u64,
    rate_per_second: f64,
    amount: i64,
    idle_ttl_ms: u64,
}

impl Encoded {
    fn new(charge: &Charge) -> Self {
        let limit = &charge.bucket.limit;
        Self {
            key: format!("{KEY_PREFIX}{}", charge.bucket.key),
            capacity: limit.capacity,
            rate_per_second: limit.rate_per_second(),
            amount: charge.amount,
            idle_ttl_ms: super::idle_ttl_ms(limit),
        }
    }
}

/// A reservation or a settlement waiting for the batcher, with where its answer goes.
struct Job {
    charges: Vec<Encoded>,
    reply: Reply,
}

enum Reply {
    Reserve(oneshot::Sender<Result<Verdict, LimiterUnavailable>>),
    Settle(oneshot::Sender<Result<(), LimiterUnavailable>>),
    /// Not sent to Redis: asks the batcher to send the settlements that wait, and answers once
    /// they are applied (at shutdown).
    Flush(oneshot::Sender<()>),
}

impl Job {
    fn is_settlement(&self) -> bool {
        matches!(self.reply, Reply::Settle(_))
    }

    fn is_flush(&self) -> bool {
        matches!(self.reply, Reply::Flush(_))
    }

    /// Hands the script's answer (or the call's failure) to whoever waits. A caller that has
    /// gone (its request was cancelled) is no error: its job was decided all the same.
    fn answer(self, answer: Result<Value, LimiterUnavailable>) {
        match self.reply {
            Reply::Reserve(tx) => {
                let _ = tx.send(answer.and_then(verdict));
            }
            Reply::Settle(tx) => {
                let _ = tx.send(answer.map(|_| ()));
            }
            Reply::Flush(tx) => {
                let _ = tx.send(());
            }
        }
    }
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
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let batcher = Batcher {
            connection: connection.clone(),
            script: redis::Script::new(BATCH),
            label: label.clone(),
        };
        tokio::spawn(batcher.run(queue));
        let backend = Self {
            jobs,
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
        let (tx, rx) = oneshot::channel();
        let job = Job {
            charges: Vec::new(),
            reply: Reply::Flush(tx),
        };
        if self.jobs.send(job).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Queues a job; fails only if the batcher has stopped (the runtime is shutting down).
    async fn submit(&self, charges: &[Charge], reply: Reply) -> Result<(), LimiterUnavailable> {
        let job = Job {
            charges: charges.iter().map(Encoded::new).collect(),
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| LimiterUnavailable::Unreachable {
                detail: format!(
                    "the rate-limit batcher for {} has stopped (shutting down)",
                    self.label
                ),
            })
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("label", &self.label)
            .finish()
    }
}

/// The answer channel closed without an answer: the batcher stopped mid-call.
fn batcher_gone(label: &str) -> LimiterUnavailable {
    LimiterUnavailable::Unreachable {
        detail: format!("the rate-limit batcher for {label} stopped before answering"),
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl LimiterBackend for RedisBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.submit(charges, Reply::Reserve(tx)).await?;
            rx.await.unwrap_or_else(|_| Err(batcher_gone(&self.label)))
        })
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.submit(charges, Reply::Settle(tx)).await?;
            rx.await.unwrap_or_else(|_| Err(batcher_gone(&self.label)))
        })
    }
}

/// Sends queued jobs to Redis, one script call at a time, as many jobs per call as have queued.
struct Batcher {
    connection: ConnectionManager,
    script: redis::Script,
    label: Arc<str>,
}

impl Batcher {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut incoming = Vec::with_capacity(MAX_BATCH);
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        let mut settlements: Vec<Job> = Vec::new();
        let mut flushes: Vec<Job> = Vec::new();
        let linger = tokio::time::sleep(SETTLE_LINGER);
        tokio::pin!(linger);
        loop {
            tokio::select! {
                biased;
                received = queue.recv_many(&mut incoming, MAX_BATCH) => {
                    if received == 0 {
                        // Every sender is gone: settle what waits, then stop.
                        if !settlements.is_empty() {
                            self.call(&mut settlements).await;
                        }
                        return;
                    }
                    for job in incoming.drain(..) {
                        if job.is_flush() {
                            flushes.push(job);
                            continue;
                        }
                        if !job.is_settlement() {
                            batch.push(job);
                            continue;
                        }
                        if settlements.is_empty() {
                            linger.as_mut().reset(tokio::time::Instant::now() + SETTLE_LINGER);
                        }
                        settlements.push(job);
                    }
                }
                () = &mut linger, if !settlements.is_empty() => {}
            }
            let settle_now =
                settlements.len() >= MAX_BATCH || (!settlements.is_empty() && linger.is_elapsed());
            if batch.is_empty() && !settle_now {
                continue;
            }
            // Settlements first: a reservation in the same call sees the balances they give
            // back.
            settlements.append(&mut batch);
            self.call(&mut settlements).await;
        }
    }

    /// One script call for `jobs`, answering (and draining) every one of them.
    async fn call(&mut self, jobs: &mut Vec<Job>) {
        let answers = self.invoke(jobs).await;
        match answers {
            Ok(answers) if answers.len() == jobs.len() => {
                for (job, answer) in jobs.drain(..).zip(answers) {
                    job.answer(Ok(answer));
                }
            }
            Ok(answers) => {
                let unexpected = LimiterUnavailable::Unreachable {
                    detail: format!(
                        "the rate-limit script at {} answered {} jobs of {}",
                        self.label,
                        answers.len(),
                        jobs.len()
                    ),
                };
                for job in jobs.drain(..) {
                    job.answer(Err(unexpected.clone()));
                }
            }
            Err(e) => {
                let unavailable = LimiterUnavailable::Unreachable {
                    detail: format!("Valkey/Redis at {} did not answer: {e}", self.label),
                };
                for job in jobs.drain(..) {
                    job.answer(Err(unavailable.clone()));
                }
            }
        }
    }

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
    for charge in jobs.iter().flat_map(|j| &j.charges) {
        cmd.arg(&charge.key);
    }
    cmd.arg(jobs.len());
    for job in jobs {
        debug_assert!(!job.is_flush(), "a flush is never sent to Redis");
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
