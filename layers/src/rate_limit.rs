//! Rate limiting: token buckets scoped by tags and API key, reserved once per model inference
//! and settled with the actual usage.
//!
//! # Layer placement
//!
//! Outermost in the model-call stack: one reservation covers every retry and fallback attempt
//! (and a relayed call), and a denial is final (no retry, no other provider). It reads [`Tags`]
//! and [`ApiKeyPublicId`] from the call's extensions.
//!
//! # Buckets
//!
//! Each limit of each active rule is one bucket per distinct scope value. A bucket starts full
//! (`capacity`) and refills continuously at `refill_rate` per window, up to `capacity`. A call
//! takes from every bucket that applies, all or nothing: 1 from `model_inferences` buckets, and
//! the token estimate from `tokens` buckets. When the answer reports its usage, the difference
//! is settled: unused tokens go back (up to capacity), extra tokens are taken (a balance may go
//! below zero, so real usage is never forgotten). A stream the client drops is charged its
//! reservation or the tokens it had produced, whichever is larger. A call that failed without
//! the provider charging anything gives its whole reservation back.
//!
//! # Rule selection
//!
//! A rule applies when every entry of its scope matches the request (a request without the tag
//! matches no tag scope). Of the matching rules with a `priority`, only those with the highest
//! priority apply; every matching `always` rule applies too.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::call::Call;
use crate::ext::{ApiKeyPublicId, InferenceStats, Phase, Tags};
use crate::metrics::{Counter, Family, Histogram};

/// What a bucket counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// Model inferences.
    ModelInferences,
    /// Tokens (input and output).
    Tokens,
}

impl Resource {
    /// The name in config keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::ModelInferences => "model_inferences",
            Resource::Tokens => "tokens",
        }
    }
}

/// A refill window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
    /// One week.
    Week,
    /// Thirty days.
    Month,
}

impl Window {
    /// The window's length (a month is 30 days).
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
            Window::Week => 604_800,
            Window::Month => 2_592_000,
        })
    }

    /// The name in config keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
        }
    }
}

/// One limit of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// What it counts.
    pub resource: Resource,
    /// Its refill window.
    pub window: Window,
    /// The most the bucket holds.
    pub capacity: u64,
    /// How much it refills per window.
    pub refill_rate: u64,
}

impl Limit {
    /// Refill per second.
    pub fn rate_per_second(&self) -> f64 {
        self.refill_rate as f64 / self.window.duration().as_secs_f64()
    }
}

/// What a scope entry matches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeMatch {
    /// Exactly this value.
    Concrete(String),
    /// Any value; a bucket per value.
    Each,
    /// Any value; one bucket for all.
    Total,
}

/// One entry of a rule's scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// A tag.
    Tag {
        /// The tag's key.
        key: String,
        /// What its value must be.
        value: ScopeMatch,
    },
    /// The API key's public id (`Each` or `Concrete`).
    ApiKey(ScopeMatch),
}

/// `priority = N` or `always = true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Applies whenever it matches.
    Always,
    /// Applies when it is the highest matching priority.
    Level(u64),
}

/// One `[[rate_limiting.rules]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// How messages name it, e.g. `rate_limiting.rules[2]`.
    pub name: String,
    /// Its limits.
    pub limits: Vec<Limit>,
    /// Its priority.
    pub priority: Priority,
    /// Its scope (all entries must match).
    pub scope: Vec<Scope>,
}

/// A bucket a call draws from.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Identity in the backend: resource, window and scope values.
    pub key: String,
    /// The rule it belongs to.
    pub rule: String,
    /// The rule's scope, as written, with the values this request matched.
    pub scope: String,
    /// The limit.
    pub limit: Limit,
}

/// The rules, ready to select from.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

