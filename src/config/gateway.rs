//! `[gateway]` and `[object_storage]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::credential_location::CredentialLocation;

/// `[gateway]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Prefix for every route (default `/`).
    pub base_path: Option<String>,
    /// Circuit breakers of every provider (each may override; a switchyard extension).
    #[serde(default)]
    pub circuit_breaker: super::common::CircuitBreakerConfig,
    /// How many retries may add to the traffic (a switchyard extension; unset: no budget).
    pub retry_budget: Option<RetryBudgetConfig>,
    /// Where to listen (default `0.0.0.0:3000`).
    pub bind_address: Option<SocketAddr>,
    /// More verbose errors and logs.
    #[serde(default)]
    pub debug: bool,
    /// Accepted for compatibility; switchyard collects no analytics.
    #[serde(default)]
    pub disable_pseudonymous_usage_analytics: bool,
    /// `[gateway.export]`.
    #[serde(default)]
    pub export: ExportConfig,
    /// Fetch remote input files and send them inline (default false since TensorZero 2025.10:
    /// a file's URL goes to providers that take URLs). See `inference::url_files`.
    #[serde(default)]
    pub fetch_and_encode_input_files_before_inference: bool,
    /// `[gateway.observability]`.
    #[serde(default)]
    pub observability: ObservabilityConfig,
    /// `[gateway.template_filesystem_access]`.
    #[serde(default)]
    pub template_filesystem_access: TemplateFilesystemAccess,
    /// The outbound HTTP timeout, in milliseconds (default 900000); every configured timeout
    /// must be no larger.
    #[serde(default = "default_global_timeout_ms")]
    pub global_outbound_http_timeout_ms: u64,
    /// `[gateway.relay]`.
    pub relay: Option<RelayConfig>,
    /// `[gateway.cache]` (the inference cache; not built yet).
    pub cache: Option<CacheConfig>,
    /// `[gateway.auth]`.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Adds structured error details to error bodies.
    #[serde(default)]
    pub unstable_error_json: bool,
    /// Skips the target lookup on `/feedback` (which switchyard does not serve yet).
    #[serde(default)]
    pub unstable_disable_feedback_target_validation: bool,
    /// `[gateway.metrics]`.
    #[serde(default)]
    pub metrics: GatewayMetricsConfig,
    /// `[gateway.limits]`: bounds on what clients may send (a switchyard extension).
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[gateway.limits]`: the bounds on everything a client sends, with defaults that suit a
/// gateway in front of LLM traffic. A switchyard extension; see the README's "Limits and
/// hardening".
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The largest request body, in bytes, counted after decompression (default 10 MiB).
    pub max_request_body_bytes: usize,
    /// How long a client may take to send a request's headers (default 10 s).
    pub header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body once the handler reads it
    /// (default 60 s).
    pub body_read_timeout_ms: u64,
    /// How long a connection may sit with no request in flight and no bytes moving before it
    /// is closed (default 120 s).
    pub idle_timeout_ms: u64,
    /// The most client connections served at once; more wait in the listen backlog
    /// (default 10000).
    pub max_connections: usize,
    /// The most tools one request may define (default 256).
    pub max_tools: usize,
    /// The most tags one request may carry (default 64).
    pub max_tags: usize,
    /// The longest tag key, in bytes (default 128).
    pub max_tag_key_bytes: usize,
    /// The longest tag value, in bytes (default 512).
    pub max_tag_value_bytes: usize,
    /// The most in-process rate-limit buckets (default 100000).
    pub max_rate_limit_buckets: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 10 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            idle_timeout_ms: 120_000,
            max_connections: 10_000,
            max_tools: 256,
            max_tags: 64,
            max_tag_key_bytes: 128,
            max_tag_value_bytes: 512,
            max_rate_limit_buckets: 100_000,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            base_path: None,
            circuit_breaker: Default::default(),
            retry_budget: None,
            bind_address: None,
            debug: false,
            disable_pseudonymous_usage_analytics: false,
            export: ExportConfig::default(),
            fetch_and_encode_input_files_before_inference: false,
            observability: ObservabilityConfig::default(),
            template_filesystem_access: TemplateFilesystemAccess::default(),
            global_outbound_http_timeout_ms: default_global_timeout_ms(),
            relay: None,
            cache: None,
            auth: AuthConfig::default(),
            unstable_error_json: false,
            unstable_disable_feedback_target_validation: false,
            metrics: GatewayMetricsConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// The TensorZero Gateway's default outbound timeout: 15 minutes.
pub const DEFAULT_GLOBAL_TIMEOUT_MS: u64 = 900_000;

fn default_global_timeout_ms() -> u64 {
    DEFAULT_GLOBAL_TIMEOUT_MS
}

/// `[gateway.export]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// `[gateway.export.otlp]`.
    #[serde(default)]
    pub otlp: OtlpConfig,
}

