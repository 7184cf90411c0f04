//! switchyard: an LLM gateway that serves the TensorZero Gateway's API from `tensorzero.toml`.
//!
//! The same binary plays two roles (an edge sidecar next to each app and a central relay);
//! which one is only configuration. [`stack`] shows how the tower layers are composed;
//! [`start`] builds everything from a loaded configuration.

#![forbid(unsafe_code)]

pub mod api;
pub mod api_keys;
pub mod aws;
pub mod body;
pub mod config;
pub mod cost;
pub mod embeddings;
pub mod error;
pub mod health;
pub mod http_client;
pub mod inference;
pub mod key_sources;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod model_call;
pub mod native_wire;
pub mod observability;
pub mod otlp;
pub mod providers;
pub mod rate_limit_store;
pub mod reload;
pub mod request_credentials;
pub mod server;
pub mod sse;
pub mod stack;
pub mod upstream;

/// The redacting holder every key, API key and credential travels in.
pub use switchyard_layers::Secret;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config::LoadedConfig;

/// What start-up reads from the process environment, gathered in one place so that tests and
/// embedders can supply it.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `TENSORZERO_POSTGRES_URL`: the API-key store (it may hold a password).
    pub postgres_url: Option<Secret>,
    /// `TENSORZERO_VALKEY_URL`: the shared rate-limit store (it may hold a password).
    pub valkey_url: Option<Secret>,
    /// Whether `TENSORZERO_CLICKHOUSE_URL` is set (it decides TensorZero's `backend = "auto"`;
    /// switchyard has no ClickHouse store).
    pub clickhouse_url_set: bool,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: where traces go, when export is on.
    pub otlp_traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (else `OTEL_EXPORTER_OTLP_PROTOCOL`): `grpc` (unset),
    /// `http/protobuf` or `http/json`.
    pub otlp_traces_protocol: Option<String>,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self {
            postgres_url: std::env::var("TENSORZERO_POSTGRES_URL")
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new),
            valkey_url: std::env::var("TENSORZERO_VALKEY_URL")
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new),
            clickhouse_url_set: std::env::var("TENSORZERO_CLICKHOUSE_URL")
                .is_ok_and(|v| !v.is_empty()),
            otlp_traces_endpoint: std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .ok()
                .filter(|v| !v.is_empty()),
            otlp_traces_protocol: [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration asks for something that cannot be served safely.
    #[error("{0}")]
    Config(String),
    /// Providers, functions or templates could not be set up (missing keys, unreadable or
    /// invalid schemas and templates).
    #[error("cannot set up models and functions:\n  - {}", .0.join("\n  - "))]
    Providers(Vec<String>),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What outlives a configuration reload: the process environment, the outbound connection
/// pool, the rate-limit buckets, the API-key store's connection pool, and the lifecycle.
pub struct Resources {
    /// What start-up read from the environment.
    pub env: Environment,
    /// Draining or not (readiness).
    pub lifecycle: Arc<lifecycle::Lifecycle>,
    /// The metrics (kept across reloads, so counters never restart).
    pub metrics: Arc<metrics::GatewayMetrics>,
    /// Where spans go (to the OTLP exporter while the configuration enables it).
    pub spans: Arc<otlp::SpanSink>,
    /// Every provider's shared health (circuit breakers, back-offs), kept across reloads.
    pub health: Arc<health::ProviderHealth>,
    client: http_client::HttpClient,
    buckets: rate_limit_store::BucketStores,
    key_store: tokio::sync::OnceCell<api_keys::PostgresKeyStore>,
    /// The observability store, started by the first configuration that resolves to it.
    observability: tokio::sync::OnceCell<Arc<observability::Store>>,
}

impl Resources {
    /// Fresh resources: nothing is connected until a configuration needs it.
    pub fn new(env: Environment) -> Self {
        Self::with_metrics(env, metrics::GatewayMetrics::default())
    }

    /// Fresh resources whose metrics take their settings (histogram buckets) from `loaded`.
    pub fn for_config(env: Environment, loaded: &LoadedConfig) -> Self {
        let buckets = loaded
            .config
            .gateway
            .metrics
            .tensorzero_inference_latency_overhead_seconds_buckets
            .as_deref();
        Self::with_metrics(env, metrics::GatewayMetrics::new(buckets))
    }

    fn with_metrics(env: Environment, metrics: metrics::GatewayMetrics) -> Self {
        let health = Arc::new(health::ProviderHealth::new(Some(metrics.guard())));
        Self {
            env,
            metrics: Arc::new(metrics),
            spans: Arc::default(),
            health,
            lifecycle: Arc::default(),
            client: http_client::build(),
            buckets: rate_limit_store::BucketStores::default(),
            key_store: tokio::sync::OnceCell::new(),
            observability: tokio::sync::OnceCell::new(),
        }
    }

    /// The observability store on `url`, started once (its writer and queue outlive reloads).
    async fn observability(
        &self,
        url: &str,
        pool_size: usize,
        config: &config::Config,
    ) -> Result<Arc<observability::Store>, String> {
        self.observability
            .get_or_try_init(|| async {
                let pool = api_keys::PostgresKeyStore::connect_with_pool_size(url, pool_size)?
                    .pool()
                    .clone();
                let store = observability::Store::start(
                    pool,
                    &config.gateway.observability,
                    config.postgres.as_ref(),
                    self.metrics.clone(),
                )
                .await?;
                Ok::<_, String>(Arc::new(store))
            })
            .await
            .cloned()
    }

    /// Writes the observability store's queued rows, waiting at most `within`.
    pub async fn flush_observability(&self, within: Duration) {
        if let Some(store) = self.observability.get() {
            store.close(within).await;
        }
    }

    /// The API-key store. Its first use checks that Postgres answers (so start-up fails
    /// clearly); later configurations reuse the pool, and a database that is briefly down then
    /// does not block a reload (requests see 503s until it is back).
    async fn key_store(
        &self,
        url: &str,
        pool_size: usize,
    ) -> Result<api_keys::PostgresKeyStore, String> {
        self.key_store
            .get_or_try_init(|| async {
                let store = api_keys::PostgresKeyStore::connect_with_pool_size(url, pool_size)?;
                store.check().await?;
                Ok::<_, String>(store)
            })
            .await
            .cloned()
    }
}

/// Everything a running gateway serves with, for one configuration.
pub struct App {
    /// What the handlers share.
    pub state: Arc<api::AppState>,
    /// API-key authentication (disabled unless `gateway.auth.enabled`).
    pub auth: switchyard_layers::auth::AuthLayer<body::Body>,
    /// The trace exporter (`None` while export is off).
    pub traces: Option<Arc<otlp::Exporter>>,
}

impl App {
    /// Makes this configuration the one spans are exported for, and returns the
    /// configuration-dependent part of the inbound stack (what a reload swaps).
    pub fn activate(self, resources: &Resources) -> stack::inbound::ConfiguredService {
        resources.spans.set(self.traces);
        stack::inbound::configured(self.state, self.auth)
    }
}

/// Builds the shared state for one configuration: sets up models and credentials, and, with
/// auth on, checks that the key store answers.
pub async fn build_app(loaded: &LoadedConfig, resources: &Resources) -> Result<App, StartupError> {
    let config = &loaded.config;
    let env = &resources.env;
    let pool_size = config
        .postgres
        .as_ref()
        .and_then(|p| p.connection_pool_size)
        .map_or(api_keys::DEFAULT_POOL_SIZE, |n| n as usize);
    let postgres_url = env.postgres_url.as_ref().map(Secret::expose);
    let valkey_url = env.valkey_url.as_ref().map(Secret::expose);
    let rate_limit_error = |e: String| StartupError::Config(format!("rate limiting: {e}"));
    let store = rate_limit_store::choose(
        &config.rate_limiting,
        valkey_url.is_some(),
        postgres_url.is_some(),
    )
    .map_err(rate_limit_error)?;
    // Buckets in Postgres share the gateway's one pool (the API keys' too).
    let limiter_postgres = match (store, postgres_url) {
        (Some(rate_limit_store::Store::Postgres), Some(url)) => Some(
            resources
                .key_store(url, pool_size)
                .await
                .map_err(|e| rate_limit_error(format!("Postgres is not available: {e}")))?,
        ),
        _ => None,
    };
    let (rate_limit, limiter_store) = rate_limit_store::build(
        store,
        &config.rate_limiting,
        config.gateway.limits.max_rate_limit_buckets,
        valkey_url,
        limiter_postgres.as_ref().map(|s| s.pool().clone()),
        &resources.buckets,
    )
    .await
    .map_err(rate_limit_error)?;
    let rate_limit = rate_limit.with_metrics(resources.metrics.rate_limit());
    let traces = trace_exporter(&config.gateway.export.otlp.traces, resources)?;
    let store = observability_store(config, resources, pool_size).await?;
    let mut engine = inference::Engine::new(
        config,
        loaded.template_base_dir.as_deref(),
        resources.client.clone(),
        rate_limit,
        resources.metrics.clone(),
        resources.spans.clone(),
        resources.health.clone(),
    )
    .map_err(StartupError::Providers)?;
    let files = observability::files::Files::from_config(
        config.object_storage.as_ref(),
        &resources.metrics,
        &resources.client,
    )
    .map_err(StartupError::Config)?;
    engine.set_files(Arc::new(files));
    engine.set_store(store.map(|s| s.writer.clone()), &config.metrics);
    match config
        .gateway
        .relay
        .as_ref()
        .and_then(|r| r.gateway_url.as_deref())
    {
        Some(url) => {
            tracing::info!("Relay mode: enabled (gateway_url = {url})");
            let relayed = engine.relayed_models();
            if !relayed.is_empty() {
                tracing::warn!(
                    "relay mode: these models' own providers are not used, their calls go to the relay \
                     (set `skip_relay = true` on a model to call its providers directly): {}",
                    relayed.join(", ")
                );
            }
        }
        None => tracing::info!("Relay mode: disabled"),
    }
    let base_path = config
        .gateway
        .base_path
        .as_deref()
        .unwrap_or("/")
        .trim_end_matches('/')
        .to_owned();
    let (key_store, auth) = if config.gateway.auth.enabled {
        let unavailable = |why: String| {
            StartupError::Config(format!(
                "Authentication is enabled (`gateway.auth.enabled = true`) but Postgres is not available: {why}"
            ))
        };
        let url = postgres_url.ok_or_else(|| {
            unavailable(
                "set TENSORZERO_POSTGRES_URL to the database that holds the API keys".into(),
            )
        })?;
        let store = resources
            .key_store(url, pool_size)
            .await
            .map_err(unavailable)?;
        tracing::info!("Authentication: enabled (API keys in Postgres)");
        let layer = api::auth_layer(
            &config.gateway.auth,
            &base_path,
            Arc::new(store.clone()),
            &resources.metrics,
        );
        (Some(store), layer)
    } else {
        (
            limiter_postgres,
            switchyard_layers::auth::AuthLayer::disabled(),
        )
    };
    let state = Arc::new(api::AppState {
        engine,
        base_path,
        body_limit: api::BodyLimit::from(&config.gateway.limits),
        config_hash: loaded.hash.clone(),
        backend_health: api::status::BackendHealth::watch(key_store, limiter_store),
        lifecycle: resources.lifecycle.clone(),
        metrics: resources.metrics.clone(),
        health: resources.health.clone(),
        feedback: api::feedback::FeedbackSettings {
            metrics: config.metrics.clone(),
            skip_target_check: config.gateway.unstable_disable_feedback_target_validation,
        },
    });
    Ok(App {
        state,
        auth,
        traces,
    })
}

/// `--load-dicl-examples`: embeds each example's input with the DICL variant's
/// `embedding_model` and stores it with its output in `tensorzero.dicl_examples`. Lines are
/// `{"input": <input as /inference takes it>, "output": <chat: text or content blocks; json:
/// the JSON answer>}`. Nothing is stored unless every line is valid.
pub async fn load_dicl_examples(
    loaded: &LoadedConfig,
    env: &Environment,
    file: &std::path::Path,
    function_name: &str,
    variant_name: &str,
) -> Result<usize, String> {
    use serde_json::Value;
    /// Inputs embedded per embedding request.
    const BATCH: usize = 64;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let resources = Resources::for_config(env.clone(), loaded);
    let app = build_app(loaded, &resources)
        .await
        .map_err(|e| e.to_string())?;
    let engine = &app.state.engine;
    let store = engine.store().ok_or(
        "the observability store is off: set TENSORZERO_POSTGRES_URL and run `switchyard --run-postgres-migrations` first",
    )?;
    let function = engine
        .function(function_name)
        .ok_or_else(|| format!("function `{function_name}` is not in the configuration"))?;
    let Some(config::VariantConfig::ExperimentalDynamicInContextLearning(dicl)) =
        function.variants.get(variant_name).map(|v| &v.config)
    else {
        return Err(format!(
            "`{function_name}` has no `experimental_dynamic_in_context_learning` variant named `{variant_name}`"
        ));
    };
    let mut examples = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = format!("{}:{}", file.display(), i + 1);
        let mut v: serde_json::Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("{at}: not a JSON object: {e}"))?;
        let input = v
            .remove("input")
            .ok_or(format!("{at}: `input` is missing"))?;
        let wire: native_wire::InputBody =
            serde_json::from_value(input).map_err(|e| format!("{at}: invalid `input`: {e}"))?;
        let input = api::inference::input_from_wire(wire).map_err(|e| format!("{at}: {e}"))?;
        let output = match v.remove("output") {
            None | Some(Value::Null) => return Err(format!("{at}: `output` is missing")),
            Some(o) if function.is_json() => match o {
                Value::Object(m) if m.contains_key("raw") => Value::Object(m),
                other => serde_json::json!({"raw": other.to_string(), "parsed": other}),
            },
            Some(Value::String(s)) => serde_json::json!([{"type": "text", "text": s}]),
            Some(blocks @ Value::Array(_)) => blocks,
            Some(_) => {
                return Err(format!(
                    "{at}: a chat function's `output` is a string or a list of content blocks"
                ));
            }
        };
        examples.push((
            inference::stored::stored_input(&input, &observability::files::Files::disabled())
                .to_string(),
            output.to_string(),
        ));
    }
    if examples.is_empty() {
        return Err(format!("`{}` holds no examples", file.display()));
    }
    let ranking = observability::dicl::ranking(store.pool())
        .await?
        .ok_or("the database has no tensorzero.dicl_examples table: run `switchyard --run-postgres-migrations`")?;
    let mut rows = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(BATCH) {
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|(i, _)| Value::String(i.clone()))
            .collect();
        let request = embeddings::EmbeddingRequest::new(Value::Array(inputs), None, None)
            .map_err(|e| e.to_string())?;
        let mut call = switchyard_layers::call::Call::new(request);
        call.extensions
            .insert(switchyard_layers::ext::Tags::default());
        let output = engine
            .embeddings()
            .embed(&dicl.embedding_model, call)
            .await
            .map_err(|e| format!("embedding with `{}`: {e}", dicl.embedding_model))?;
        if output.embeddings.len() != chunk.len() {
            return Err(format!(
                "embedding model `{}` answered {} vectors for {} inputs",
                dicl.embedding_model,
                output.embeddings.len(),
                chunk.len()
            ));
        }
        for ((input, output_text), vector) in chunk.iter().zip(&output.embeddings) {
            let vector: Vec<f32> = vector
                .as_array()
                .ok_or("the embedding model answered something other than a list of numbers")?
                .iter()
                .filter_map(|x| x.as_f64().map(|x| x as f32))
                .collect();
            rows.push((input.clone(), output_text.clone(), vector));
        }
    }
    observability::dicl::insert(store.pool(), ranking, function_name, variant_name, &rows).await?;
    resources.flush_observability(Duration::from_secs(5)).await;
    Ok(rows.len())
}

