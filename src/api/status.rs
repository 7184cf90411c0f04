//! `GET /status` and `GET /health`: open to everyone, for probes and load balancers.

use http::{Response, StatusCode};
use serde_json::json;

use super::{AppState, VERSION, json_response};
use crate::body::Body;

/// `{"status":"ok","version":...,"config_hash":...}`.
pub fn status(state: &AppState) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({ "status": "ok", "version": VERSION, "config_hash": state.config_hash }),
    )
}

/// The health of the gateway and its backends (disabled backends count as `ok`): 503 when an
/// enabled backend does not answer within a second.
pub async fn health(state: &AppState) -> Response<Body> {
    let postgres = match &state.key_store {
        None => true,
        Some(store) => matches!(
            tokio::time::timeout(std::time::Duration::from_secs(1), store.check()).await,
            Ok(Ok(()))
        ),
    };
    let valkey = match &state.limiter_store {
        None => true,
        Some(store) => matches!(
            tokio::time::timeout(std::time::Duration::from_secs(1), store.ping()).await,
            Ok(Ok(()))
        ),
    };
    let word = |ok: bool| if ok { "ok" } else { "error" };
    let status = if postgres && valkey {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({ "gateway": "ok", "postgres": word(postgres), "valkey": word(valkey) }),
    )
}