impl Rules {
    /// The rules, in config order.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// Whether there are any.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule limits tokens (then the call needs a token estimate).
    pub fn limit_tokens(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.limits.iter().any(|l| l.resource == Resource::Tokens))
    }

    /// The buckets a request with these tags and this API key draws from.
    pub fn select(&self, tags: &BTreeMap<String, String>, api_key: Option<&str>) -> Vec<Bucket> {
        let matching: Vec<(&Rule, Vec<String>)> = self
            .rules
            .iter()
            .filter_map(|rule| {
                let mut values = Vec::new();
                for entry in &rule.scope {
                    let (actual, expected) = match entry {
                        Scope::Tag { key, value } => (tags.get(key).map(String::as_str), value),
                        Scope::ApiKey(value) => (api_key, value),
                    };
                    let actual = actual?;
                    match expected {
                        ScopeMatch::Concrete(v) if v != actual => return None,
                        ScopeMatch::Each => values.push(actual.to_owned()),
                        _ => values.push(String::new()),
                    }
                }
                Some((rule, values))
            })
            .collect();
        let top = matching
            .iter()
            .filter_map(|(r, _)| match r.priority {
                Priority::Level(p) => Some(p),
                Priority::Always => None,
            })
            .max();
        let mut buckets = Vec::new();
        for (rule, values) in matching {
            let active = match rule.priority {
                Priority::Always => true,
                Priority::Level(p) => Some(p) == top,
            };
            if !active {
                continue;
            }
            let mut scope_text = Vec::new();
            let mut scope_key = Vec::new();
            for (entry, value) in rule.scope.iter().zip(&values) {
                let (name, matched) = match entry {
                    Scope::Tag { key, value: m } => (
                        format!(
                            "tag_key={}, tag_value={}",
                            quote(key),
                            quote(&scope_value(m))
                        ),
                        m,
                    ),
                    Scope::ApiKey(m) => {
                        (format!("api_key_public_id={}", quote(&scope_value(m))), m)
                    }
                };
                let shown = if *matched == ScopeMatch::Each {
                    format!("{name} (matched: {})", quote(value))
                } else {
                    name
                };
                scope_text.push(shown);
                scope_key.push(match entry {
                    Scope::Tag { key, value: m } => {
                        format!("tag:{}:{}:{}", key.len(), key, scope_part(m, value))
                    }
                    Scope::ApiKey(m) => format!("api_key:{}", scope_part(m, value)),
                });
            }
            scope_key.sort();
            let scope_key = bounded_scope_key(scope_key.join(";"));
            for limit in &rule.limits {
                buckets.push(Bucket {
                    key: format!(
                        "{}:{}:[{scope_key}]",
                        limit.resource.as_str(),
                        limit.window.as_str(),
                    ),
                    rule: rule.name.clone(),
                    scope: if scope_text.is_empty() {
                        "(no scope: every request)".into()
                    } else {
                        scope_text.join(", ")
                    },
                    limit: *limit,
                });
            }
        }
        buckets
    }
}

/// Scope keys longer than this are stored as their digest.
const MAX_SCOPE_KEY_BYTES: usize = 128;

/// A bucket's scope part, of bounded length whatever the tag values: a long one becomes its
/// SHA-256 (collision-free in practice, and distinct from every short key by its prefix), so
/// memory per bucket, in process and in Redis, does not grow with what clients send.
fn bounded_scope_key(key: String) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    if key.len() <= MAX_SCOPE_KEY_BYTES {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut short = String::with_capacity(7 + 64);
    short.push_str("sha256:");
    for byte in digest {
        let _ = write!(short, "{byte:02x}");
    }
    short
}

fn scope_value(m: &ScopeMatch) -> String {
    match m {
        ScopeMatch::Concrete(v) => v.clone(),
        ScopeMatch::Each => "tensorzero::each".into(),
        ScopeMatch::Total => "tensorzero::total".into(),
    }
}

fn scope_part(m: &ScopeMatch, value: &str) -> String {
    match m {
        ScopeMatch::Concrete(v) => format!("is:{}:{v}", v.len()),
        ScopeMatch::Each => format!("each:{}:{value}", value.len()),
        ScopeMatch::Total => "total".into(),
    }
}

/// An amount to take from (or, negative, give back to) a bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// The bucket.
    pub bucket: Bucket,
    /// How much.
    pub amount: i64,
}

/// A backend's answer to a reservation.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Taken; the balances after taking.
    Allowed {
        /// One per charge.
        balances: Vec<f64>,
    },
    /// Nothing taken; the balances that were too low (and the others), before taking.
    Denied {
        /// One per charge.
        balances: Vec<f64>,
    },
}

/// The backend could not answer, or could not take one more bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimiterUnavailable {
    /// The store did not answer.
    Unreachable {
        /// Which store, where and why (never a password): for the log, never for clients.
        detail: String,
    },
    /// The in-process table holds `max_buckets` buckets and none of them can be forgotten
    /// without handing a drained scope a fresh allowance.
    Full {
        /// The cap (`gateway.limits.max_rate_limit_buckets`).
        max_buckets: usize,
    },
}

impl fmt::Display for LimiterUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client sees this text: the store's name, address and error stay in the log.
        match self {
            LimiterUnavailable::Unreachable { .. } => f.write_str(
                "the rate-limit store is unavailable, so the request was refused; retry shortly",
            ),
            LimiterUnavailable::Full { max_buckets } => write!(
                f,
                "the gateway already tracks {max_buckets} rate-limit buckets (one per distinct scope value), none of them idle and refilled, so the request was refused rather than a limit bypassed; retry shortly, or raise `gateway.limits.max_rate_limit_buckets`"
            ),
        }
    }
}

impl std::error::Error for LimiterUnavailable {}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where bucket balances live.
pub trait LimiterBackend: Send + Sync + 'static {
    /// Takes every charge, or none if any bucket is short.
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>>;
    /// Adds `-amount` to each bucket (refunds are negative charges), capped at capacity; never
    /// refused.
    fn settle<'a>(&'a self, charges: &'a [Charge])
    -> BoxFuture<'a, Result<(), LimiterUnavailable>>;
}

