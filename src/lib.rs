//! switchyard: an LLM gateway that serves the TensorZero Gateway's API from `tensorzero.toml`.
//!
//! The same binary plays two roles (an edge sidecar next to each app and a central relay);
//! which one is only configuration. [`stack`] shows how the tower layers are composed;
//! [`start`] builds everything from a loaded configuration.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod body;
pub mod config;
pub mod credentials;
pub mod error;
pub mod http_client;
pub mod inference;
pub mod limiter;
pub mod mock_provider;
pub mod providers;
pub mod secret;
pub mod server;
pub mod sse;
pub mod stack;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config::LoadedConfig;

/// What start-up reads from the process environment, gathered in one place so that tests and
/// embedders can supply it.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `TENSORZERO_POSTGRES_URL`: the API-key store.
    pub postgres_url: Option<String>,
    /// `TENSORZERO_VALKEY_URL`: the shared rate-limit store.
    pub valkey_url: Option<String>,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self {
            postgres_url: std::env::var("TENSORZERO_POSTGRES_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            valkey_url: std::env::var("TENSORZERO_VALKEY_URL")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration asks for something that cannot be served safely.
    #[error("{0}")]
    Config(String),
    /// Providers could not be set up (missing keys, endpoints).
    #[error("cannot set up providers:\n  - {}", .0.join("\n  - "))]
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

/// Everything a running gateway serves with.
pub struct App {
    /// What the handlers share.
    pub state: Arc<api::AppState>,
    /// API-key authentication (disabled unless `gateway.auth.enabled`).
    pub auth: switchyard_layers::auth::AuthLayer<body::Body>,
}

/// Builds the shared state: sets up models and credentials, and, with auth on, checks that the
/// key store answers.
pub async fn build_state(loaded: &LoadedConfig, env: &Environment) -> Result<App, StartupError> {
    let config = &loaded.config;
    let (rate_limit, limiter_store) =
        limiter::build(&config.rate_limiting, env.valkey_url.as_deref())
            .await
            .map_err(|e| StartupError::Config(format!("rate limiting: {e}")))?;
    let gateway = inference::Gateway::new(config, http_client::build(), rate_limit)
        .map_err(StartupError::Providers)?;
    match config
        .gateway
        .relay
        .as_ref()
        .and_then(|r| r.gateway_url.as_deref())
    {
        Some(url) => {
            tracing::info!("Relay mode: enabled (gateway_url = {url})");
            let relayed = gateway.relayed_models();
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
        let url = env.postgres_url.as_deref().ok_or_else(|| {
            unavailable(
                "set TENSORZERO_POSTGRES_URL to the database that holds the API keys".into(),
            )
        })?;
        let store = auth::PostgresKeyStore::connect(url).map_err(unavailable)?;
        store.check().await.map_err(unavailable)?;
        tracing::info!("Authentication: enabled (API keys in Postgres)");
        let layer = api::auth_layer(&config.gateway.auth, &base_path, Arc::new(store.clone()));
        (Some(store), layer)
    } else {
        (None, switchyard_layers::auth::AuthLayer::disabled())
    };
    let state = Arc::new(api::AppState {
        gateway,
        base_path,
        body_limit: api::DEFAULT_BODY_LIMIT,
        config_hash: loaded.hash.clone(),
        key_store,
        limiter_store,
    });
    Ok(App { state, auth })
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
    let app = build_state(loaded, env).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        stack::inbound(app.state, app.auth),
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

/// Binds `addr` and serves until `shutdown` resolves (what the binary runs).
pub async fn run(
    loaded: &LoadedConfig,
    env: &Environment,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Result<(), StartupError> {
    let app = build_state(loaded, env).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(address = %local, "switchyard listening");
    server::serve(
        listener,
        stack::inbound(app.state, app.auth),
        shutdown,
        drain,
    )
    .await;
    Ok(())
}
