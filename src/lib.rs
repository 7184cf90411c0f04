//! switchyard: an LLM gateway that serves the TensorZero Gateway's API from `tensorzero.toml`.
//!
//! The same binary plays two roles (an edge sidecar next to each app and a central relay);
//! which one is only configuration. [`stack`] shows how the tower layers are composed;
//! [`start`] builds everything from a loaded configuration.

#![forbid(unsafe_code)]

pub mod api;
pub mod body;
pub mod config;
pub mod credentials;
pub mod error;
pub mod http_client;
pub mod inference;
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

/// Builds the shared state: checks what cannot be served, sets up models and credentials.
pub fn build_state(loaded: &LoadedConfig) -> Result<Arc<api::AppState>, StartupError> {
    let config = &loaded.config;
    if config.gateway.auth.enabled {
        return Err(StartupError::Config(
            "`gateway.auth.enabled = true`, but switchyard cannot check API keys yet; refusing to \
             serve unauthenticated. Remove the setting or run a build with auth support."
                .into(),
        ));
    }
    let gateway =
        inference::Gateway::new(config, http_client::build()).map_err(StartupError::Providers)?;
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
    Ok(Arc::new(api::AppState {
        gateway,
        base_path,
        body_limit: api::DEFAULT_BODY_LIMIT,
        config_hash: loaded.hash.clone(),
    }))
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

/// Binds `addr` and serves in a background task.
pub async fn start(
    loaded: &LoadedConfig,
    addr: SocketAddr,
) -> Result<RunningGateway, StartupError> {
    let state = build_state(loaded)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        stack::inbound(state),
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
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Result<(), StartupError> {
    let state = build_state(loaded)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(address = %local, "switchyard listening");
    server::serve(listener, stack::inbound(state), shutdown, drain).await;
    Ok(())
}
