//! `[rate_limiting]`: token-bucket rules scoped by tags and API key.
//!
//! This module only parses and checks the rules; enforcement lives in the rate-limit layer.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// `[rate_limiting]`.
#[derive(Clone, Debug, Deserialize)]
pub struct RateLimitingConfig {
    /// Whether rules are enforced (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `auto`, `valkey` or `postgres` (accepted for compatibility).
    pub backend: Option<String>,
    /// What `cost_per_*` buckets reserve, in dollars, for a call the gateway cannot price
    /// from the model's prices and `max_tokens` (default $1, as in TensorZero); settled with
    /// the real cost once the answer reports it.
    pub default_cost: Option<f64>,
    /// The output tokens reserved for a call that sets no `max_tokens` (default 1024; a
    /// switchyard extension, so token limits also hold for clients that never send it).
    pub default_max_tokens: Option<u32>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RateLimitRule>,
}

impl Default for RateLimitingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: None,
            default_cost: None,
            default_max_tokens: None,
            rules: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `[[rate_limiting.rules]]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RateLimitRule {
    /// Requests per second.
    pub model_inferences_per_second: Option<RateLimitValue>,
    /// Requests per minute.
    pub model_inferences_per_minute: Option<RateLimitValue>,
    /// Requests per hour.
    pub model_inferences_per_hour: Option<RateLimitValue>,
    /// Requests per day.
    pub model_inferences_per_day: Option<RateLimitValue>,
    /// Requests per week.
    pub model_inferences_per_week: Option<RateLimitValue>,
    /// Requests per month (30 days).
    pub model_inferences_per_month: Option<RateLimitValue>,
    /// Tokens per second.
    pub tokens_per_second: Option<RateLimitValue>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<RateLimitValue>,
    /// Tokens per hour.
    pub tokens_per_hour: Option<RateLimitValue>,
    /// Tokens per day.
    pub tokens_per_day: Option<RateLimitValue>,
    /// Tokens per week.
    pub tokens_per_week: Option<RateLimitValue>,
    /// Tokens per month (30 days).
    pub tokens_per_month: Option<RateLimitValue>,
    /// Dollars per second (held in nano-dollars).
    #[serde(default, deserialize_with = "dollars")]
    pub cost_per_second: Option<RateLimitValue>,
    /// Dollars per minute.
    #[serde(default, deserialize_with = "dollars")]
    pub cost_per_minute: Option<RateLimitValue>,
    /// Dollars per hour.
    #[serde(default, deserialize_with = "dollars")]
    pub cost_per_hour: Option<RateLimitValue>,
    /// Dollars per day.
    #[serde(default, deserialize_with = "dollars")]
    pub cost_per_day: Option<RateLimitValue>,
    /// Dollars per week.
    #[serde(default, deserialize_with = "dollars")]
    pub cost_per_week: Option<RateLimitValue>,
    /// Dollars per month (30 days).
    #[serde(default, deserialize_with = "dollars")]
    pub cost_per_month: Option<RateLimitValue>,
    /// Among matching rules only the highest priority applies.
    pub priority: Option<u64>,
    /// Applies whenever it matches, whatever the priorities.
    pub always: Option<bool>,
    /// All entries must match for the rule to apply.
    #[serde(default)]
    pub scope: Vec<ScopeEntry>,
}

impl RateLimitRule {
    /// Every limit the rule sets, named by its key.
    pub fn limits(&self) -> Vec<(&'static str, RateLimitValue)> {
        [
            (
                "model_inferences_per_second",
                self.model_inferences_per_second,
            ),
            (
                "model_inferences_per_minute",
                self.model_inferences_per_minute,
            ),
            ("model_inferences_per_hour", self.model_inferences_per_hour),
            ("model_inferences_per_day", self.model_inferences_per_day),
            ("model_inferences_per_week", self.model_inferences_per_week),
            (
                "model_inferences_per_month",
                self.model_inferences_per_month,
            ),
            ("tokens_per_second", self.tokens_per_second),
            ("tokens_per_minute", self.tokens_per_minute),
            ("tokens_per_hour", self.tokens_per_hour),
            ("tokens_per_day", self.tokens_per_day),
            ("tokens_per_week", self.tokens_per_week),
            ("tokens_per_month", self.tokens_per_month),
            ("cost_per_second", self.cost_per_second),
            ("cost_per_minute", self.cost_per_minute),
            ("cost_per_hour", self.cost_per_hour),
            ("cost_per_day", self.cost_per_day),
            ("cost_per_week", self.cost_per_week),
            ("cost_per_month", self.cost_per_month),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// A limit: `n` (capacity = refill = n) or `{ capacity, refill_rate }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitValue {
    /// The most the bucket holds.
    pub capacity: u64,
    /// How much it refills per window.
    pub refill_rate: u64,
}