/// The observability store, when TensorZero's rules resolve to Postgres. A store that cannot
/// start (Postgres down, tables missing) stops start-up only when `observability.enabled =
/// true` requires it; otherwise the gateway serves without storing, and says so.
async fn observability_store(
    config: &config::Config,
    resources: &Resources,
    pool_size: usize,
) -> Result<Option<Arc<observability::Store>>, StartupError> {
    let env = &resources.env;
    let obs = &config.gateway.observability;
    let backend = observability::resolve(obs, env.postgres_url.is_some(), env.clickhouse_url_set)
        .map_err(|e| StartupError::Config(format!("observability: {e}")))?;
    let (observability::Backend::Postgres, Some(url)) = (backend, env.postgres_url.as_ref()) else {
        return Ok(None);
    };
    match resources
        .observability(url.expose(), pool_size, config)
        .await
    {
        Ok(store) => {
            tracing::info!("Observability: enabled (inferences and feedback in Postgres)");
            Ok(Some(store))
        }
        Err(e) if obs.enabled == Some(true) => Err(StartupError::Config(format!(
            "observability is enabled (`gateway.observability.enabled = true`) but its store cannot start: {e}"
        ))),
        Err(e) => {
            tracing::warn!("observability: not storing inferences or feedback: {e}");
            Ok(None)
        }
    }
}

