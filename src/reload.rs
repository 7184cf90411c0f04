//! Configuration reload without a restart.
//!
//! Two triggers:
//!
//! - **SIGHUP** always reloads (also when the files look unchanged: a template or a key file
//!   they point to may have changed).
//! - **A poll of the files' contents** reloads when they changed. Kubernetes updates a mounted
//!   ConfigMap by swapping a symlink in the volume, which a watch on the file itself misses;
//!   reading the contents sees it. The poll reads a few kilobytes every few seconds.
//!
//! A reload loads and validates the new files exactly as start-up does, then builds the new
//! configuration's stack (models, providers, auth, rules) over the process's long-lived
//! [`Resources`]: the outbound connection pool, the rate-limit buckets (their balances carry
//! over) and the Postgres and Redis connections. Only then is the stack swapped in, atomically
//! ([`Swappable`]); requests already running finish on the configuration they started with.
//! A file that does not load or validate changes nothing: the error is logged, with file, line
//! and TOML path, and the previous configuration keeps serving.
//!
//! Not reloadable: the listening address (`gateway.bind_address`) and the process environment
//! (`TENSORZERO_POSTGRES_URL`, `TENSORZERO_VALKEY_URL`, provider keys read from `env::`
//! locations keep the values they had at start-up). A changed bind address is reported as a
//! warning; restart to apply it. Each successful reload keeps the new files' text in memory for
//! the life of the process (error locations point into it), so reloads cost a few kilobytes
//! each: fine for configuration changes, not for reloading in a loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigErrors, LoadedConfig, files_hash, referenced_files_hash};
use crate::stack::inbound::ConfiguredService;
use crate::stack::swappable::Swappable;
use crate::{Resources, build_app};

/// Where the configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// `--config-file PATH_OR_GLOB`.
    Files(String),
    /// `--default-config`: nothing to reload.
    BuiltInDefault,
}

impl ConfigSource {
    /// Loads and validates the configuration.
    pub fn load(&self) -> Result<LoadedConfig, ConfigErrors> {
        match self {
            Self::Files(pattern) => LoadedConfig::from_files(pattern),
            Self::BuiltInDefault => Ok(LoadedConfig::default_config()),
        }
    }

    /// What the files hash to now (the hash `/status` would show), or what stops them being
    /// read; `None` for the built-in configuration.
    fn current_hash(&self) -> Option<String> {
        match self {
            Self::Files(pattern) => {
                Some(files_hash(pattern).unwrap_or_else(|e| format!("unreadable: {e}")))
            }
            Self::BuiltInDefault => None,
        }
    }
}

/// The files `loaded` names, and the hash of their contents now.
fn referenced(loaded: &LoadedConfig) -> (Vec<std::path::PathBuf>, String) {
    let files = loaded.referenced_files();
    let hash = referenced_files_hash(&files);
    (files, hash)
}

/// Why a reload was attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// The poll saw different file contents.
    FilesChanged,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "SIGHUP",
            Self::FilesChanged => "the configuration files changed",
        }
    }
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new configuration serves from now on.
    Reloaded {
        /// The hash of the configuration it replaced.
        from: String,
        /// Its own hash.
        to: String,
    },
    /// The built-in configuration has nothing to reload.
    NothingToReload,
}

/// Reloads the configuration into a [`Swappable`] stack.
pub struct Reloader {
    source: ConfigSource,
    resources: Arc<Resources>,
    service: Swappable<ConfiguredService>,
    /// The hash of the configuration being served.
    serving: String,
    /// The files it names (templates, schemas, ...) and what their contents hashed to when it
    /// loaded: the poll reloads when one of them changes, too.
    referenced: (Vec<std::path::PathBuf>, String),
    /// The hash of files that failed to load: the poll does not retry them until they change.
    rejected: Option<String>,
    bind_address: Option<SocketAddr>,
}

