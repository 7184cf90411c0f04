//! `GET /status`, `GET /health` and the Kubernetes-style probes `GET /live` and `GET /ready`:
//! open to everyone (no API key), for probes and load balancers.
//!
//! - `/live`: the process is up and its runtime answers. Nothing else is checked, so a
//!   dependency outage never gets the gateway restarted.
//! - `/ready`: the gateway can serve: a configuration is loaded (always true once it listens),
//!   it is not shutting down, and the backends that configuration needs (Postgres for API keys,
//!   Valkey/Redis for shared rate limits) answer.
//! - `/health`: the TensorZero Gateway's endpoint, kept for compatibility: the backends' state
//!   without the shutdown check.
//!
//! Neither asks the backends itself: probes arrive every few seconds from every kubelet and
//! load balancer, and a probe that queried Postgres would compete with key lookups for the
//! pool. A background check ([`BackendHealth::watch`]) asks every [`CHECK_INTERVAL`] and the
//! endpoints read its last answer. One slow answer does not flip a backend to down: that takes
//! [`FAILURES_TO_DOWN`] failed checks in a row, so a briefly slow database does not turn every
//! replica NotReady at once; one good answer brings it back.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{AppState, VERSION, json_response};
use crate::api_keys::PostgresKeyStore;
use crate::body::Body;
use crate::rate_limit_store::RedisBackend;

/// How long a backend may take to answer a check.
const BACKEND_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the background check asks the backends.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Failed checks in a row after which a backend counts as down.
pub const FAILURES_TO_DOWN: u32 = 2;

/// The backends one configuration needs, as the background check last saw them.
#[derive(Debug, Default)]
pub struct BackendHealth {
    /// Failed checks in a row, per backend.
    postgres_failures: AtomicU32,
    valkey_failures: AtomicU32,
}

impl BackendHealth {
    /// Starts checking `key_store` and `limiter_store` (either may be absent: not needed by
    /// this configuration) in the background, until the returned state is dropped (the
    /// configuration was replaced).
    pub fn watch(
        key_store: Option<PostgresKeyStore>,
        limiter_store: Option<RedisBackend>,
    ) -> Arc<Self> {
        let health = Arc::new(Self::default());
        if key_store.is_none() && limiter_store.is_none() {
            return health;
        }
        let weak: Weak<Self> = Arc::downgrade(&health);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // start-up has just checked both
            loop {
                ticks.tick().await;
                if weak.strong_count() == 0 {
                    return;
                }
                let postgres = async {
                    match &key_store {
                        None => true,
                        Some(store) => matches!(
                            tokio::time::timeout(BACKEND_PROBE_TIMEOUT, store.check()).await,
                            Ok(Ok(()))
                        ),
                    }
                };
                let valkey = async {
                    match &limiter_store {
                        None => true,
                        Some(store) => matches!(
                            tokio::time::timeout(BACKEND_PROBE_TIMEOUT, store.ping()).await,
                            Ok(Ok(()))
                        ),
                    }
                };
                let (postgres, valkey) = tokio::join!(postgres, valkey);
                let Some(health) = weak.upgrade() else { return };
                record(&health.postgres_failures, postgres);
                record(&health.valkey_failures, valkey);
            }
        });
        health
    }

    fn backends(&self) -> Backends {
        let up = |failures: &AtomicU32| failures.load(Ordering::Relaxed) < FAILURES_TO_DOWN;
        Backends {
            postgres: up(&self.postgres_failures),
            valkey: up(&self.valkey_failures),
        }
    }
}

fn record(failures: &AtomicU32, ok: bool) {
    if ok {
        failures.store(0, Ordering::Relaxed);
    } else {
        failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// `{"status":"ok","version":...,"config_hash":...}`.
pub fn status(state: &AppState) -> Response<Body> {
    // Each model provider's circuit and back-offs (a switchyard addition to TensorZero's
    // `/status`): which providers are being skipped, until when, and why.
    let providers: Vec<Value> = state
        .health
        .reports()
        .into_iter()
        .map(|r| {
            json!({
                "model": &*r.model,
                "provider": &*r.provider,
                "circuit": r.state.as_str(),
                "retried_in_ms": r.open_for.map(|d| d.as_millis() as u64),
                "consecutive_failures": r.consecutive_failures,
                "last_error": r.last_error.as_deref(),
                "backing_off": r.backing_off.map(|(keys, longest)| json!({
                    "credentials": keys,
                    "longest_ms": longest.as_millis() as u64,
                })),
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "version": VERSION,
            "config_hash": state.config_hash,
            "providers": providers,
        }),
    )
}

/// Whether each enabled backend answers (disabled backends count as answering).
struct Backends {
    postgres: bool,
    valkey: bool,
}

impl Backends {
    fn all_up(&self) -> bool {
        self.postgres && self.valkey
    }
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// The health of the gateway and its backends: 503 while an enabled backend is down.
pub fn health(state: &AppState) -> Response<Body> {
    let backends = state.backend_health.backends();
    let status = if backends.all_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "gateway": "ok",
            "postgres": word(backends.postgres),
            "valkey": word(backends.valkey),
        }),
    )
}

/// Liveness: answering at all is the check.
pub fn live() -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "status": "alive" }))
}

/// Readiness: 200 when the gateway can serve, else 503 with the reasons.
pub fn ready(state: &AppState) -> Response<Body> {
    let draining = state.lifecycle.is_draining();
    let backends = state.backend_health.backends();
    let mut reasons = Vec::new();
    if draining {
        reasons.push("shutting down: finishing in-flight requests");
    }
    if !backends.postgres {
        reasons.push("Postgres (API keys) does not answer");
    }
    if !backends.valkey {
        reasons.push("Valkey/Redis (rate limits) does not answer");
    }
    let ready = reasons.is_empty();
    json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({
            "status": if ready { "ready" } else { "not_ready" },
            "reasons": reasons,
            "config_hash": state.config_hash,
            "postgres": word(backends.postgres),
            "valkey": word(backends.valkey),
        }),
    )
}
