//! `GET /status`, `GET /health` and the Kubernetes-style probes `GET /live` and `GET /ready`:
//! open to everyone (no API key), for probes and load balancers.
//!
//! - `/live`: the process is up and its runtime answers. Nothing else is checked, so a
//!   dependency outage never gets the gateway restarted.
//! - `/ready`: the gateway can serve: a configuration is loaded (always true once it listens),
//!   it is not shutting down, and the backends that configuration needs (Postgres for API keys,
//!   Valkey/Redis for shared rate limits) answer within a second.
//! - `/health`: the TensorZero Gateway's endpoint, kept for compatibility: the backends' state
//!   without the shutdown check.

use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::json;

use super::{AppState, VERSION, json_response};
use crate::body::Body;

/// How long a backend may take to answer a probe.
const BACKEND_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `{"status":"ok","version":...,"config_hash":...}`.
pub fn status(state: &AppState) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({ "status": "ok", "version": VERSION, "config_hash": state.config_hash }),
    )
}

/// Whether each enabled backend answers (disabled backends count as answering).
struct Backends {
    postgres: bool,
    valkey: bool,
}

impl Backends {
    async fn probe(state: &AppState) -> Self {
        let postgres = async {
            match &state.key_store {
                None => true,
                Some(store) => matches!(
                    tokio::time::timeout(BACKEND_PROBE_TIMEOUT, store.check()).await,
                    Ok(Ok(()))
                ),
            }
        };
        let valkey = async {
            match &state.limiter_store {
                None => true,
                Some(store) => matches!(
                    tokio::time::timeout(BACKEND_PROBE_TIMEOUT, store.ping()).await,
                    Ok(Ok(()))
                ),
            }
        };
        let (postgres, valkey) = tokio::join!(postgres, valkey);
        Self { postgres, valkey }
    }

    fn all_up(&self) -> bool {
        self.postgres && self.valkey
    }
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// The health of the gateway and its backends: 503 when an enabled backend does not answer
/// within a second.
pub async fn health(state: &AppState) -> Response<Body> {
    let backends = Backends::probe(state).await;
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
pub async fn ready(state: &AppState) -> Response<Body> {
    let draining = state.lifecycle.is_draining();
    let backends = Backends::probe(state).await;
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
