//! Semantic checks: everything serde cannot see (names that must exist, reserved prefixes,
//! exclusive fields, limits, files on disk). All problems are reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::common::TimeoutsConfig;
use super::credential_location::CredentialLocation;
use super::functions::{ChatCompletionConfig, FunctionConfig, ToolChoiceConfig, VariantConfig};
use super::load::{ConfigError, ConfigErrors, Sources, TomlPath};
use super::models::{OpenAiApiType, ProviderKind, ProviderType};
use super::rate_limiting::ScopeEntry;
use super::{Config, Warning};

mod experimentation;
mod functions;
mod ignored;
mod models;
mod offline;

/// The names `[metrics]` may not use.
const RESERVED_METRIC_NAMES: [&str; 2] = ["comment", "demonstration"];

/// The longest `retries.max_delay_s`: a day (a retry that waits longer is a different job).
const MAX_RETRY_DELAY_S: f64 = 86_400.0;

/// The longest `gateway.global_outbound_http_timeout_ms`: a week.
const MAX_GLOBAL_TIMEOUT_MS: u64 = 7 * 86_400_000;

/// The prefix reserved for the gateway's own names.
pub const RESERVED_PREFIX: &str = "tensorzero::";

struct Checker<'a> {
    config: &'a Config,
    sources: &'a Sources,
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
}

