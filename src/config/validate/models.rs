//! Checks of `[models]`, `[embedding_models]` and `[provider_types]`.

use super::*;

impl Checker<'_> {
    pub(super) fn models(&mut self) {
        for (name, model) in &self.config.models {
            let at = TomlPath::keys(["models", name.as_str()]);
            if let Some(ns) = &model.namespace {
                self.namespace_name(at.key("namespace"), ns);
            }
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
            if model.hedge_after_ms == Some(0) {
                self.error(
                    at.key("hedge_after_ms"),
                    "must be at least 1 (milliseconds)",
                );
            }
            if model.max_hedges == Some(0) {
                self.error(
                    at.key("max_hedges"),
                    "must be at least 1 (leave out `hedge_after_ms` to not hedge)",
                );
            }
            if model.hedge_after_ms.is_some() && model.routing.len() < 2 {
                self.warn(
                    Some(at.key("hedge_after_ms")),
                    "has no effect: hedging starts the next provider in `routing`, and there is none",
                );
            }
            if model.max_hedges.is_some() && model.hedge_after_ms.is_none() {
                self.warn(
                    Some(at.key("max_hedges")),
                    "has no effect without `hedge_after_ms`",
                );
            }
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
                if let Some(cb) = &provider.circuit_breaker {
                    self.circuit_breaker(pat.key("circuit_breaker"), cb);
                }
                self.extra_edits(pat.clone(), &provider.extra_body, &provider.extra_headers);
                self.cost(pat.key("cost"), &provider.cost, CostList::Provider);
                self.cost(pat.key("batch_cost"), &provider.batch_cost, CostList::Batch);
                let provider_type = provider.kind.provider_type();
                if let Some(hosted) = provider.kind.hosted() {
                    for (key, set, only) in [
                        (
                            "reasoning_format",
                            hosted.reasoning_format.is_some(),
                            ProviderType::Groq,
                        ),
                        (
                            "prompt_mode",
                            hosted.prompt_mode.is_some(),
                            ProviderType::Mistral,
                        ),
                    ] {
                        if set && provider_type != only {
                            self.error(
                                pat.key(key),
                                format!(
                                    "is a key of `{only}` providers, not of `{provider_type}` ones"
                                ),
                            );
                        }
                    }
                }
                for (key, set, types) in [
                    (
                        "beta_structured_outputs",
                        provider.beta_structured_outputs.is_some(),
                        &[ProviderType::Anthropic][..],
                    ),
                    (
                        "parse_think_blocks",
                        provider.parse_think_blocks.is_some(),
                        &[ProviderType::Fireworks, ProviderType::Together][..],
                    ),
                ] {
                    if !set {
                        continue;
                    }
                    if types.contains(&provider_type) {
                        self.warn(
                            Some(pat.key(key)),
                            "is deprecated in TensorZero and ignored",
                        );
                    } else {
                        self.error(
                            pat.key(key),
                            format!("is not a key of `{provider_type}` providers"),
                        );
                    }
                }
                self.provider_kind(pat, &provider.kind);
            }
        }
    }

    pub(super) fn extra_edits(
        &mut self,
        at: TomlPath,
        body: &[crate::config::common::ExtraBodyEntry],
        headers: &[crate::config::common::ExtraHeaderEntry],
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

    /// An AWS provider's `region`: a literal (it becomes part of a host name: `[a-z0-9-]+`
    /// only), `sdk`, or a location (`env::`, `path::`, `path_from_env::`), read at start-up.
    /// TensorZero 2026 requires it; unset, switchyard keeps its old default with a warning.
    pub(super) fn region(&mut self, provider: &TomlPath, region: Option<&str>, auto_detect: bool) {
        let at = provider.key("region");
        if auto_detect {
            self.warn(
                Some(provider.key("allow_auto_detect_region")),
                "is deprecated in TensorZero: write `region = \"sdk\"` (the same thing)",
            );
        }
        let is_location = |r: &str| {
            r == "sdk"
                || ["env::", "path::", "path_from_env::", "dynamic::"]
                    .iter()
                    .any(|p| r.starts_with(p))
        };
        match region {
            Some(r) if !is_location(r) && !crate::providers::url::is_region(r) => self.error(
                at,
                format!("`{r}` is not an AWS region such as `us-east-1` (lowercase letters, digits and `-`), `sdk`, or `env::VAR`"),
            ),
            Some(r) if r.starts_with("dynamic::") => self.error(
                at,
                format!("`{r}`: a region per request is not supported by switchyard; write the region, `sdk` or `env::VAR`"),
            ),
            None if !auto_detect => self.error(
                at,
                "is required: write the region (`region = \"us-east-1\"`), or `region = \"sdk\"` to take it from AWS_REGION",
            ),
            _ => {}
        }
    }

    /// An AWS provider's explicit credentials: a Bedrock API key (`env::` or `dynamic::`), or
    /// IAM keys (`env::`, `dynamic::` or `sdk`, all of one kind; the access key id and secret
    /// together; a session token only with both), never both.
    fn aws_credentials(
        &mut self,
        provider: &TomlPath,
        api_key: Option<&CredentialLocation>,
        iam: crate::config::models::AwsIamKeys<'_>,
    ) {
        if let Some(key) = api_key {
            if !matches!(
                key,
                CredentialLocation::Env(_) | CredentialLocation::Dynamic(_)
            ) {
                self.error(
                    provider.key("api_key"),
                    "must be `env::VAR` or `dynamic::NAME`",
                );
            }
            if iam.any() {
                self.error(
                    provider.key("api_key"),
                    "cannot be combined with `access_key_id`, `secret_access_key` or `session_token`: use the API key or IAM credentials",
                );
            }
        }
        if iam.access_key_id.is_some() != iam.secret_access_key.is_some() {
            self.error(
                provider.clone(),
                "`access_key_id` and `secret_access_key` go together: set both or neither",
            );
        } else if iam.session_token.is_some() && iam.access_key_id.is_none() {
            self.error(
                provider.key("session_token"),
                "needs `access_key_id` and `secret_access_key` too",
            );
        }
        let kind = |l: &CredentialLocation| match l {
            CredentialLocation::Env(_) => Some("env::"),
            CredentialLocation::Dynamic(_) => Some("dynamic::"),
            CredentialLocation::Sdk => Some("sdk"),
            _ => None,
        };
        let set = iam.set();
        for (key, location) in &set {
            if kind(location).is_none() {
                self.error(
                    provider.key(*key),
                    "must be `env::VAR`, `dynamic::NAME` or `sdk`",
                );
            }
        }
        let kinds: std::collections::BTreeSet<_> =
            set.iter().filter_map(|(_, l)| kind(l)).collect();
        if kinds.len() > 1 {
            self.error(
                provider.clone(),
                format!(
                    "the IAM credentials must all come from one kind of source, not {}",
                    kinds.into_iter().collect::<Vec<_>>().join(" and ")
                ),
            );
        }
    }

    /// A credential never goes to a URL chosen by the request unless it came from the request
    /// too: `endpoint = "dynamic::..."` needs a dynamic key.
    pub(super) fn azure_key_stays_home(
        &mut self,
        at: TomlPath,
        p: &crate::config::models::AzureProvider,
    ) {
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

    pub(super) fn provider_kind(&mut self, at: TomlPath, kind: &ProviderKind) {
        let api_base = match kind {
            ProviderKind::Openai(p) => {
                if p.api_type != OpenAiApiType::Responses {
                    for (key, set) in [
                        ("include_encrypted_reasoning", p.include_encrypted_reasoning),
                        ("provider_tools", !p.provider_tools.is_empty()),
                    ] {
                        if set {
                            self.error(
                                at.key(key),
                                "applies to the Responses API only: set `api_type = \"responses\"`",
                            );
                        }
                    }
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
            ProviderKind::GcpVertexAnthropic(p) if p.endpoint_id.is_some() => {
                // TensorZero documents `endpoint_id` here but its code never took it.
                self.error(
                    at.key("endpoint_id"),
                    "is not a key of `gcp_vertex_anthropic` providers: name the model with `model_id`",
                );
                p.api_base.as_deref()
            }
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
                self.region(&at, p.region.as_deref(), p.allow_auto_detect_region);
                self.aws_credentials(&at, p.api_key.as_ref(), p.iam());
                p.endpoint_url.as_deref()
            }
            ProviderKind::AwsSagemaker(p) => {
                self.region(&at, p.region.as_deref(), p.allow_auto_detect_region);
                self.aws_credentials(&at, None, p.iam());
                p.endpoint_url.as_deref()
            }
        };
        // An AWS `endpoint_url` may be a location (`env::VAR`, ...), read when the provider is
        // set up; only a literal is checked here.
        let is_location = |v: &str| {
            ["env::", "path::", "path_from_env::", "dynamic::"]
                .iter()
                .any(|p| v.starts_with(p))
                || v == "none"
                || v == "sdk"
        };
        if let Some(base) = api_base.filter(|b| !is_location(b)) {
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

    /// A `circuit_breaker` table: counts of at least 1, a failure rate in (0, 1], durations
    /// above zero, and a cap no shorter than the first cooldown.
    pub(super) fn circuit_breaker(
        &mut self,
        at: TomlPath,
        c: &crate::config::common::CircuitBreakerConfig,
    ) {
        for (key, value) in [
            (
                "consecutive_failures",
                c.consecutive_failures.map(u64::from),
            ),
            ("min_requests", c.min_requests.map(u64::from)),
            ("window_ms", c.window_ms),
            ("cooldown_ms", c.cooldown_ms),
            ("max_cooldown_ms", c.max_cooldown_ms),
        ] {
            if value == Some(0) {
                self.error(at.key(key), "must be at least 1");
            }
        }
        if let Some(r) = c.failure_rate
            && !(r > 0.0 && r <= 1.0)
        {
            self.error(
                at.key("failure_rate"),
                format!("must be a fraction above 0 and at most 1 (got {r})"),
            );
        }
        if let (Some(first), Some(cap)) = (c.cooldown_ms, c.max_cooldown_ms)
            && cap < first
        {
            self.error(
                at.key("max_cooldown_ms"),
                format!("must be at least `cooldown_ms` ({first})"),
            );
        }
    }

    /// A `cost` (or `batch_cost`) list: each entry reads one pointer (or, where streams are
    /// possible, a non-streaming and a streaming one) and has exactly one finite rate.
    fn cost(&mut self, at: TomlPath, entries: &[crate::config::common::CostEntry], list: CostList) {
        if entries.is_empty() {
            return;
        }
        // Batch answers and embeddings never stream.
        let single_pointer = list != CostList::Provider;
        for (i, e) in entries.iter().enumerate() {
            let eat = at.index(i);
            let pointers: Vec<&String> =
                match (&e.pointer, &e.pointer_nonstreaming, &e.pointer_streaming) {
                    (Some(p), None, None) => vec![p],
                    (None, Some(a), Some(b)) if !single_pointer => vec![a, b],
                    _ if single_pointer => {
                        self.error(
                            eat,
                            "takes a single `pointer` (this list never reads a stream)",
                        );
                        continue;
                    }
                    _ => {
                        self.error(
                            eat,
                            "set `pointer`, or both `pointer_nonstreaming` and `pointer_streaming`",
                        );
                        continue;
                    }
                };
            for p in pointers {
                if !p.is_empty() && !p.starts_with('/') {
                    self.error(
                        eat.clone(),
                        format!(
                            "`{p}` is not a JSON Pointer; write one such as `/usage/prompt_tokens`"
                        ),
                    );
                }
            }
            match (e.cost_per_million, e.cost_per_unit) {
                (Some(r), None) | (None, Some(r)) if r.is_finite() => {}
                (Some(_), None) | (None, Some(_)) => {
                    self.error(eat, "the rate must be a finite number of dollars");
                }
                _ => self.error(
                    eat,
                    "set exactly one of `cost_per_million` and `cost_per_unit`",
                ),
            }
        }
        if list == CostList::Batch {
            self.warn(
                Some(at),
                "is checked and kept, but not used: it prices batch inference, which switchyard does not serve",
            );
        }
    }

    pub(super) fn embedding_models(&mut self) {
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
                let pat = at.key("providers").key(p);
                match c.provider_type {
                    crate::config::models::EmbeddingProviderType::Azure => {
                        for (key, set) in [
                            ("deployment_id", c.deployment_id.is_some()),
                            ("endpoint", c.endpoint.is_some()),
                        ] {
                            if !set {
                                self.error(
                                    pat.clone(),
                                    format!("an `azure` embedding provider needs `{key}`"),
                                );
                            }
                        }
                    }
                    _ if c.model_name.is_empty() => {
                        self.error(
                            pat.clone(),
                            "needs `model_name` (the provider's name for the model)",
                        );
                    }
                    _ => {}
                }
                self.cost(pat.key("cost"), &c.cost, CostList::Embedding);
                for key in c.chat_only_keys() {
                    self.warn(
                        Some(pat.key(key)),
                        "is a chat provider key: accepted, but it has no effect on embeddings",
                    );
                }
                if let Some(base) = &c.api_base {
                    self.url(at.key("providers").key(p).key("api_base"), "api_base", base);
                }
            }
        }
    }

    pub(super) fn provider_types(&mut self) {
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
            if batch.storage_type == crate::config::provider_types::GcpBatchStorage::CloudStorage
                && (batch.input_uri_prefix.is_none() || batch.output_uri_prefix.is_none())
            {
                self.error(at.clone(), "`storage_type = \"cloud_storage\"` needs `input_uri_prefix` and `output_uri_prefix`");
            }
            self.not_supported_yet(at, "Vertex batch inference");
        }
    }
}

/// Which list of prices a `cost` check reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CostList {
    /// A model provider's `cost`.
    Provider,
    /// A model provider's `batch_cost`.
    Batch,
    /// An embedding provider's `cost`.
    Embedding,
}