/// `[gateway.export.otlp]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `[gateway.export.otlp.traces]`.
    #[serde(default)]
    pub traces: OtlpTracesConfig,
}

/// `[gateway.export.otlp.traces]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpTracesConfig {
    /// Export traces (endpoint from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    #[serde(default)]
    pub enabled: bool,
    /// Headers sent with every export.
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
    /// Attribute conventions.
    #[serde(default)]
    pub format: OtlpFormat,
    /// Put the GenAI content attributes (messages, system instructions, tool definitions) on
    /// model-provider spans. Not built yet: read to warn.
    #[serde(default)]
    pub include_content: bool,
}

/// Which semantic conventions spans follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpFormat {
    /// OpenTelemetry GenAI conventions.
    #[default]
    Opentelemetry,
    /// OpenInference conventions.
    Openinference,
}

/// `[gateway.observability]`: the store of inferences and feedback.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// `true`: require the store; `null`: use it if present; `false`: never.
    pub enabled: Option<bool>,
    /// Write without waiting (default on, as in TensorZero 2026.4).
    #[serde(default = "yes")]
    pub async_writes: bool,
    /// Write in batches.
    pub batch_writes: Option<BatchWritesConfig>,
    /// Deprecated (TensorZero 2026.2.1): `clickhouse.disable_automatic_migrations` replaces it.
    #[serde(default)]
    pub disable_automatic_migrations: bool,
    /// The store: `auto` (default: ClickHouse if `TENSORZERO_CLICKHOUSE_URL` is set, else
    /// Postgres if `TENSORZERO_POSTGRES_URL` is), `clickhouse` or `postgres`.
    pub backend: Option<ObservabilityBackend>,
}

impl Default for ObservabilityConfig {
    /// What a config without `[gateway.observability]` means: the same as an empty section
    /// (async writes on, as in TensorZero 2026.4).
    fn default() -> Self {
        Self {
            enabled: None,
            async_writes: true,
            batch_writes: None,
            disable_automatic_migrations: false,
            backend: None,
        }
    }
}

/// `gateway.observability.backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservabilityBackend {
    /// Whichever store is configured.
    Auto,
    /// ClickHouse.
    Clickhouse,
    /// Postgres.
    Postgres,
}

/// `[gateway.retry_budget]`: retries may add at most `ratio` of the requests of the last
/// `window_s`, plus `min_per_second`; beyond it, retries are skipped (fallback still applies).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Retries allowed per request, e.g. 0.2 (default 0.2).
    #[serde(default = "default_retry_ratio")]
    pub ratio: f64,
    /// Retries allowed each second whatever the traffic (default 1).
    #[serde(default = "default_min_retries")]
    pub min_per_second: f64,
    /// The window requests and retries are counted over (default 10).
    #[serde(default = "default_retry_window")]
    pub window_s: u64,
}

fn default_retry_ratio() -> f64 {
    0.2
}

fn default_min_retries() -> f64 {
    1.0
}

fn default_retry_window() -> u64 {
    10
}

/// `[gateway.cache]`: the inference cache.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `true`: require a cache store; unset: use one if present; `false`: off.
    pub enabled: Option<bool>,
    /// `auto`, `clickhouse` or `valkey`.
    pub backend: Option<CacheBackend>,
    /// `[gateway.cache.valkey]`.
    pub valkey: Option<ValkeyCacheConfig>,
}

/// `gateway.cache.backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    /// ClickHouse when it is the observability store, else Valkey when present, else none.
    Auto,
    /// ClickHouse.
    Clickhouse,
    /// Valkey.
    Valkey,
}

/// `[gateway.cache.valkey]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValkeyCacheConfig {
    /// How long entries live, in seconds (default 86400).
    pub ttl_s: Option<u64>,
}