pub(super) fn validate(config: &Config, sources: &Sources) -> Result<Vec<Warning>, ConfigErrors> {
    let mut c = Checker {
        config,
        sources,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    c.gateway();
    c.models();
    c.embedding_models();
    c.provider_types();
    c.tools();
    c.functions();
    c.metrics();
    c.rate_limiting();
    c.object_storage();
    c.offline_sections();
    c.ignored_keys();
    c.stores();
    if c.errors.is_empty() {
        Ok(c.warnings)
    } else {
        Err(ConfigErrors(c.errors))
    }
}

/// Whether `name` is a valid `provider_type::model` shorthand.
pub fn is_valid_shorthand(name: &str) -> bool {
    name.split_once("::").is_some_and(|(prefix, rest)| {
        ProviderType::from_shorthand(prefix).is_some() && !rest.is_empty()
    })
}

/// The reserved prefix `name` starts with, if any.
fn reserved_prefix(name: &str) -> Option<String> {
    if name.starts_with(RESERVED_PREFIX) {
        return Some(RESERVED_PREFIX.to_owned());
    }
    ProviderType::ALL
        .iter()
        .map(|t| format!("{}::", t.as_str()))
        .find(|p| name.starts_with(p.as_str()))
}

impl Checker<'_> {
    fn error(&mut self, path: TomlPath, message: impl Into<String>) {
        self.errors.push(self.sources.error_at(path, message));
    }

    fn warn(&mut self, path: Option<TomlPath>, message: impl Into<String>) {
        let message = message.into();
        let message = match path {
            Some(p) => match self.sources.locate(&p) {
                Some(loc) => format!("{loc}: `{p}`: {message}"),
                None => format!("`{p}`: {message}"),
            },
            None => message,
        };
        self.warnings.push(Warning { message });
    }

    fn not_supported_yet(&mut self, path: TomlPath, what: &str) {
        self.warn(
            Some(path),
            format!("{what} is not supported by switchyard yet; this setting is accepted but has no effect"),
        );
    }

    fn global_timeout(&self) -> u64 {
        self.config.gateway.global_outbound_http_timeout_ms
    }

    fn timeouts(&mut self, path: TomlPath, timeouts: &TimeoutsConfig) {
        let global = self.global_timeout();
        if let (Some(total), Some(ttft)) = (timeouts.streaming.total_ms, timeouts.streaming.ttft_ms)
            && total < ttft
        {
            self.warn(
                Some(path.key("timeouts")),
                format!("`streaming.total_ms` = {total} ms is below `streaming.ttft_ms` = {ttft} ms, so the first-token limit can never be reached"),
            );
        }
        for (name, ms) in timeouts.limits() {
            let at = path.key("timeouts");
            if ms == 0 {
                self.error(at, format!("`{name}` must be greater than 0"));
            } else if ms > global {
                self.error(
                    at,
                    format!(
                        "`{name}` = {ms} ms is larger than `gateway.global_outbound_http_timeout_ms` = {global} ms; \
                         lower it or raise the global timeout"
                    ),
                );
            }
        }
    }

    /// A duration in seconds must be a finite number from 0 to `max`: `inf`, `nan` or `1e20`
    /// would pass serde and then fail every request that turns it into a wait.
    fn seconds(&mut self, path: TomlPath, value: f64, max: f64) {
        if !value.is_finite() || value < 0.0 {
            self.error(
                path,
                format!(
                    "`{value}` is not a number of seconds; write a finite number from 0 to {max}"
                ),
            );
        } else if value > max {
            self.error(path, format!("{value} s is more than the {max} s allowed"));
        }
    }

    fn file_exists(&mut self, path: TomlPath, what: &str, file: &Path) {
        if !file.is_file() {
            self.error(
                path,
                format!(
                    "{what} file `{}` does not exist (paths are relative to the config file that names them)",
                    file.display()
                ),
            );
        }
    }

    fn json_file(&mut self, path: TomlPath, what: &str, file: &Path) {
        if !file.is_file() {
            return self.file_exists(path, what, file);
        }
        match std::fs::read_to_string(file) {
            Ok(text) => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                    self.error(
                        path,
                        format!("{what} file `{}` is not valid JSON: {e}", file.display()),
                    );
                }
            }
            Err(e) => self.error(
                path,
                format!("cannot read {what} file `{}`: {e}", file.display()),
            ),
        }
    }

    fn url(&mut self, path: TomlPath, what: &str, url: &str) {
        if let Err(why) = crate::providers::url::BaseUrl::parse(url) {
            self.error(path, format!("{what} is not an http(s) URL: {why}"));
        }
    }

    fn gateway(&mut self) {
        let g = &self.config.gateway;
        let at = TomlPath::keys(["gateway"]);
        if let Some(base) = &g.base_path {
            if !base.starts_with('/') {
                self.error(
                    at.key("base_path"),
                    format!("`{base}` must start with `/`, e.g. `/custom/prefix`"),
                );
            }
        }
        if g.global_outbound_http_timeout_ms == 0 {
            self.error(
                at.key("global_outbound_http_timeout_ms"),
                "must be greater than 0",
            );
        } else if g.global_outbound_http_timeout_ms > MAX_GLOBAL_TIMEOUT_MS {
            self.error(
                at.key("global_outbound_http_timeout_ms"),
                format!("must be at most {MAX_GLOBAL_TIMEOUT_MS} ms (a week)"),
            );
        }
        let l = &g.limits;
        let lat = at.key("limits");
        for (key, value, max) in [
            (
                "max_request_body_bytes",
                l.max_request_body_bytes as u64,
                1 << 30,
            ),
            (
                "header_read_timeout_ms",
                l.header_read_timeout_ms,
                86_400_000,
            ),
            ("body_read_timeout_ms", l.body_read_timeout_ms, 86_400_000),
            ("idle_timeout_ms", l.idle_timeout_ms, 86_400_000),
            ("max_connections", l.max_connections as u64, 1 << 20),
            ("max_tools", l.max_tools as u64, 1 << 16),
            ("max_tags", l.max_tags as u64, 1 << 16),
            ("max_tag_key_bytes", l.max_tag_key_bytes as u64, 1 << 16),
            ("max_tag_value_bytes", l.max_tag_value_bytes as u64, 1 << 20),
            (
                "max_rate_limit_buckets",
                l.max_rate_limit_buckets as u64,
                1 << 26,
            ),
        ] {
            if value == 0 || value > max {
                self.error(
                    lat.key(key),
                    format!("{value} is out of range; write a number from 1 to {max}"),
                );
            }
        }
        if let Some(relay) = &g.relay {
            let rat = at.key("relay");
            match &relay.gateway_url {
                Some(url) => {
                    self.url(rat.key("gateway_url"), "the relay URL", url);
                }
                None => self.warn(
                    Some(rat.clone()),
                    "`[gateway.relay]` has no `gateway_url`, so relay mode is off",
                ),
            }
            if let Some(loc) = &relay.api_key_location {
                if !relay_location_ok(loc) {
                    self.error(
                        rat.key("api_key_location"),
                        format!(
                            "`{loc}` cannot hold the relay key: use `env::VAR`, `dynamic::NAME`, `none`, \
                             or {{ default = ..., fallback = ... }} of those"
                        ),
                    );
                }
            }
        }
        let shield = &g.auth.shield;
        if shield.enabled && (shield.failures_per_minute == 0 || shield.burst == 0) {
            self.error(
                at.key("auth").key("shield"),
                "`failures_per_minute` and `burst` must be at least 1 (or set `enabled = false`)",
            );
        }
        if let Some(name) = &shield.client_ip_header {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(
                    at.key("auth").key("shield").key("client_ip_header"),
                    format!(
                        "{name:?} is not an HTTP header name; write one such as \"x-forwarded-for\""
                    ),
                );
            }
        }
        self.circuit_breaker(at.key("circuit_breaker"), &g.circuit_breaker);
        if let Some(b) = &g.retry_budget {
            let bat = at.key("retry_budget");
            if !b.ratio.is_finite() || b.ratio < 0.0 {
                self.error(bat.key("ratio"), "must be a number of 0 or more, e.g. 0.2");
            }
            if !b.min_per_second.is_finite() || b.min_per_second < 0.0 {
                self.error(bat.key("min_per_second"), "must be a number of 0 or more");
            }
            if b.window_s == 0 {
                self.error(bat.key("window_s"), "must be at least 1");
            }
        }
        let obs = &g.observability;
        if obs.async_writes && obs.batch_writes.as_ref().is_some_and(|b| b.enabled) {
            self.error(
                at.key("observability"),
                "`async_writes` (on unless set to false, since TensorZero 2026.4) and `batch_writes` cannot both be enabled; to batch, also set `async_writes = false`",
            );
        }
        let tfa = &g.template_filesystem_access;
        let tat = at.key("template_filesystem_access");
        if let Some(p) = &tfa.base_path
            && !p.is_dir()
        {
            self.error(
                tat.key("base_path"),
                format!("`{}` is not a directory", p.display()),
            );
        }
        match (tfa.enabled, &tfa.base_path) {
            (None, _) => {}
            (Some(_), Some(_)) => self.warn(
                Some(tat.key("enabled")),
                "is deprecated and ignored: includes are on because `base_path` is set",
            ),
            (Some(_), None) => self.warn(
                Some(tat.key("enabled")),
                "is deprecated and has no effect: template includes are on only when `base_path` is set (TensorZero 2026's rule); set `base_path = \".\"` for the config file's directory",
            ),
        }
        if let Some(buckets) = &g
            .metrics
            .tensorzero_inference_latency_overhead_seconds_buckets
        {
            // An empty list is allowed, as in TensorZero: the histogram then has only its
            // `+Inf` bucket, sum and count.
            if buckets.iter().any(|b| !b.is_finite() || *b < 0.0)
                || buckets.windows(2).any(|w| w[0] >= w[1])
            {
                self.error(
                    at.key("metrics")
                        .key("tensorzero_inference_latency_overhead_seconds_buckets"),
                    "buckets must be a strictly increasing list of finite numbers, 0 or more",
                );
            }
        }
    }

    fn metrics(&mut self) {
        for name in self.config.metrics.keys() {
            let at = TomlPath::keys(["metrics", name.as_str()]);
            if RESERVED_METRIC_NAMES.contains(&name.as_str()) {
                self.error(
                    at,
                    format!("`{name}` is reserved; pick another metric name"),
                );
            } else if name.starts_with(RESERVED_PREFIX) {
                self.error(
                    at,
                    format!("metric name `{name}` uses the reserved prefix `{RESERVED_PREFIX}`"),
                );
            }
        }
    }

    fn rate_limiting(&mut self) {
        let rl = &self.config.rate_limiting;

        let mut scope_sets: BTreeMap<Vec<ScopeEntry>, usize> = BTreeMap::new();
        for (i, rule) in rl.rules.iter().enumerate() {
            let at = TomlPath::keys(["rate_limiting", "rules"]).index(i);
            match (rule.priority, rule.always) {
                (Some(_), Some(true)) => {
                    self.error(at.clone(), "set `priority` or `always = true`, not both")
                }
                (None, None | Some(false)) => {
                    self.error(at.clone(), "set `priority = N` or `always = true`")
                }
                _ => {}
            }
            if rule.limits().is_empty() {
                self.error(at.clone(), "sets no limit; add e.g. `model_inferences_per_minute = 10` or `tokens_per_hour = 100000`");
            }
            let mut seen = BTreeSet::new();
            for (j, entry) in rule.scope.iter().enumerate() {
                let sat = at.key("scope").index(j);
                if !seen.insert(entry) {
                    self.error(sat.clone(), "this scope entry is repeated in the rule");
                }
                match entry {
                    ScopeEntry::Tag { key, value } => {
                        if value.starts_with(RESERVED_PREFIX)
                            && value != "tensorzero::each"
                            && value != "tensorzero::total"
                        {
                            self.error(sat, format!("`tag_value = \"{value}\"`: the only special values are `tensorzero::each` and `tensorzero::total`"));
                        } else if key.is_empty() {
                            self.error(sat, "`tag_key` cannot be empty");
                        }
                    }
                    ScopeEntry::ApiKeyPublicId(id) => {
                        let concrete_ok =
                            id.len() == 12 && id.chars().all(|c| c.is_ascii_alphanumeric());
                        if id != "tensorzero::each" && !concrete_ok {
                            self.error(sat, format!("`api_key_public_id = \"{id}\"` must be `tensorzero::each` or a 12-character public id"));
                        }
                    }
                }
            }
            let mut set = rule.scope.clone();
            set.sort();
            set.dedup();
            if let Some(first) = scope_sets.insert(set, i) {
                self.error(
                    at.clone(),
                    format!(
                        "has the same scope as rule {first}; merge the two rules or change a scope"
                    ),
                );
            }
        }
        if !rl.rules.is_empty() && !rl.enabled {
            self.warn(
                Some(TomlPath::keys(["rate_limiting"])),
                "`enabled = false`, so the rules are not enforced",
            );
        }
        if let Some(cost) = rl.default_cost {
            if !cost.is_finite() || cost < 0.0 {
                self.error(
                    TomlPath::keys(["rate_limiting", "default_cost"]),
                    "must be a finite, non-negative number of dollars",
                );
            }
        }
        if let Some(backend) = &rl.backend {
            if !["auto", "valkey", "memory", "postgres"].contains(&backend.as_str()) {
                self.error(
                    TomlPath::keys(["rate_limiting", "backend"]),
                    format!(
                        "`{backend}` is not a backend: use `auto`, `valkey`, `postgres` or `memory`"
                    ),
                );
            }
        }
        let limits_cost = rl.enabled
            && rl
                .rules
                .iter()
                .any(|r| r.limits().iter().any(|(k, _)| k.starts_with("cost_")));
        if limits_cost {
            let unpriced: Vec<&str> = self
                .config
                .models
                .iter()
                .filter(|(_, m)| m.providers.values().any(|p| p.cost.is_empty()))
                .map(|(name, _)| name.as_str())
                .collect();
            if !unpriced.is_empty() {
                self.warn(
                    Some(TomlPath::keys(["rate_limiting"])),
                    format!(
                        "cost limits apply, but a provider of {} has no `cost` prices: a call it answers keeps its whole reservation (`default_cost` when the model cannot be priced at all), as its real cost is unknown",
                        unpriced
                            .iter()
                            .map(|n| format!("model `{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }

    fn object_storage(&mut self) {
        use super::gateway::ObjectStorageConfig as O;
        let at = TomlPath::keys(["object_storage"]);
        match &self.config.object_storage {
            None | Some(O::Disabled(_)) => {}
            Some(O::S3Compatible(s3)) => {
                // A literal URL or `env::VAR`, as in TensorZero; no other location.
                match s3.endpoint.as_deref() {
                    None => {}
                    Some(e) if e.starts_with("env::") => {}
                    Some(e)
                        if ["dynamic::", "path::", "path_from_env::"]
                            .iter()
                            .any(|p| e.starts_with(p))
                            || e == "sdk"
                            || e == "none" =>
                    {
                        self.error(
                            at.key("endpoint"),
                            format!("`{e}`: the object storage endpoint is a URL or `env::VAR`"),
                        );
                    }
                    Some(e) => self.url(at.key("endpoint"), "the object storage endpoint", e),
                }
                // Credentials and `allow_http` are checked at start-up (observability::files).
            }
            // Checked at start-up (the directory must exist); see observability::files.
            Some(O::Filesystem(_)) => {}
        }
    }
}

fn relay_location_ok(loc: &CredentialLocation) -> bool {
    match loc {
        CredentialLocation::Env(_) | CredentialLocation::Dynamic(_) | CredentialLocation::None => {
            true
        }
        CredentialLocation::WithFallback { default, fallback } => {
            relay_location_ok(default) && relay_location_ok(fallback)
        }
        _ => false,
    }
}
