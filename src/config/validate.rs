//! Semantic checks: everything serde cannot see (names that must exist, reserved prefixes,
//! exclusive fields, limits, files on disk). All problems are reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::common::TimeoutsConfig;
use super::credentials::CredentialLocation;
use super::functions::{ChatCompletionConfig, FunctionConfig, ToolChoiceConfig, VariantConfig};
use super::load::{ConfigError, ConfigErrors, Sources, TomlPath};
use super::models::{OpenAiApiType, ProviderKind, ProviderType};
use super::rate_limiting::ScopeEntry;
use super::{Config, Warning};

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
            self.error(
                path,
                format!(
                    "{what} is not an http(s) URL: {why}; write it like `https://host:port/path`"
                ),
            );
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
        let obs = &g.observability;
        if obs.async_writes && obs.batch_writes.as_ref().is_some_and(|b| b.enabled) {
            self.error(
                at.key("observability"),
                "`async_writes` and `batch_writes` cannot both be enabled; pick one",
            );
        }
        if obs.enabled == Some(true) {
            self.not_supported_yet(
                at.key("observability"),
                "storing inferences (`observability.enabled = true`)",
            );
        }
        let tfa = &g.template_filesystem_access;
        if tfa.enabled {
            let multiple = self.sources.paths().count() > 1;
            match &tfa.base_path {
                None if multiple => self.error(
                    at.key("template_filesystem_access"),
                    "with several config files, set `base_path` so template includes have one root",
                ),
                Some(p) if !p.is_dir() => self.error(
                    at.key("template_filesystem_access").key("base_path"),
                    format!("`{}` is not a directory", p.display()),
                ),
                _ => {}
            }
        }
        if let Some(buckets) = &g
            .metrics
            .tensorzero_inference_latency_overhead_seconds_buckets
        {
            if buckets.is_empty()
                || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
                || buckets.windows(2).any(|w| w[0] >= w[1])
            {
                self.error(
                    at.key("metrics")
                        .key("tensorzero_inference_latency_overhead_seconds_buckets"),
                    "buckets must be a non-empty, strictly increasing list of positive finite numbers",
                );
            }
        }
    }

    fn models(&mut self) {
        for (name, model) in &self.config.models {
            let at = TomlPath::keys(["models", name.as_str()]);
            if let Some(prefix) = reserved_prefix(name) {
                self.error(
                    at.clone(),
                    format!(
                        "model name `{name}` uses the reserved prefix `{prefix}`; rename the model"
                    ),
                );
            }
            if model.routing.is_empty() {
                self.error(at.key("routing"), "must name at least one provider");
            }
            let mut seen = BTreeSet::new();
            for p in &model.routing {
                if !model.providers.contains_key(p) {
                    let known: Vec<_> = model.providers.keys().map(String::as_str).collect();
                    self.error(
                        at.key("routing"),
                        format!(
                            "provider `{p}` is not defined; define [models.{name}.providers.{p}] or use one of {known:?}"
                        ),
                    );
                }
                if !seen.insert(p) {
                    self.error(at.key("routing"), format!("provider `{p}` is listed twice"));
                }
            }
            for p in model.providers.keys() {
                if !model.routing.contains(p) {
                    self.warn(
                        Some(at.key("providers").key(p)),
                        format!("provider `{p}` is not in `routing`, so it is never used"),
                    );
                }
            }
            self.timeouts(at.clone(), &model.timeouts);
            for (pname, provider) in &model.providers {
                let pat = at.key("providers").key(pname);
                if pname.starts_with(RESERVED_PREFIX) {
                    self.error(
                        pat.clone(),
                        format!(
                            "provider name `{pname}` uses the reserved prefix `{RESERVED_PREFIX}`"
                        ),
                    );
                }
                self.timeouts(pat.clone(), &provider.timeouts);
                self.extra_edits(pat.clone(), &provider.extra_body, &provider.extra_headers);
                self.provider_kind(pat, &provider.kind);
            }
        }
    }

    fn extra_edits(
        &mut self,
        at: TomlPath,
        body: &[super::common::ExtraBodyEntry],
        headers: &[super::common::ExtraHeaderEntry],
    ) {
        for (i, e) in body.iter().enumerate() {
            if let Err(msg) = e.edit() {
                self.error(at.key("extra_body").index(i), msg);
            }
            if !e.pointer.is_empty() && !e.pointer.starts_with('/') {
                self.error(
                    at.key("extra_body").index(i),
                    format!(
                        "`{}` is not a JSON Pointer; it must start with `/`",
                        e.pointer
                    ),
                );
            }
        }
        for (i, e) in headers.iter().enumerate() {
            if let Err(msg) = e.edit() {
                self.error(at.key("extra_headers").index(i), msg);
            }
            if http::HeaderName::from_bytes(e.name.as_bytes()).is_err() {
                self.error(
                    at.key("extra_headers").index(i),
                    format!("`{}` is not a valid header name", e.name),
                );
            }
        }
    }

    /// An AWS region becomes part of a host name: `[a-z0-9-]+` only.
    fn region(&mut self, at: TomlPath, region: Option<&str>) {
        if let Some(r) = region.filter(|r| !crate::providers::url::is_region(r)) {
            self.error(
                at,
                format!("`{r}` is not an AWS region such as `us-east-1` (lowercase letters, digits and `-`)"),
            );
        }
    }

    /// A credential never goes to a URL chosen by the request unless it came from the request
    /// too: `endpoint = "dynamic::..."` needs a dynamic key.
    fn azure_key_stays_home(&mut self, at: TomlPath, p: &super::models::AzureProvider) {
        if !p.endpoint.starts_with("dynamic::") {
            return;
        }
        let location = p.api_key_location.clone().unwrap_or_else(|| {
            self.config
                .provider_types
                .effective_default(ProviderType::Azure)
        });
        if !crate::providers::openai::key_may_follow_request_url(&location) {
            self.error(
                at,
                format!(
                    "`{}` lets each request choose the URL, but the API key comes from the \
                     configuration (`{location}`): a request could send that key to any host. \
                     Make the key dynamic too (`api_key_location = \"dynamic::NAME\"`), or give a \
                     fixed endpoint",
                    p.endpoint
                ),
            );
        }
    }

    fn provider_kind(&mut self, at: TomlPath, kind: &ProviderKind) {
        let api_base = match kind {
            ProviderKind::Openai(p) => {
                if p.api_type == OpenAiApiType::Responses {
                    self.not_supported_yet(at.key("api_type"), "the OpenAI Responses API");
                }
                p.api_base.as_deref()
            }
            ProviderKind::Azure(p) => {
                if !(p.endpoint.starts_with("env::") || p.endpoint.starts_with("dynamic::")) {
                    self.url(at.key("endpoint"), "the Azure endpoint", &p.endpoint);
                }
                self.azure_key_stays_home(at.key("endpoint"), p);
                None
            }
            ProviderKind::Sglang(p) => Some(p.api_base.as_str()),
            ProviderKind::Tgi(p) => Some(p.api_base.as_str()),
            ProviderKind::Vllm(p) => p.api_base.as_deref(),
            ProviderKind::Deepseek(p)
            | ProviderKind::Fireworks(p)
            | ProviderKind::Groq(p)
            | ProviderKind::Hyperbolic(p)
            | ProviderKind::Mistral(p)
            | ProviderKind::Openrouter(p)
            | ProviderKind::Together(p)
            | ProviderKind::Xai(p) => p.api_base.as_deref(),
            ProviderKind::Anthropic(p) => p.api_base.as_deref(),
            ProviderKind::GoogleAiStudioGemini(p) => p.api_base.as_deref(),
            ProviderKind::GcpVertexAnthropic(p) | ProviderKind::GcpVertexGemini(p) => {
                if p.model_id.is_some() == p.endpoint_id.is_some() {
                    self.error(
                        at.clone(),
                        "set exactly one of `model_id` and `endpoint_id`",
                    );
                } else if let Err(why) = crate::providers::gcp::check_resource(p) {
                    self.error(at.clone(), why);
                }
                p.api_base.as_deref()
            }
            ProviderKind::AwsBedrock(p) => {
                self.region(at.key("region"), p.region.as_deref());
                p.endpoint_url.as_deref()
            }
            ProviderKind::AwsSagemaker(p) => {
                self.region(at.key("region"), p.region.as_deref());
                p.endpoint_url.as_deref()
            }
        };
        if let Some(base) = api_base {
            let key = match kind {
                ProviderKind::AwsBedrock(_) | ProviderKind::AwsSagemaker(_) => "endpoint_url",
                _ => "api_base",
            };
            self.url(at.key(key), key, base);
        }
        if let Some(loc) = kind.credential_location() {
            if matches!(loc, CredentialLocation::Sdk)
                && !matches!(
                    kind,
                    ProviderKind::AwsBedrock(_)
                        | ProviderKind::AwsSagemaker(_)
                        | ProviderKind::GcpVertexAnthropic(_)
                        | ProviderKind::GcpVertexGemini(_)
                )
            {
                self.error(
                    at.clone(),
                    format!(
                        "`sdk` credentials only apply to AWS and GCP providers, not `{}`",
                        kind.provider_type()
                    ),
                );
            }
        }
    }

    fn embedding_models(&mut self) {
        let global = self.global_timeout();
        for (name, model) in &self.config.embedding_models {
            let at = TomlPath::keys(["embedding_models", name.as_str()]);
            if let Some(prefix) = reserved_prefix(name) {
                self.error(
                    at.clone(),
                    format!("embedding model name `{name}` uses the reserved prefix `{prefix}`"),
                );
            }
            if model.routing.is_empty() {
                self.error(at.key("routing"), "must name at least one provider");
            }
            for p in &model.routing {
                if !model.providers.contains_key(p) {
                    self.error(
                        at.key("routing"),
                        format!(
                            "provider `{p}` is not defined in [embedding_models.{name}.providers]"
                        ),
                    );
                }
            }
            let limits = model
                .timeout_ms
                .into_iter()
                .map(|t| (at.key("timeout_ms"), t))
                .chain(model.providers.iter().filter_map(|(p, c)| {
                    c.timeout_ms
                        .map(|t| (at.key("providers").key(p).key("timeout_ms"), t))
                }));
            for (path, ms) in limits.collect::<Vec<_>>() {
                if ms > global {
                    self.error(path, format!("{ms} ms is larger than `gateway.global_outbound_http_timeout_ms` = {global} ms"));
                }
            }
            for (p, c) in &model.providers {
                if let Some(base) = &c.api_base {
                    self.url(at.key("providers").key(p).key("api_base"), "api_base", base);
                }
            }
        }
    }

    fn provider_types(&mut self) {
        for t in ProviderType::ALL {
            let Some(base) = self.config.provider_types.default_api_base(t) else {
                continue;
            };
            let table = match t {
                ProviderType::GoogleAiStudioGemini => "google_ai_studio",
                other => other.as_str(),
            };
            let at = TomlPath::keys(["provider_types", table, "defaults", "api_base"]);
            if t.takes_default_api_base() {
                self.url(at, "api_base", base);
            } else {
                self.error(
                    at,
                    format!(
                        "`api_base` defaults are for types with a hosted default URL (openai, anthropic, \
                         google_ai_studio_gemini, deepseek, ...); set the address of each `{t}` provider on the provider"
                    ),
                );
            }
        }
        if let Some(batch) = self
            .config
            .provider_types
            .gcp_vertex_gemini
            .as_ref()
            .and_then(|g| g.batch.as_ref())
        {
            let at = TomlPath::keys(["provider_types", "gcp_vertex_gemini", "batch"]);
            if batch.storage_type == super::models::GcpBatchStorage::CloudStorage
                && (batch.input_uri_prefix.is_none() || batch.output_uri_prefix.is_none())
            {
                self.error(at.clone(), "`storage_type = \"cloud_storage\"` needs `input_uri_prefix` and `output_uri_prefix`");
            }
            self.not_supported_yet(at, "Vertex batch inference");
        }
    }

    fn tools(&mut self) {
        for (name, tool) in &self.config.tools {
            let at = TomlPath::keys(["tools", name.as_str()]);
            if name.starts_with(RESERVED_PREFIX) {
                self.error(
                    at.clone(),
                    format!("tool name `{name}` uses the reserved prefix `{RESERVED_PREFIX}`"),
                );
            }
            self.json_file(at.key("parameters"), "tool parameters", &tool.parameters);
        }
    }

    fn model_reference(&mut self, at: TomlPath, model: &str) {
        if self.config.models.contains_key(model) || is_valid_shorthand(model) {
            return;
        }
        let hint = match model.split_once("::") {
            Some((prefix, _)) => format!(
                "`{prefix}::` is not a shorthand prefix (they are {})",
                ProviderType::SHORTHAND
                    .iter()
                    .map(|t| format!("`{t}::`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => {
                format!("define [models.{model}] or use a shorthand such as `openai::gpt-4o-mini`")
            }
        };
        self.error(at, format!("model `{model}` is not defined: {hint}"));
    }

    fn chat_completion(
        &mut self,
        at: TomlPath,
        v: &ChatCompletionConfig,
        is_json: bool,
        json_mode_optional: bool,
    ) {
        self.model_reference(at.key("model"), &v.model);
        match (is_json, v.json_mode) {
            (true, None) if !json_mode_optional => self.error(
                at.clone(),
                "`json_mode` is required for variants of json functions (`off`, `on`, `strict` or `implicit_tool`)",
            ),
            (false, Some(_)) => self.error(at.key("json_mode"), "`json_mode` is only for variants of json functions; remove it"),
            _ => {}
        }
        for (key, file) in [
            ("system_template", &v.system_template),
            ("user_template", &v.user_template),
            ("assistant_template", &v.assistant_template),
            ("system_instructions", &v.system_instructions),
        ] {
            if let Some(file) = file {
                self.file_exists(at.key(key), "template", file);
            }
        }
        self.seconds(
            at.key("retries").key("max_delay_s"),
            v.retries.max_delay_s,
            MAX_RETRY_DELAY_S,
        );
        if let Some(w) = v.weight {
            if !w.is_finite() || w < 0.0 {
                self.error(at.key("weight"), "must be a non-negative number");
            }
        }
        self.timeouts(at.clone(), &v.timeouts);
        self.extra_edits(at, &v.extra_body, &v.extra_headers);
    }

    fn functions(&mut self) {
        for (name, function) in &self.config.functions {
            let at = TomlPath::keys(["functions", name.as_str()]);
            if name.starts_with(RESERVED_PREFIX) {
                self.error(
                    at.clone(),
                    format!("function name `{name}` uses the reserved prefix `{RESERVED_PREFIX}`"),
                );
            }
            for (key, file) in function.schema_files() {
                self.json_file(at.key(key), "schema", file);
            }
            let is_json = matches!(function, FunctionConfig::Json(_));
            let global_s = self.global_timeout() as f64 / 1000.0;
            if let FunctionConfig::Chat(chat) = function {
                let mut sent_names = BTreeMap::new();
                for tool in &chat.tools {
                    match self.config.tools.get(tool) {
                        None => self.error(
                            at.key("tools"),
                            format!("tool `{tool}` is not defined; add a [tools.{tool}] section"),
                        ),
                        Some(t) => {
                            let sent = t.name.clone().unwrap_or_else(|| tool.clone());
                            if let Some(other) = sent_names.insert(sent.clone(), tool) {
                                self.error(at.key("tools"), format!("tools `{other}` and `{tool}` are both sent to the model as `{sent}`"));
                            }
                        }
                    }
                }
                if let ToolChoiceConfig::Specific(t) = &chat.tool_choice {
                    if !chat.tools.contains(t) {
                        self.error(at.key("tool_choice"), format!("`specific = \"{t}\"` names a tool that is not in this function's `tools`"));
                    }
                }
            }
            for (vname, variant) in function.variants() {
                let vat = at.key("variants").key(vname);
                match variant {
                    VariantConfig::ChatCompletion(v) => {
                        self.chat_completion(vat.clone(), v, is_json, false);
                    }
                    VariantConfig::ExperimentalChainOfThought(v) => {
                        if !is_json {
                            self.error(vat.clone(), "`experimental_chain_of_thought` variants are only for json functions");
                        }
                        self.chat_completion(vat, v, is_json, false);
                    }
                    VariantConfig::ExperimentalBestOfN(v) => {
                        if let Some(t) = v.timeout_s {
                            self.seconds(vat.key("timeout_s"), t, global_s);
                        }
                        self.candidates(vat.clone(), &v.candidates, function);
                        self.chat_completion(vat.key("evaluator"), &v.evaluator, is_json, true);
                        self.timeouts(vat, &v.timeouts);
                    }
                    VariantConfig::ExperimentalMixtureOfN(v) => {
                        if let Some(t) = v.timeout_s {
                            self.seconds(vat.key("timeout_s"), t, global_s);
                        }
                        self.candidates(vat.clone(), &v.candidates, function);
                        if !is_json && v.fuser.json_mode.is_some() {
                            self.error(
                                vat.key("fuser").key("json_mode"),
                                "`json_mode` is only for json functions",
                            );
                        }
                        self.chat_completion(vat.key("fuser"), &v.fuser, is_json, false);
                        self.timeouts(vat, &v.timeouts);
                    }
                    VariantConfig::ExperimentalDynamicInContextLearning(v) => {
                        self.model_reference(vat.key("model"), &v.model);
                        let known = self
                            .config
                            .embedding_models
                            .contains_key(&v.embedding_model)
                            || ["openai::", "openrouter::"]
                                .iter()
                                .any(|p| v.embedding_model.starts_with(p));
                        if !known {
                            self.error(
                                vat.key("embedding_model"),
                                format!("embedding model `{}` is not defined; define [embedding_models.{}] or use `openai::<model>`", v.embedding_model, v.embedding_model),
                            );
                        }
                        if is_json && v.json_mode.is_none() {
                            self.error(
                                vat.clone(),
                                "`json_mode` is required for variants of json functions",
                            );
                        }
                        if !is_json && v.json_mode.is_some() {
                            self.error(
                                vat.key("json_mode"),
                                "`json_mode` is only for variants of json functions; remove it",
                            );
                        }
                        if let Some(f) = &v.system_instructions {
                            self.file_exists(
                                vat.key("system_instructions"),
                                "system instructions",
                                f,
                            );
                        }
                        self.timeouts(vat.clone(), &v.timeouts);
                        self.warn(
                            Some(vat),
                            "`experimental_dynamic_in_context_learning` variants need stored examples, which switchyard does not keep: \
                             the variant loads, but a request that runs it gets a 501 (give it weight 0 so sampling skips it)"
                                .to_owned(),
                        );
                    }
                }
            }
        }
    }

    fn candidates(&mut self, at: TomlPath, candidates: &[String], function: &FunctionConfig) {
        if candidates.is_empty() {
            self.error(at.key("candidates"), "must name at least one variant");
        }
        for c in candidates {
            match function.variants().get(c) {
                None => self.error(
                    at.key("candidates"),
                    format!("candidate `{c}` is not a variant of this function"),
                ),
                Some(VariantConfig::ChatCompletion(_) | VariantConfig::ExperimentalChainOfThought(_)) => {}
                Some(other) => self.error(
                    at.key("candidates"),
                    format!(
                        "candidate `{c}` is an `{}` variant; candidates must be `chat_completion` or `experimental_chain_of_thought` variants",
                        other.type_name()
                    ),
                ),
            }
        }
    }

    fn metrics(&mut self) {
        if !self.config.metrics.is_empty() {
            self.not_supported_yet(
                TomlPath::keys(["metrics"]),
                "feedback metrics (`/feedback`)",
            );
        }
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
                    format!("`{backend}` is not a backend: use `auto`, `valkey` or `memory`"),
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
                if let Some(e) = &s3.endpoint {
                    self.url(at.key("endpoint"), "the object storage endpoint", e);
                }
                self.not_supported_yet(at, "object storage");
            }
            Some(O::Filesystem(_)) => self.not_supported_yet(at, "object storage"),
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