/// `[gateway.observability.batch_writes]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchWritesConfig {
    /// Must be true to batch.
    #[serde(default)]
    pub enabled: bool,
    /// Longest wait before a flush (default 100 ms).
    pub flush_interval_ms: Option<u64>,
    /// Most rows per batch (default 1000).
    pub max_rows: Option<u64>,
    /// Most rows per batch written to Postgres (default: `max_rows`).
    pub max_rows_postgres: Option<u64>,
    /// The most rows queued per table before new ones are dropped (default: unbounded in
    /// TensorZero).
    pub write_queue_capacity: Option<u64>,
    /// TensorZero's internal test flag; accepted because its parser accepts it.
    #[serde(rename = "__force_allow_embedded_batch_writes")]
    pub force_allow_embedded_batch_writes: Option<bool>,
}

/// `[gateway.template_filesystem_access]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFilesystemAccess {
    /// Deprecated (TensorZero 2026): includes are on exactly when `base_path` is set. Read only
    /// to warn.
    pub enabled: Option<bool>,
    /// The directory `{% include %}` may read from (relative to the file that sets it); unset:
    /// includes are off.
    pub base_path: Option<PathBuf>,
}

/// `[gateway.relay]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// The relay's base URL; unset means relay mode is off.
    pub gateway_url: Option<String>,
    /// Where the relay API key comes from (`env::`, `dynamic::`, `none`, or a fallback pair).
    pub api_key_location: Option<CredentialLocation>,
}

/// `[gateway.auth]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Require `Authorization: Bearer sk-t0-...` (default false).
    #[serde(default)]
    pub enabled: bool,
    /// `[gateway.auth.cache]`.
    #[serde(default)]
    pub cache: AuthCacheConfig,
    /// `[gateway.auth.shield]`: limits on failed attempts per client address (a switchyard
    /// extension; on by default when auth is on).
    #[serde(default)]
    pub shield: ShieldConfig,
}

/// `[gateway.auth.shield]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldConfig {
    /// Limit failed attempts (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Sustained failed attempts allowed per client address per minute (default 30).
    #[serde(default = "default_failures_per_minute")]
    pub failures_per_minute: u32,
    /// Failed attempts allowed in a burst (default 10).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// A header that a trusted proxy in front of the gateway sets to the client's address
    /// (e.g. `x-forwarded-for`); its last entry is counted instead of the connection's peer.
    /// Unset (the default): the peer address.
    #[serde(default)]
    pub client_ip_header: Option<String>,
}

impl Default for ShieldConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failures_per_minute: default_failures_per_minute(),
            burst: default_burst(),
            client_ip_header: None,
        }
    }
}

fn default_failures_per_minute() -> u32 {
    30
}

fn default_burst() -> u32 {
    10
}

/// `[gateway.auth.cache]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCacheConfig {
    /// Cache key lookups (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long a lookup is trusted, in milliseconds (default 1000).
    #[serde(default = "default_auth_ttl_ms")]
    pub ttl_ms: u64,
}

impl Default for AuthCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_ms: default_auth_ttl_ms(),
        }
    }
}

fn default_auth_ttl_ms() -> u64 {
    1000
}

/// `[gateway.metrics]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayMetricsConfig {
    /// Buckets of `tensorzero_inference_latency_overhead_seconds`.
    pub tensorzero_inference_latency_overhead_seconds_buckets: Option<Vec<f64>>,
}

/// `[object_storage]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ObjectStorageConfig {
    /// An S3-compatible service.
    S3Compatible(S3Config),
    /// A local directory.
    Filesystem(FilesystemStorageConfig),
    /// No storage.
    Disabled(DisabledStorageConfig),
}

/// `type = "s3_compatible"`.
#[derive(Clone, Debug, Deserialize)]
pub struct S3Config {
    /// The service URL (default AWS S3).
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket_name: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// Allow plain HTTP (local development only).
    #[serde(default)]
    pub allow_http: bool,
}

/// `type = "filesystem"`.
#[derive(Clone, Debug, Deserialize)]
pub struct FilesystemStorageConfig {
    /// The directory.
    pub path: PathBuf,
}

/// `type = "disabled"`.
#[derive(Clone, Debug, Deserialize)]
pub struct DisabledStorageConfig {}

#[cfg(test)]
mod observability_defaults {
    use super::ObservabilityConfig;

    #[test]
    fn async_writes_are_on_with_or_without_the_section() {
        assert!(ObservabilityConfig::default().async_writes);
        let empty: ObservabilityConfig = toml::from_str("").unwrap();
        assert!(empty.async_writes);
    }
}