/// The bucket arithmetic every backend shares: the balance at `now`.
pub fn refilled(balance: f64, last: f64, now: f64, limit: &Limit) -> f64 {
    if now <= last || balance >= limit.capacity as f64 {
        return balance.min(limit.capacity as f64).max(balance.min(0.0));
    }
    (balance + (now - last) * limit.rate_per_second()).min(limit.capacity as f64)
}

/// How long until `amount` fits in a bucket holding `balance`; `None` if it never can.
pub fn wait_for(amount: i64, balance: f64, limit: &Limit) -> Option<Duration> {
    if amount as f64 > limit.capacity as f64 || limit.refill_rate == 0 {
        return (amount as f64 <= balance).then_some(Duration::ZERO);
    }
    let short = amount as f64 - balance;
    Some(if short <= 0.0 {
        Duration::ZERO
    } else {
        seconds(short / limit.rate_per_second())
    })
}

/// A wait in seconds as a `Duration`, saturating instead of panicking when a rule's numbers
/// (a huge capacity over a long interval) make it larger than a `Duration` holds.
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(if secs > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// The in-process backend: balances in memory, in shards, each bucket behind its own lock; a
/// reservation locks its buckets in key order, so concurrent calls never deadlock and never
/// wait on a global lock.
///
/// # Bounds
///
/// Clients choose tag values, and a `tensorzero::each` rule makes a bucket per value, so the
/// table is capped (`max_buckets`). A bucket may be forgotten only when nobody holds it and its
/// refilled balance is back at its own capacity: a full bucket and a missing one are the same,
/// so forgetting it changes no decision. When the table is full of buckets that are not full,
/// a new bucket is refused ([`LimiterUnavailable::Full`]) rather than a drained one dropped
/// (which would hand its scope a fresh allowance). Shards are chosen with a per-process random
/// hasher, so nobody can aim keys at one shard.
pub struct InProcessBackend {
    shards: Vec<Mutex<HashMap<String, Arc<Mutex<State>>>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Buckets in every shard together.
    count: AtomicUsize,
    /// The cap on `count`; settable because reloads may change it while balances live on.
    max_buckets: AtomicUsize,
    /// When the last sweep for forgettable buckets ran (ms from `epoch`, +1 so 0 means never):
    /// a full table sweeps at most once per [`SWEEP_INTERVAL`], so a flood of new keys costs
    /// each request a lookup, not a scan.
    last_sweep_ms: AtomicU64,
    epoch: Instant,
}

#[derive(Debug)]
struct State {
    balance: f64,
    last: f64,
    /// The bucket's own limit: what "full again" means for it.
    limit: Limit,
}

impl State {
    /// Whether forgetting this bucket would change nothing: its balance has refilled to its
    /// capacity.
    fn is_full(&self, now: f64) -> bool {
        refilled(self.balance, self.last, now, &self.limit) >= self.limit.capacity as f64
    }
}

const SHARDS: usize = 64;
/// The default for `max_buckets`.
pub const DEFAULT_MAX_BUCKETS: usize = 100_000;
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Default for InProcessBackend {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BUCKETS)
    }
}

impl InProcessBackend {
    /// An empty table that holds at most `max_buckets` buckets.
    pub fn new(max_buckets: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            count: AtomicUsize::new(0),
            max_buckets: AtomicUsize::new(max_buckets.max(1)),
            last_sweep_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Changes the cap (a reload); buckets above a lowered cap are forgotten as they fill.
    pub fn set_max_buckets(&self, max_buckets: usize) {
        self.max_buckets
            .store(max_buckets.max(1), Ordering::Relaxed);
    }

    /// How many buckets the table holds.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the table holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Arc<Mutex<State>>>> {
        use std::hash::BuildHasher;
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn bucket(&self, bucket: &Bucket, now: f64) -> Result<Arc<Mutex<State>>, LimiterUnavailable> {
        let shard = self.shard(&bucket.key);
        if let Some(state) = shard.lock().expect("rate-limit shard").get(&bucket.key) {
            return Ok(state.clone());
        }
        let max = self.max_buckets.load(Ordering::Relaxed);
        if self.count.load(Ordering::Relaxed) >= max {
            self.sweep(now);
            if self.count.load(Ordering::Relaxed) >= max {
                return Err(LimiterUnavailable::Full { max_buckets: max });
            }
        }
        let mut map = shard.lock().expect("rate-limit shard");
        let state = map.entry(bucket.key.clone()).or_insert_with(|| {
            self.count.fetch_add(1, Ordering::Relaxed);
            Arc::new(Mutex::new(State {
                balance: bucket.limit.capacity as f64,
                last: now,
                limit: bucket.limit,
            }))
        });
        Ok(state.clone())
    }

    /// Forgets every bucket nobody holds whose balance has refilled to capacity, unless a sweep
    /// ran less than [`SWEEP_INTERVAL`] ago.
    fn sweep(&self, now: f64) {
        let now_ms = (now * 1000.0) as u64 + 1;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms < last + SWEEP_INTERVAL.as_millis() as u64 {
            return;
        }
        if self
            .last_sweep_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another caller is sweeping
        }
        for shard in &self.shards {
            let mut map = shard.lock().expect("rate-limit shard");
            let before = map.len();
            map.retain(|_, state| {
                Arc::strong_count(state) > 1
                    || !state.lock().map(|s| s.is_full(now)).unwrap_or(false)
            });
            self.count.fetch_sub(before - map.len(), Ordering::Relaxed);
        }
    }

