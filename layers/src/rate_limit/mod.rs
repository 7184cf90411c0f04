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
//! takes from every bucket that applies, all or nothing: 1 from `model_inferences` buckets, the
//! token estimate from `tokens` buckets, and the cost estimate from `cost` buckets (in
//! nano-dollars: the caller's [`CostEstimate`] when it could price the call, else
//! `default_cost`). When the answer reports its usage, the difference is settled: unused tokens
//! or money go back (up to capacity), extra is taken (a balance may go below zero, so real
//! usage is never forgotten). A usage that stays unknown (a provider without prices) keeps the
//! reservation. A stream the client drops is charged its reservation or what it had produced,
//! whichever is larger. A call that failed without the provider charging anything gives its
//! whole reservation back.
//!
//! # Rule selection
//!
//! A rule applies when every entry of its scope matches the request (a request without the tag
//! matches no tag scope). Of the matching rules with a `priority`, only those with the highest
//! priority apply; every matching `always` rule applies too.

mod backend;
mod error;
mod in_process;
mod rules;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use tower::{Layer, Service};

use backend::seconds;
pub use backend::{Charge, LimiterBackend, LimiterUnavailable, Verdict, refilled, wait_for};
pub use error::{BucketStatus, RateLimited, Shortfall};
pub use in_process::{DEFAULT_MAX_BUCKETS, InProcessBackend};
pub use rules::{Bucket, Limit, Priority, Resource, Rule, Rules, Scope, ScopeMatch, Window};

use crate::call::Call;
use crate::ext::{ApiKeyPublicId, InferenceStats, Phase, Tags};
use crate::metrics::{Counter, Family, Histogram};

/// What `cost` buckets reserve for a call that could not be priced: TensorZero's default
/// `rate_limiting.default_cost`, $1, in nano-dollars.
pub const DEFAULT_COST_NANODOLLARS: i64 = 1_000_000_000;

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

/// What a response says, once, about what it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageReport {
    /// Its tokens.
    pub tokens: TokenReport,
    /// Its cost in nano-dollars, when known.
    pub cost: Option<i64>,
}

impl UsageReport {
    /// Nothing is known.
    pub const UNKNOWN: UsageReport = UsageReport {
        tokens: TokenReport::Unknown,
        cost: None,
    };
}

/// What a response says about its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenReport {
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

/// What the caller expects a call to cost, in nano-dollars (a request extension), from the
/// model's prices and the call's `max_tokens`; without it, `cost` buckets reserve the configured
/// `default_cost`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostEstimate(pub i64);

/// Builds [`RateLimit`] services.
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Option<Arc<LimiterShared>>,
}

struct LimiterShared {
    rules: Rules,
    backend: Arc<dyn LimiterBackend>,
    default_max_tokens: u32,
    /// Nano-dollars reserved for a call the caller could not price.
    default_cost: i64,
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
                    default_cost: DEFAULT_COST_NANODOLLARS,
                    metrics: None,
                })
            }),
        }
    }

    /// Reserves `nanodollars` in `cost` buckets for a call without a [`CostEstimate`].
    pub fn with_default_cost(self, nanodollars: i64) -> Self {
        Self {
            shared: self.shared.map(|s| {
                Arc::new(LimiterShared {
                    rules: s.rules.clone(),
                    backend: s.backend.clone(),
                    default_max_tokens: s.default_max_tokens,
                    default_cost: nanodollars,
                    metrics: s.metrics.clone(),
                })
            }),
        }
    }

    /// Whether any rule limits cost (then callers should estimate what calls cost).
    pub fn limits_cost(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.rules.limit(Resource::Cost))
    }

    /// Records decisions and store behaviour in `metrics`.
    pub fn with_metrics(self, metrics: RateLimitMetrics) -> Self {
        Self {
            shared: self.shared.map(|s| {
                Arc::new(LimiterShared {
                    rules: s.rules.clone(),
                    backend: s.backend.clone(),
                    default_max_tokens: s.default_max_tokens,
                    default_cost: s.default_cost,
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
        let cost = call
            .extensions
            .get::<CostEstimate>()
            .map_or(shared.default_cost, |c| c.0.max(0));
        let charges: Vec<Charge> = buckets
            .into_iter()
            .map(|bucket| {
                let amount = match bucket.limit.resource {
                    Resource::ModelInferences => 1,
                    Resource::Tokens => tokens,
                    Resource::Cost => cost,
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
                        let abandoned = matches!(report.tokens, TokenReport::Abandoned { .. });
                        let tokens_used = match report.tokens {
                            TokenReport::Reported(actual) => Some(actual),
                            TokenReport::Abandoned { input, output } => Some(
                                input
                                    .unwrap_or(estimate.input)
                                    .saturating_add(output)
                                    .max(estimate.total()),
                            ),
                            TokenReport::Unknown => None,
                        }
                        .map(|t| i64::try_from(t).unwrap_or(i64::MAX));
                        // A negative total (discounts larger than charges) never credits a
                        // bucket; a dropped stream pays at least its reservation.
                        let cost_used = report
                            .cost
                            .map(|c| if abandoned { c.max(cost) } else { c.max(0) });
                        let adjustments: Vec<Charge> = charges
                            .into_iter()
                            .filter_map(|c| {
                                let used = match c.bucket.limit.resource {
                                    Resource::ModelInferences => return None,
                                    Resource::Tokens => tokens_used?,
                                    Resource::Cost => cost_used?,
                                };
                                let amount = used.saturating_sub(c.amount);
                                (amount != 0).then_some(Charge {
                                    amount,
                                    bucket: c.bucket,
                                })
                            })
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
    use super::in_process::SWEEP_INTERVAL;
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

    /// A call that reserves 1 inference (and no tokens).
    struct Ask;

    impl EstimateTokens for Ask {
        fn estimated_tokens(&self, _default_max_tokens: u32) -> TokenEstimate {
            TokenEstimate::default()
        }
    }

    impl ReportUsage for () {
        fn report_usage(self, settle: Box<dyn FnOnce(UsageReport) + Send>) -> Self {
            settle(UsageReport::UNKNOWN);
        }
    }

    impl MaybeCharged for Box<dyn std::error::Error + Send + Sync> {
        fn provider_may_have_charged(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn waits_for_its_inner_service_and_a_denial_never_reaches_it() {
        use tower_test::mock;
        let rules = Rules::new(vec![rule("r", Priority::Always, vec![], per_minute(1))]);
        let layer = RateLimitLayer::new(rules, Arc::new(InProcessBackend::default()), 10);
        let (mut svc, mut handle) = mock::spawn_layer::<Call<Ask>, (), _>(layer);
        handle.allow(0);
        tokio_test::assert_pending!(svc.poll_ready());
        handle.allow(1);
        tokio_test::assert_ready_ok!(svc.poll_ready());
        let call = svc.call(Call::new(Ask));
        let answer = async {
            let (_, send) = handle.next_request().await.expect("the call arrives");
            send.send_response(());
        };
        let (result, ()) = tokio::join!(call, answer);
        result.unwrap();
        // The one a minute is spent: the next call is refused without touching the service.
        handle.allow(1);
        tokio_test::assert_ready_ok!(svc.poll_ready());
        let denied = svc.call(Call::new(Ask)).await.unwrap_err();
        assert!(denied.is::<RateLimited>(), "{denied}");
        assert!(
            handle.poll_request().is_pending(),
            "a denied call never reaches the inner service"
        );
    }
}