impl Reloader {
    /// A reloader for `service`, which serves `loaded` (read from `source`).
    pub fn new(
        source: ConfigSource,
        resources: Arc<Resources>,
        service: Swappable<ConfiguredService>,
        loaded: &LoadedConfig,
    ) -> Self {
        Self {
            source,
            resources,
            service,
            serving: loaded.hash.clone(),
            referenced: referenced(loaded),
            rejected: None,
            bind_address: loaded.config.gateway.bind_address,
        }
    }

    /// Loads, validates and builds the configuration, and swaps it in. On error nothing
    /// changes and the error says why.
    pub async fn reload(&mut self) -> Result<Outcome, String> {
        if matches!(self.source, ConfigSource::BuiltInDefault) {
            return Ok(Outcome::NothingToReload);
        }
        let loaded = self.source.load().map_err(|e| e.to_string())?;
        let app = build_app(&loaded, &self.resources)
            .await
            .map_err(|e| e.to_string())?;
        for warning in &loaded.warnings {
            tracing::warn!("{}", warning.message);
        }
        if loaded.config.gateway.bind_address != self.bind_address {
            tracing::warn!(
                "`gateway.bind_address` changed; the gateway keeps listening where it is: restart it to apply the new address"
            );
        }
        self.service.replace(app.activate(&self.resources));
        self.referenced = referenced(&loaded);
        let from = std::mem::replace(&mut self.serving, loaded.hash.clone());
        self.rejected = None;
        Ok(Outcome::Reloaded {
            from,
            to: loaded.hash,
        })
    }

    async fn reload_and_log(&mut self, trigger: Trigger) {
        let attempted = match self.source.current_hash() {
            // Remember what failed: new config files, or the same ones with changed
            // referenced files.
            Some(now) if now == self.serving => Some(referenced_files_hash(&self.referenced.0)),
            other => other,
        };
        match self.reload().await {
            Ok(Outcome::Reloaded { from, to }) => tracing::info!(
                trigger = trigger.as_str(),
                from_config_hash = %from,
                config_hash = %to,
                "configuration reloaded"
            ),
            Ok(Outcome::NothingToReload) => tracing::info!(
                trigger = trigger.as_str(),
                "the built-in default configuration has nothing to reload"
            ),
            Err(e) => {
                self.rejected = attempted;
                tracing::error!(
                    trigger = trigger.as_str(),
                    config_hash = %self.serving,
                    "configuration reload failed; still serving the previous configuration: {e}"
                );
            }
        }
    }

    /// Whether the poll should reload: the files differ from what serves and from what
    /// failed last time.
    fn files_changed(&self) -> bool {
        match self.source.current_hash() {
            Some(now) if now != self.serving => Some(&now) != self.rejected.as_ref(),
            // The config files are as they were; a template or schema they name may not be.
            Some(_) => {
                let (files, hash) = &self.referenced;
                let now = referenced_files_hash(files);
                &now != hash && Some(&now) != self.rejected.as_ref()
            }
            None => false,
        }
    }

    /// Reloads on SIGHUP, and when a poll every `poll` (if any) sees the files change. The
    /// signal handler is installed before this returns, so a SIGHUP sent from then on reloads
    /// rather than ending the process (the default action of SIGHUP).
    pub fn spawn(mut self, poll: Option<Duration>) -> tokio::task::JoinHandle<()> {
        #[cfg(unix)]
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by file change only");
                None
            }
        };
        tokio::spawn(async move {
            let mut ticks = poll.map(|every| {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let hangup = async {
                    #[cfg(unix)]
                    if let Some(h) = hangups.as_mut() {
                        h.recv().await;
                        return;
                    }
                    std::future::pending::<()>().await
                };
                let tick = async {
                    match ticks.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                let trigger = tokio::select! {
                    () = hangup => Trigger::Signal,
                    () = tick => Trigger::FilesChanged,
                };
                if trigger == Trigger::FilesChanged && !self.files_changed() {
                    continue;
                }
                self.reload_and_log(trigger).await;
            }
        })
    }
}