    fn locked<R>(
        &self,
        charges: &[Charge],
        f: impl FnOnce(&mut [std::sync::MutexGuard<'_, State>], f64) -> R,
    ) -> Result<R, LimiterUnavailable> {
        let now = self.now();
        let mut order: Vec<usize> = (0..charges.len()).collect();
        order.sort_by(|a, b| charges[*a].bucket.key.cmp(&charges[*b].bucket.key));
        let cells = charges
            .iter()
            .map(|c| self.bucket(&c.bucket, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut guards: Vec<Option<std::sync::MutexGuard<'_, State>>> =
            (0..charges.len()).map(|_| None).collect();
        for i in order {
            guards[i] = Some(cells[i].lock().expect("rate-limit bucket"));
        }
        let mut guards: Vec<std::sync::MutexGuard<'_, State>> =
            guards.into_iter().map(|g| g.expect("locked")).collect();
        Ok(f(&mut guards, now))
    }
}

impl LimiterBackend for InProcessBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        let verdict = self.locked(charges, |states, now| {
            let balances: Vec<f64> = states
                .iter()
                .zip(charges)
                .map(|(s, c)| refilled(s.balance, s.last, now, &c.bucket.limit))
                .collect();
            if balances
                .iter()
                .zip(charges)
                .any(|(b, c)| *b < c.amount as f64)
            {
                return Verdict::Denied { balances };
            }
            let mut after = Vec::with_capacity(charges.len());
            for ((state, balance), charge) in states.iter_mut().zip(&balances).zip(charges) {
                state.balance = balance - charge.amount as f64;
                state.last = now;
                state.limit = charge.bucket.limit;
                after.push(state.balance);
            }
            Verdict::Allowed { balances: after }
        });
        Box::pin(async move { verdict })
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        let settled = self.locked(charges, |states, now| {
            for (state, charge) in states.iter_mut().zip(charges) {
                let balance = refilled(state.balance, state.last, now, &charge.bucket.limit);
                state.balance =
                    (balance - charge.amount as f64).min(charge.bucket.limit.capacity as f64);
                state.last = now;
                state.limit = charge.bucket.limit;
            }
        });
        Box::pin(async move { settled })
    }
}

/// A limit was hit: what, by how much, and when the request would fit.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimited {
    /// The buckets that were short.
    pub short: Vec<Shortfall>,
    /// Every bucket of the request, for the `x-ratelimit-*` headers.
    pub buckets: Vec<BucketStatus>,
}

/// A bucket that could not cover the request.
#[derive(Clone, Debug, PartialEq)]
pub struct Shortfall {
    /// The rule.
    pub rule: String,
    /// Its scope, with the matched values.
    pub scope: String,
    /// What it counts.
    pub resource: Resource,
    /// What the request needed.
    pub requested: i64,
    /// What was there.
    pub available: i64,
    /// When it would fit; `None` if never (more than the capacity).
    pub retry_after: Option<Duration>,
}

/// One bucket's state, for response headers.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketStatus {
    /// What it counts.
    pub resource: Resource,
    /// Its capacity.
    pub limit: u64,
    /// What is left (floored at 0).
    pub remaining: u64,
    /// Until it is full again.
    pub reset: Duration,
}

impl RateLimited {
    /// When the request would fit: the longest wait over the short buckets (`None` if one can
    /// never hold it).
    pub fn retry_after(&self) -> Option<Duration> {
        self.short
            .iter()
            .try_fold(Duration::ZERO, |acc, s| s.retry_after.map(|r| acc.max(r)))
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.short.as_slice() {
            write!(
                f,
                "TensorZero rate limit exceeded for `{}` resource.\nRule: {}\nScope: {}\nRequested: {}\nAvailable: {}",
                one.resource.as_str(),
                one.rule,
                one.scope,
                one.requested,
                one.available
            )?;
        } else {
            write!(
                f,
                "TensorZero rate limits exceeded for {} rules:",
                self.short.len()
            )?;
            for s in &self.short {
                write!(
                    f,
                    "\n- `{}` resource, rule {}, scope {}: requested {}, available {}",
                    s.resource.as_str(),
                    s.rule,
                    s.scope,
                    s.requested,
                    s.available
                )?;
            }
        }
        match self.retry_after() {
            Some(wait) => write!(f, "\nRetry after: {} s", wait.as_secs_f64().ceil().max(1.0)),
            None => write!(
                f,
                "\nThe request needs more than the limit's capacity; it can never fit as sent (lower `max_tokens`)"
            ),
        }
    }
}