impl<'de> Deserialize<'de> for RateLimitValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = RateLimitValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or { capacity = N, refill_rate = N }")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RateLimitValue {
                    capacity: v,
                    refill_rate: v,
                })
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("a limit cannot be negative (got {v})")))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut capacity, mut refill_rate) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "capacity" => capacity = Some(map.next_value::<u64>()?),
                        "refill_rate" => refill_rate = Some(map.next_value::<u64>()?),
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["capacity", "refill_rate"],
                            ));
                        }
                    }
                }
                Ok(RateLimitValue {
                    capacity: capacity.ok_or_else(|| de::Error::missing_field("capacity"))?,
                    refill_rate: refill_rate
                        .ok_or_else(|| de::Error::missing_field("refill_rate"))?,
                })
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

/// A cost limit: dollars `d` (capacity = refill = d) or `{ capacity = d, refill_rate = d }`,
/// held in nano-dollars as the buckets count them.
fn dollars<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RateLimitValue>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, deny_unknown_fields)]
    enum Written {
        Amount(f64),
        Bucket { capacity: f64, refill_rate: f64 },
    }
    let nanodollars = |d: f64| -> Result<u64, D::Error> {
        if !d.is_finite() || d < 0.0 {
            return Err(de::Error::custom(format!(
                "a cost limit is a non-negative number of dollars (got {d})"
            )));
        }
        crate::cost::Dollars::from_f64(d)
            .and_then(|d| u64::try_from(d.nanodollars_ceil()).ok())
            .ok_or_else(|| de::Error::custom(format!("the cost limit {d} is too large")))
    };
    let written = Written::deserialize(deserializer).map_err(|_| {
        de::Error::custom(
            "a cost limit is a number of dollars or { capacity = DOLLARS, refill_rate = DOLLARS }",
        )
    })?;
    let (capacity, refill_rate) = match written {
        Written::Amount(d) => (d, d),
        Written::Bucket {
            capacity,
            refill_rate,
        } => (capacity, refill_rate),
    };
    Ok(Some(RateLimitValue {
        capacity: nanodollars(capacity)?,
        refill_rate: nanodollars(refill_rate)?,
    }))
}

/// One `scope` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeEntry {
    /// `{ tag_key, tag_value }`.
    Tag {
        /// The tag's key.
        key: String,
        /// A concrete value, `tensorzero::each` or `tensorzero::total`.
        value: String,
    },
    /// `{ api_key_public_id }`: `tensorzero::each` or a concrete public id.
    ApiKeyPublicId(String),
}

impl<'de> Deserialize<'de> for ScopeEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        match keys.as_slice() {
            ["tag_key", "tag_value"] => Ok(ScopeEntry::Tag {
                key: fields["tag_key"].clone(),
                value: fields["tag_value"].clone(),
            }),
            ["api_key_public_id"] => Ok(ScopeEntry::ApiKeyPublicId(
                fields["api_key_public_id"].clone(),
            )),
            _ => Err(de::Error::custom(format!(
                "a scope entry is {{ tag_key = \"...\", tag_value = \"...\" }} or \
                 {{ api_key_public_id = \"...\" }}, not one with keys {keys:?}"
            ))),
        }
    }
}
