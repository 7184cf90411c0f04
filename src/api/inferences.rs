//! `POST /v1/inferences/get_inferences` and `POST /v1/inferences/list_inferences`: stored
//! inferences read back from the observability store (empty lists while it is off, as
//! TensorZero answers with its store disabled).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{AppState, json_response, parse_json, read_body};
use crate::body::Body;
use crate::error::Error;
use crate::observability::reads::{self, Catalog, ListInferences, OutputSource, ReadError};

/// `get_inferences`' request.
#[derive(Debug, Deserialize)]
struct GetInferences {
    ids: Vec<Uuid>,
    function_name: Option<String>,
    #[serde(default)]
    output_source: OutputSource,
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Invalid(message) => Error::InvalidRequest(message),
            ReadError::UnknownFunction(name) => Error::UnknownFunction(name),
            ReadError::Unavailable(why) => {
                tracing::warn!(error = %why, "reading stored inferences failed");
                Error::StoreUnavailable(
                    "the observability store (Postgres) did not answer; retry shortly".into(),
                )
            }
        }
    }
}

fn catalog<'a>(
    state: &'a AppState,
    function_is_json: &'a (dyn Fn(&str) -> Option<bool> + Sync),
) -> Catalog<'a> {
    Catalog {
        metrics: &state.feedback.metrics,
        function_is_json,
    }
}

/// Handles `POST /v1/inferences/get_inferences`.
pub async fn get<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (_, bytes) = read_body(req, state.body_limit).await?;
    let body: GetInferences = parse_json(&bytes)?;
    let is_json = |name: &str| state.engine.function(name).map(|f| f.is_json());
    let catalog = catalog(state, &is_json);
    let inferences = match state.engine.store() {
        Some(store) => {
            reads::get_inferences(
                store.pool(),
                &catalog,
                body.ids,
                body.function_name.as_deref(),
                body.output_source,
            )
            .await?
        }
        None => Vec::new(),
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "inferences": inferences }),
    ))
}

/// Handles `POST /v1/inferences/list_inferences`.
pub async fn list<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (_, bytes) = read_body(req, state.body_limit).await?;
    let body: ListInferences = parse_json(&bytes)?;
    let is_json = |name: &str| state.engine.function(name).map(|f| f.is_json());
    let catalog = catalog(state, &is_json);
    let inferences = match state.engine.store() {
        Some(store) => reads::list_inferences(store.pool(), &catalog, &body).await?,
        None => Vec::new(),
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "inferences": inferences }),
    ))
}
