//! `GET /openai/v1/models` and `GET /anthropic/v1/models`: what a client may put in `model`,
//! in each API's list shape: the configured models and functions (by their bare names, which
//! the agent routes resolve), then the shorthand prefixes (`openai::`, ...), which take any of
//! the provider's model names after them.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{AppState, json_response};
use crate::body::Body;
use crate::config::ProviderType;

/// One entry: its id, and what it is (`model`, `function` or `shorthand`).
fn entries(state: &AppState) -> Vec<(String, &'static str)> {
    let engine = &state.engine;
    let mut out: Vec<(String, &'static str)> = engine
        .model_names()
        .into_iter()
        .map(|m| (m.to_owned(), "model"))
        .collect();
    out.extend(
        engine
            .function_names()
            .into_iter()
            .map(|f| (f.to_owned(), "function")),
    );
    out.extend(
        ProviderType::SHORTHAND
            .iter()
            .map(|t| (format!("{}::", t.as_str()), "shorthand")),
    );
    out
}

/// `GET /openai/v1/models`.
pub fn openai(state: &AppState) -> Response<Body> {
    let data: Vec<Value> = entries(state)
        .into_iter()
        .map(|(id, kind)| {
            json!({ "id": id, "object": "model", "created": 0, "owned_by": "switchyard", "switchyard_kind": kind })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

/// `GET /anthropic/v1/models`.
pub fn anthropic(state: &AppState) -> Response<Body> {
    let data: Vec<Value> = entries(state)
        .into_iter()
        .map(|(id, kind)| {
            json!({
                "type": "model",
                "id": id,
                "display_name": format!("{id} ({kind})"),
                "created_at": "1970-01-01T00:00:00Z",
            })
        })
        .collect();
    let first = data.first().map(|d| d["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|d| d["id"].clone()).unwrap_or(Value::Null);
    json_response(
        StatusCode::OK,
        &json!({ "data": data, "has_more": false, "first_id": first, "last_id": last }),
    )
}
