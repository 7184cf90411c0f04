//! The rules of `[rate_limiting]` and how a request picks its buckets from them.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a bucket counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// Model inferences.
    ModelInferences,
    /// Tokens (input and output).
    Tokens,
    /// Money, in nano-dollars (`cost_per_*`).
    Cost,
}

impl Resource {
    /// The name in config keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::ModelInferences => "model_inferences",
            Resource::Tokens => "tokens",
            Resource::Cost => "cost",
        }
    }

    /// An amount of this resource as messages write it: a count, or dollars for cost.
    pub fn amount(self, n: i64) -> String {
        match self {
            Resource::Cost => {
                let sign = if n < 0 { "-" } else { "" };
                let n = n.unsigned_abs();
                let (whole, fraction) = (n / 1_000_000_000, n % 1_000_000_000);
                if fraction == 0 {
                    format!("{sign}${whole}")
                } else {
                    let digits = format!("{fraction:09}");
                    format!("{sign}${whole}.{}", digits.trim_end_matches('0'))
                }
            }
            _ => n.to_string(),
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

    /// Whether any rule limits `resource`.
    pub fn limit(&self, resource: Resource) -> bool {
        self.rules
            .iter()
            .any(|r| r.limits.iter().any(|l| l.resource == resource))
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