/// The trace exporter `config` asks for: none while export is off, the one in use when nothing
/// about it changed, else a new one.
fn trace_exporter(
    config: &config::gateway::OtlpTracesConfig,
    resources: &Resources,
) -> Result<Option<Arc<otlp::Exporter>>, StartupError> {
    if !config.enabled {
        return Ok(None);
    }
    let env = &resources.env;
    let endpoint = env.otlp_traces_endpoint.clone().ok_or_else(|| {
        StartupError::Config(
            "`gateway.export.otlp.traces.enabled = true` needs OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
             (the collector's OTLP/gRPC address, e.g. http://otel-collector:4317; for OTLP/HTTP \
             also set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf and give the full URL, \
             e.g. http://otel-collector:4318/v1/traces)"
                .into(),
        )
    })?;
    let protocol = otlp::transport::Protocol::from_env(env.otlp_traces_protocol.as_deref())
        .map_err(StartupError::Config)?;
    let settings = otlp::ExportSettings {
        endpoint,
        protocol,
        config: config.clone(),
    };
    if let Some(exporter) = resources.spans.reusable(&settings) {
        return Ok(Some(exporter));
    }
    tracing::info!(endpoint = %settings.endpoint, %protocol, "OTLP trace export: enabled");
    otlp::Exporter::start(
        settings,
        &resources.client,
        resources.metrics.otlp_exports.clone(),
    )
    .map(Some)
    .map_err(StartupError::Config)
}

/// A gateway serving in the background (for tests and embedding).
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drains in-flight requests, and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds `addr` and serves in a background task, with nothing from the process environment.
pub async fn start(
    loaded: &LoadedConfig,
    addr: SocketAddr,
) -> Result<RunningGateway, StartupError> {
    start_with(loaded, addr, &Environment::default()).await
}

/// Binds `addr` and serves in a background task.
pub async fn start_with(
    loaded: &LoadedConfig,
    addr: SocketAddr,
    env: &Environment,
) -> Result<RunningGateway, StartupError> {
    let resources = Resources::for_config(env.clone(), loaded);
    let app = build_app(loaded, &resources).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        stack::inbound::inbound(
            stack::swappable::Swappable::new(app.activate(&resources)),
            resources.metrics.http.clone(),
            resources.spans.clone(),
        ),
        server::ServerLimits::from(&loaded.config.gateway.limits),
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(5),
    ));
    Ok(RunningGateway {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// How the binary serves: where, how it shuts down, and how often it looks for a changed
/// configuration.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The listening address.
    pub addr: SocketAddr,
    /// Shutdown delay and drain timeout.
    pub shutdown: lifecycle::ShutdownTimings,
    /// How often the configuration files are checked for changes (`None`: only on SIGHUP).
    pub config_poll: Option<Duration>,
    /// Where to serve `GET /metrics` alone, without API keys (`--metrics-bind-address`).
    pub metrics_addr: Option<SocketAddr>,
}

/// Binds the address and serves until `shutdown` resolves, reloading the configuration on
/// SIGHUP and when its files change (what the binary runs). On `shutdown`: readiness fails,
/// the shutdown delay passes with the gateway still serving, then the listener closes and
/// in-flight requests get the drain timeout to finish.
pub async fn run(
    source: reload::ConfigSource,
    loaded: &LoadedConfig,
    env: &Environment,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    let resources = Arc::new(Resources::for_config(env.clone(), loaded));
    let app = build_app(loaded, &resources).await?;
    let addr = options.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    // Bound before anything is served: a port that cannot be had stops start-up, as the
    // main one does.
    let metrics_listener = match options.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { addr, source })?;
            let local = listener.local_addr().unwrap_or(addr);
            tracing::info!(address = %local, "switchyard metrics listening");
            Some(tokio::spawn(server::metrics_listener::serve(
                listener,
                resources.metrics.clone(),
            )))
        }
        None => None,
    };
    let service = stack::swappable::Swappable::new(app.activate(&resources));
    let reloader = reload::Reloader::new(source, resources.clone(), service.clone(), loaded)
        .spawn(options.config_poll);
    tracing::info!(address = %local, "switchyard listening");
    let lifecycle = resources.lifecycle.clone();
    let delay = options.shutdown.delay;
    let stop_accepting = async move {
        shutdown.await;
        lifecycle.start_draining();
        if !delay.is_zero() {
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "shutting down: readiness now fails; still serving during the shutdown delay"
            );
            tokio::time::sleep(delay).await;
        }
    };
    server::serve(
        listener,
        stack::inbound::inbound(
            service,
            resources.metrics.http.clone(),
            resources.spans.clone(),
        ),
        server::ServerLimits::from(&loaded.config.gateway.limits),
        stop_accepting,
        options.shutdown.drain,
    )
    .await;
    // The last requests' usage: settlements wait briefly to share a store call.
    resources.buckets.flush(Duration::from_secs(1)).await;
    // Queued inferences and feedback: written before the process exits.
    resources
        .flush_observability(options.shutdown.drain.max(Duration::from_secs(1)))
        .await;
    reloader.abort();
    if let Some(task) = metrics_listener {
        task.abort();
    }
    tracing::info!("switchyard stopped");
    Ok(())
}
