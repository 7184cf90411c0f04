//! Small config shapes shared by models, providers and variants: timeouts, `extra_body`,
//! `extra_headers`, `retries`, `json_mode`.

use serde::Deserialize;
use serde_json::Value;

/// `timeouts = { non_streaming.total_ms = .., streaming.ttft_ms = .., streaming.total_ms = .. }`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Limits for non-streaming calls.
    #[serde(default)]
    pub non_streaming: NonStreamingTimeouts,
    /// Limits for streaming calls.
    #[serde(default)]
    pub streaming: StreamingTimeouts,
}

/// `timeouts.non_streaming`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NonStreamingTimeouts {
    /// The whole request, in milliseconds.
    pub total_ms: Option<u64>,
}

/// `timeouts.streaming`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamingTimeouts {
    /// Time to the first token, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// The whole stream, in milliseconds.
    pub total_ms: Option<u64>,
    /// The longest silence between two chunks, in milliseconds. A switchyard extension: a
    /// stream that goes quiet fails with an error event instead of hanging.
    pub idle_ms: Option<u64>,
}

impl TimeoutsConfig {
    /// Every configured limit with its key name, for validation messages.
    pub fn limits(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("non_streaming.total_ms", self.non_streaming.total_ms),
            ("streaming.ttft_ms", self.streaming.ttft_ms),
            ("streaming.total_ms", self.streaming.total_ms),
            ("streaming.idle_ms", self.streaming.idle_ms),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
    }
}

impl From<&TimeoutsConfig> for switchyard_layers::timeout::Timeouts {
    fn from(t: &TimeoutsConfig) -> Self {
        let ms = |v: Option<u64>| v.map(std::time::Duration::from_millis);
        Self {
            non_streaming_total: ms(t.non_streaming.total_ms),
            streaming_ttft: ms(t.streaming.ttft_ms),
            streaming_total: ms(t.streaming.total_ms),
            streaming_idle: ms(t.streaming.idle_ms),
        }
    }
}

/// One `extra_body` entry: set (`value`) or remove (`delete = true`) the field at a JSON Pointer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraBodyEntry {
    /// A JSON Pointer (RFC 6901) into the provider request body.
    pub pointer: String,
    /// The value to put there.
    pub value: Option<Value>,
    /// `true` removes the field.
    pub delete: Option<bool>,
}

/// One `extra_headers` entry: set (`value`) or remove (`delete = true`) a header.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraHeaderEntry {
    /// The header name.
    pub name: String,
    /// The value to send.
    pub value: Option<String>,
    /// `true` removes the header.
    pub delete: Option<bool>,
}

/// What an `extra_body`/`extra_headers` entry does, once checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit<T> {
    /// Set the field or header.
    Set(T),
    /// Remove it.
    Delete,
}

impl ExtraBodyEntry {
    /// The entry's effect, or what is wrong with it.
    pub fn edit(&self) -> Result<Edit<&Value>, String> {
        edit_of(self.value.as_ref(), self.delete, "value")
    }
}

impl ExtraHeaderEntry {
    /// The entry's effect, or what is wrong with it.
    pub fn edit(&self) -> Result<Edit<&String>, String> {
        edit_of(self.value.as_ref(), self.delete, "value")
    }
}

fn edit_of<T>(value: Option<T>, delete: Option<bool>, value_key: &str) -> Result<Edit<T>, String> {
    match (value, delete) {
        (Some(v), None | Some(false)) => Ok(Edit::Set(v)),
        (None, Some(true)) => Ok(Edit::Delete),
        (Some(_), Some(true)) => Err(format!(
            "set either `{value_key}` or `delete = true`, not both"
        )),
        (None, _) => Err(format!("needs `{value_key}` or `delete = true`")),
    }
}

/// `retries = { num_retries, max_delay_s }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 0).
    #[serde(default)]
    pub num_retries: u32,
    /// The longest pause between attempts, in seconds (default 10).
    #[serde(default = "default_max_delay_s")]
    pub max_delay_s: f64,
}

fn default_max_delay_s() -> f64 {
    10.0
}

impl From<&RetryConfig> for switchyard_layers::retry::RetryPolicy {
    fn from(r: &RetryConfig) -> Self {
        Self {
            num_retries: r.num_retries,
            max_delay: std::time::Duration::from_secs_f64(r.max_delay_s.max(0.0)),
            ..Self::default()
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            num_retries: 0,
            max_delay_s: default_max_delay_s(),
        }
    }
}

/// `json_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonMode {
    /// No JSON handling.
    Off,
    /// The provider's JSON mode.
    On,
    /// The provider's strict (schema-following) JSON mode.
    Strict,
    /// A tool call under the hood, turned back into JSON: `tool` (TensorZero 2026's name) or
    /// `implicit_tool` (its permanent alias). Written as `implicit_tool`, which every
    /// TensorZero version and every switchyard relay reads.
    #[serde(alias = "tool")]
    ImplicitTool,
}

/// `circuit_breaker` (under `[gateway]` for every provider, or on one provider): when a
/// provider is skipped after failing (a switchyard extension; see the README's "Surviving
/// provider outages"). Unset keys take `[gateway.circuit_breaker]`'s, then the defaults.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// On or off (default off).
    pub enabled: Option<bool>,
    /// Failures in a row that open the circuit (default 5).
    pub consecutive_failures: Option<u32>,
    /// The failure rate, 0 to 1, in `window_ms` that opens it (default 0.5).
    pub failure_rate: Option<f64>,
    /// The window of the failure rate (default 60000).
    pub window_ms: Option<u64>,
    /// The fewest calls in the window for the rate to count (default 20).
    pub min_requests: Option<u32>,
    /// How long it stays open the first time (default 10000).
    pub cooldown_ms: Option<u64>,
    /// The longest it stays open, after failed probes double the cooldown (default 300000).
    pub max_cooldown_ms: Option<u64>,
}

impl CircuitBreakerConfig {
    /// `self`, with unset keys taken from `defaults`.
    pub fn or(&self, defaults: &CircuitBreakerConfig) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            enabled: self.enabled.or(defaults.enabled),
            consecutive_failures: self.consecutive_failures.or(defaults.consecutive_failures),
            failure_rate: self.failure_rate.or(defaults.failure_rate),
            window_ms: self.window_ms.or(defaults.window_ms),
            min_requests: self.min_requests.or(defaults.min_requests),
            cooldown_ms: self.cooldown_ms.or(defaults.cooldown_ms),
            max_cooldown_ms: self.max_cooldown_ms.or(defaults.max_cooldown_ms),
        }
    }
}

/// One entry of a provider's `cost` (or `batch_cost`): a number in the provider's raw answer
/// and its price. The cost of a call is the sum over entries of value × rate.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostEntry {
    /// A JSON Pointer into the raw answer, streaming or not.
    pub pointer: Option<String>,
    /// A JSON Pointer into a non-streaming answer (with `pointer_streaming`).
    pub pointer_nonstreaming: Option<String>,
    /// A JSON Pointer into the streamed events (with `pointer_nonstreaming`).
    pub pointer_streaming: Option<String>,
    /// Dollars per million units.
    pub cost_per_million: Option<f64>,
    /// Dollars per unit.
    pub cost_per_unit: Option<f64>,
    /// When set and the value is missing, the whole cost is unknown (otherwise it counts as 0).
    #[serde(default)]
    pub required: bool,
}