impl std::error::Error for RateLimited {}

/// A call's token estimate, for `tokens` buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenEstimate {
    /// The input's estimated tokens.
    pub input: u64,
    /// The most output the call may produce.
    pub output: u64,
}

impl TokenEstimate {
    /// What is reserved: input and output.
    pub fn total(self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// A call that can estimate its tokens before it is sent.
pub trait EstimateTokens {
    /// The input estimate, and the most output the call may produce (`default_max_tokens` when
    /// it sets no `max_tokens`).
    fn estimated_tokens(&self, default_max_tokens: u32) -> TokenEstimate;
}

/// What a response says, once, about the tokens it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageReport {
    /// The provider's count, input and output together.
    Reported(u64),
    /// The stream was dropped before its end (the client went away): what it had produced.
    /// The bucket is charged the reservation or this, whichever is larger, so hanging up
    /// cannot dodge a token limit.
    Abandoned {
        /// The input tokens, if the provider had said.
        input: Option<u64>,
        /// The output tokens seen: the provider's partial count, or an estimate from the text
        /// that went by, whichever is larger.
        output: u64,
    },
    /// Nothing is known (the provider never said).
    Unknown,
}

/// A response that can report its actual token usage, now or when its stream ends.
pub trait ReportUsage {
    /// Calls `settle` once with what is known of the tokens used.
    fn report_usage(self, settle: Box<dyn FnOnce(UsageReport) + Send>) -> Self;
}

/// An error that says whether the provider may already have charged for the call.
pub trait MaybeCharged {
    /// `false` when nothing was generated (refused, unreachable, bad request): the reservation
    /// is given back.
    fn provider_may_have_charged(&self) -> bool;
}

/// Builds [`RateLimit`] services.
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Option<Arc<LimiterShared>>,
}

struct LimiterShared {
    rules: Rules,
    backend: Arc<dyn LimiterBackend>,
    default_max_tokens: u32,
    metrics: Option<RateLimitMetrics>,
}

/// What the rate limiter records: its decisions and how its store behaves.
#[derive(Clone, Debug)]
pub struct RateLimitMetrics {
    /// Reservations granted.
    pub allowed: Arc<Counter>,
    /// Refusals, by the rule that refused (its name from the config).
    pub denied: Arc<Family<Counter>>,
    /// How long the store took to decide, in seconds.
    pub store_latency: Arc<Histogram>,
    /// Decisions the store could not make (it was down or answered nonsense).
    pub store_errors: Arc<Counter>,
    /// Settlements (usage adjustments and refunds) the store has applied.
    pub settlements: Arc<Counter>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shared {
            Some(s) => f
                .debug_struct("RateLimitLayer")
                .field("rules", &s.rules)
                .finish_non_exhaustive(),
            None => f.write_str("RateLimitLayer(disabled)"),
        }
    }
}

impl RateLimitLayer {
    /// Enforces `rules` with `backend`.
    pub fn new(rules: Rules, backend: Arc<dyn LimiterBackend>, default_max_tokens: u32) -> Self {
        Self {
            shared: (!rules.is_empty()).then(|| {
                Arc::new(LimiterShared {
                    rules,
                    backend,
                    default_max_tokens,
                    metrics: None,
                })
            }),
        }
    }

    /// Records decisions and store behaviour in `metrics`.
    pub fn with_metrics(self, metrics: RateLimitMetrics) -> Self {
        Self {
            shared: self.shared.map(|s| {
                Arc::new(LimiterShared {
                    rules: s.rules.clone(),
                    backend: s.backend.clone(),
                    default_max_tokens: s.default_max_tokens,
                    metrics: Some(metrics),
                })
            }),
        }
    }

    /// No limits.
    pub fn disabled() -> Self {
        Self { shared: None }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Reserves, calls, settles.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Option<Arc<LimiterShared>>,
}

type BoxResult<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, T> Service<Call<T>> for RateLimit<S>
where
    S: Service<Call<T>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: ReportUsage + Send,
    S::Error: From<RateLimited> + From<LimiterUnavailable> + MaybeCharged + Send,
    T: EstimateTokens + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxResult<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let Some(shared) = self.shared.clone() else {
            return Either::Left(self.inner.call(call));
        };
        let empty = BTreeMap::new();
        let tags = call.extensions.get::<Tags>().map(|t| t.0.clone());
        let api_key = call.extensions.get::<ApiKeyPublicId>().map(|k| k.0.clone());
        let buckets = shared
            .rules
            .select(tags.as_deref().unwrap_or(&empty), api_key.as_deref());
        if buckets.is_empty() {
            return Either::Left(self.inner.call(call));
        }
        let estimate = if buckets.iter().any(|b| b.limit.resource == Resource::Tokens) {
            call.payload.estimated_tokens(shared.default_max_tokens)
        } else {
            TokenEstimate::default()
        };
        let tokens = i64::try_from(estimate.total()).unwrap_or(i64::MAX);
        let charges: Vec<Charge> = buckets
            .into_iter()
            .map(|bucket| {
                let amount = match bucket.limit.resource {
                    Resource::ModelInferences => 1,
                    Resource::Tokens => tokens,
                };
                Charge { bucket, amount }
            })
            .collect();
        let stats = call.extensions.get::<Arc<InferenceStats>>().cloned();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let started_at = std::time::SystemTime::now();
            let asked = tokio::time::Instant::now();
            let verdict = shared.backend.reserve(&charges).await;
            let took = asked.elapsed();
            let metrics = shared.metrics.as_ref();
            if let Some(m) = metrics {
                m.store_latency.observe(took.as_secs_f64());
            }
            if let Some(stats) = &stats {
                stats.add_rate_limit(took);
                stats.record_phase(Phase {
                    name: "rate_limit",
                    started_at,
                    duration: took,
                });
            }
            match verdict {
                Err(unavailable) => {
                    if let Some(m) = metrics {
                        m.store_errors.inc();
                    }
                    return Err(S::Error::from(unavailable));
                }
                Ok(Verdict::Allowed { .. }) => {
                    if let Some(m) = metrics {
                        m.allowed.inc();
                    }
                }
                Ok(Verdict::Denied { balances }) => {
                    let refusal = denial(&charges, &balances);
                    if let (Some(m), Some(short)) = (metrics, refusal.short.first()) {
                        m.denied.with(&[&short.rule]).inc();
                    }
                    return Err(refusal.into());
                }
            }
            match inner.call(call).await {
                Ok(response) => {
                    let settle_shared = shared.clone();
                    Ok(response.report_usage(Box::new(move |report| {
                        let used = match report {
                            UsageReport::Reported(actual) => actual,
                            UsageReport::Abandoned { input, output } => input
                                .unwrap_or(estimate.input)
                                .saturating_add(output)
                                .max(estimate.total()),
                            UsageReport::Unknown => return,
                        };
                        let used = i64::try_from(used).unwrap_or(i64::MAX);
                        let adjustments: Vec<Charge> = charges
                            .into_iter()
                            .filter(|c| c.bucket.limit.resource == Resource::Tokens)
                            .map(|c| Charge {
                                amount: used.saturating_sub(c.amount),
                                bucket: c.bucket,
                            })
                            .filter(|c| c.amount != 0)
                            .collect();
                        settle_later(settle_shared, adjustments);
                    })))
                }
                Err(error) => {
                    if !error.provider_may_have_charged() {
                        let refunds = charges
                            .into_iter()
                            .map(|c| Charge {
                                amount: -c.amount,
                                bucket: c.bucket,
                            })
                            .collect();
                        settle_later(shared, refunds);
                    }
                    Err(error)
                }
            }
        }))
    }
}

/// Settles off the response path; a failure is logged (the backend's own recovery keeps the
/// next decisions safe).
fn settle_later(shared: Arc<LimiterShared>, charges: Vec<Charge>) {
    if charges.is_empty() {
        return;
    }
    let task = async move {
        match shared.backend.settle(&charges).await {
            Ok(()) => {
                if let Some(m) = &shared.metrics {
                    m.settlements.inc();
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not settle rate-limit usage"),
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(task);
        }
        Err(_) => tracing::warn!("no runtime to settle rate-limit usage on"),
    }
}

fn denial(charges: &[Charge], balances: &[f64]) -> RateLimited {
    let mut short = Vec::new();
    let mut buckets = Vec::new();
    for (charge, balance) in charges.iter().zip(balances) {
        let limit = &charge.bucket.limit;
        if *balance < charge.amount as f64 {
            short.push(Shortfall {
                rule: charge.bucket.rule.clone(),
                scope: charge.bucket.scope.clone(),
                resource: limit.resource,
                requested: charge.amount,
                available: balance.floor() as i64,
                retry_after: wait_for(charge.amount, *balance, limit),
            });
        }
        let missing = (limit.capacity as f64 - balance).max(0.0);
        buckets.push(BucketStatus {
            resource: limit.resource,
            limit: limit.capacity,
            remaining: balance.max(0.0).floor() as u64,
            reset: if limit.refill_rate == 0 {
                Duration::ZERO
            } else {
                seconds(missing / limit.rate_per_second())
            },
        });
    }
    RateLimited { short, buckets }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(resource: Resource, window: Window, capacity: u64, refill_rate: u64) -> Limit {
        Limit {
            resource,
            window,
            capacity,
            refill_rate,
        }
    }

    fn tag(key: &str, value: ScopeMatch) -> Scope {
        Scope::Tag {
            key: key.into(),
            value,
        }
    }

    fn rule(name: &str, priority: Priority, scope: Vec<Scope>, limits: Vec<Limit>) -> Rule {
        Rule {
            name: name.into(),
            limits,
            priority,
            scope,
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn per_minute(n: u64) -> Vec<Limit> {
        vec![limit(Resource::ModelInferences, Window::Minute, n, n)]
    }

    #[test]
    fn the_highest_matching_priority_and_every_always_rule_apply() {
        let rules = Rules::new(vec![
            rule("low", Priority::Level(1), vec![], per_minute(100)),
            rule(
                "high",
                Priority::Level(5),
                vec![tag("user", ScopeMatch::Each)],
                per_minute(10),
            ),
            rule(
                "vip",
                Priority::Level(9),
                vec![tag("user", ScopeMatch::Concrete("vip".into()))],
                per_minute(1000),
            ),
            rule(
                "global",
                Priority::Always,
                vec![tag("team", ScopeMatch::Total)],
                per_minute(500),
            ),
        ]);
        let names = |t: &[(&str, &str)], key: Option<&str>| -> Vec<String> {
            rules
                .select(&tags(t), key)
                .into_iter()
                .map(|b| b.rule)
                .collect()
        };
        assert_eq!(
            names(&[], None),
            ["low"],
            "no tags: only the unscoped rule matches"
        );
        assert_eq!(names(&[("user", "ann")], None), ["high"]);
        assert_eq!(names(&[("user", "vip")], None), ["vip"]);
        assert_eq!(
            names(&[("user", "ann"), ("team", "x")], None),
            ["high", "global"]
        );
        assert_eq!(names(&[("team", "x")], None), ["low", "global"]);
    }

    #[test]
    fn each_gives_a_bucket_per_value_total_one_for_all() {
        let rules = Rules::new(vec![
            rule(
                "each",
                Priority::Always,
                vec![tag("user", ScopeMatch::Each)],
                per_minute(1),
            ),
            rule(
                "total",
                Priority::Always,
                vec![tag("team", ScopeMatch::Total)],
                per_minute(1),
            ),
            rule(
                "key",
                Priority::Always,
                vec![Scope::ApiKey(ScopeMatch::Each)],
                per_minute(1),
            ),
        ]);
        let key_of = |t: &[(&str, &str)], rule: &str, api: Option<&str>| {
            rules
                .select(&tags(t), api)
                .into_iter()
                .find(|b| b.rule == rule)
                .map(|b| b.key)
        };
        assert_ne!(
            key_of(&[("user", "a")], "each", None),
            key_of(&[("user", "b")], "each", None)
        );
        assert_eq!(
            key_of(&[("team", "a")], "total", None),
            key_of(&[("team", "b")], "total", None)
        );
        assert_ne!(
            key_of(&[], "key", Some("AAAAAAAAAAAA")),
            key_of(&[], "key", Some("BBBBBBBBBBBB"))
        );
        assert_eq!(
            key_of(&[], "key", None),
            None,
            "an unauthenticated request matches no API-key scope"
        );
        let b = rules.select(&tags(&[("user", "ann")]), None);
        assert_eq!(
            b[0].scope,
            "tag_key=\"user\", tag_value=\"tensorzero::each\" (matched: \"ann\")"
        );
    }

    #[test]
    fn scope_values_cannot_collide_through_separators() {
        let rules = Rules::new(vec![rule(
            "r",
            Priority::Always,
            vec![tag("a", ScopeMatch::Each), tag("b", ScopeMatch::Each)],
            per_minute(1),
        )]);
        let k1 = &rules.select(&tags(&[("a", "x;tag:1:b:each:1:y"), ("b", "z")]), None)[0].key;
        let k2 = &rules.select(&tags(&[("a", "x"), ("b", "y;z")]), None)[0].key;
        assert_ne!(k1, k2);
    }

    #[test]
    fn buckets_refill_continuously_up_to_capacity() {
        let l = limit(Resource::Tokens, Window::Minute, 600, 60); // one token a second
        assert_eq!(refilled(0.0, 0.0, 30.0, &l), 30.0);
        assert_eq!(refilled(590.0, 0.0, 60.0, &l), 600.0);
        assert_eq!(
            refilled(-100.0, 0.0, 10.0, &l),
            -90.0,
            "a debt is repaid by refill"
        );
        for (window, secs) in [
            (Window::Second, 1),
            (Window::Hour, 3600),
            (Window::Day, 86400),
            (Window::Week, 604800),
            (Window::Month, 2592000),
        ] {
            let l = limit(Resource::ModelInferences, window, 10, 10);
            assert!(
                (refilled(0.0, 0.0, secs as f64, &l) - 10.0).abs() < 1e-9,
                "{window:?}"
            );
            assert!(
                (refilled(0.0, 0.0, secs as f64 / 2.0, &l) - 5.0).abs() < 1e-9,
                "{window:?}"
            );
        }
        assert_eq!(wait_for(10, 4.0, &l), Some(Duration::from_secs(6)));
        assert_eq!(
            wait_for(601, 600.0, &l),
            None,
            "more than the capacity never fits"
        );
    }

    fn charge(key: &str, capacity: u64, refill: u64, amount: i64) -> Charge {
        Charge {
            bucket: Bucket {
                key: key.into(),
                rule: "r".into(),
                scope: "s".into(),
                limit: limit(Resource::Tokens, Window::Minute, capacity, refill),
            },
            amount,
        }
    }

    /// The balances of buckets `a` (capacity 10) and `b` (capacity 5), without changing them.
    async fn peek(b: &InProcessBackend, keys: &[&str]) -> Vec<f64> {
        let caps = |k: &str| if k == "a" { 10 } else { 5 };
        let charges: Vec<Charge> = keys.iter().map(|k| charge(k, caps(k), 60, 0)).collect();
        match b.reserve(&charges).await.unwrap() {
            Verdict::Allowed { balances } | Verdict::Denied { balances } => balances,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_process_reservations_are_all_or_nothing_and_settle() {
        let b = InProcessBackend::default();
        let both = [charge("a", 10, 60, 6), charge("b", 5, 60, 4)];
        assert!(matches!(
            b.reserve(&both).await.unwrap(),
            Verdict::Allowed { .. }
        ));
        // b has 1 left: the pair is refused and a is not touched.
        match b.reserve(&both).await.unwrap() {
            Verdict::Denied { balances } => assert_eq!(balances, vec![4.0, 1.0]),
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            b.reserve(&[charge("a", 10, 60, 4)]).await.unwrap(),
            Verdict::Allowed { .. }
        ));
        // Refund 3 to b, charge a debt of 5 to a.
        b.settle(&[charge("b", 5, 60, -3), charge("a", 10, 60, 5)])
            .await
            .unwrap();
        assert_eq!(peek(&b, &["a", "b"]).await, vec![-5.0, 4.0]);
        // A refund never lifts a bucket above its capacity; time refills it (one per second here).
        b.settle(&[charge("b", 5, 60, -100)]).await.unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        let balances = peek(&b, &["a", "b"]).await;
        assert!((balances[0] - -2.0).abs() < 1e-6, "{balances:?}");
        assert_eq!(balances[1], 5.0);
        // A bucket in debt refuses until refill has paid the debt back.
        assert!(matches!(
            b.reserve(&[charge("a", 10, 60, 1)]).await.unwrap(),
            Verdict::Denied { .. }
        ));
    }

    fn daily(key: &str, amount: i64) -> Charge {
        Charge {
            bucket: Bucket {
                key: key.into(),
                rule: "r".into(),
                scope: "s".into(),
                limit: limit(Resource::ModelInferences, Window::Day, 100, 100),
            },
            amount,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_forgets_only_refilled_buckets_and_never_a_drained_one() {
        let b = InProcessBackend::new(2);
        // A daily bucket half drained, and a bucket that was used and has refilled since.
        b.reserve(&[daily("drained", 50)]).await.unwrap();
        b.reserve(&[charge("refilled", 10, 600, 5)]).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.len(), 2);
        // A third key: the refilled bucket is forgotten, the drained one stays drained.
        b.reserve(&[daily("third", 1)]).await.unwrap();
        assert_eq!(b.len(), 2);
        match b.reserve(&[daily("drained", 0)]).await.unwrap() {
            Verdict::Allowed { balances } => assert!(balances[0] < 51.0, "{balances:?}"),
            v => panic!("{v:?}"),
        }
        // Both left are drained: a fourth key is refused, naming the setting, not admitted
        // by dropping one.
        tokio::time::advance(SWEEP_INTERVAL).await;
        let e = b.reserve(&[daily("fourth", 1)]).await.unwrap_err();
        assert_eq!(e, LimiterUnavailable::Full { max_buckets: 2 });
        assert!(
            e.to_string()
                .contains("gateway.limits.max_rate_limit_buckets"),
            "{e}"
        );
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn bucket_keys_stay_short_whatever_the_tag_values() {
        let rules = Rules::new(vec![rule(
            "r",
            Priority::Level(0),
            vec![tag("user", ScopeMatch::Each)],
            per_minute(5),
        )]);
        let long = "u".repeat(100_000);
        let a = rules.select(&tags(&[("user", &long)]), None);
        let b = rules.select(&tags(&[("user", &format!("{long}x"))]), None);
        assert!(a[0].key.len() < 100, "{}", a[0].key);
        assert_ne!(a[0].key, b[0].key, "distinct values keep distinct buckets");
        let short = rules.select(&tags(&[("user", "alice")]), None);
        assert!(short[0].key.contains("alice"), "{}", short[0].key);
    }

    #[test]
    fn the_message_names_rule_scope_resource_and_amounts() {
        let c = [charge("k", 100, 60, 150), charge("k2", 1000, 60, 150)];
        let e = denial(&c, &[40.0, 900.0]);
        let text = e.to_string();
        assert!(
            text.starts_with("TensorZero rate limit exceeded for `tokens` resource."),
            "{text}"
        );
        assert!(text.contains("Requested: 150\nAvailable: 40"), "{text}");
        assert!(text.contains("never fit"), "150 > capacity 100: {text}");
        let e = denial(&[charge("k", 100, 60, 50)], &[40.0]);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(10)));
        assert_eq!(e.buckets[0].remaining, 40);
    }
}
