//! `POST /openai/v1/embeddings`: OpenAI's embeddings API over `[embedding_models]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard_layers::call::Call;
use switchyard_layers::ext::{ApiKeyPublicId, DynamicCredentials, InferenceInfo, Tags};
use switchyard_layers::trace_context::{TraceContext, TraceExtras};

use super::{AppState, json_response, parse_json, read_body};
use crate::body::Body;
use crate::embeddings::{EMBEDDING_MODEL_PREFIX, EmbeddingRequest};
use crate::error::Error;
use switchyard_layers::Secret;

#[derive(Debug, Deserialize)]
struct OpenAiEmbeddingRequest {
    input: Value,
    model: String,
    dimensions: Option<u32>,
    encoding_format: Option<String>,
    #[serde(
        rename = "tensorzero::credentials",
        default,
        deserialize_with = "crate::request_credentials::deserialize_map"
    )]
    credentials: BTreeMap<String, Secret>,
    #[serde(rename = "tensorzero::dryrun")]
    dryrun: Option<bool>,
    #[serde(rename = "tensorzero::cache_options")]
    cache_options: Option<Value>,
    #[serde(rename = "tensorzero::include_raw_response")]
    include_raw_response: Option<bool>,
    /// OpenAI's end-user id: accepted, not used.
    user: Option<String>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

/// Handles `POST /openai/v1/embeddings`.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, bytes) = read_body(req, state.body_limit).await?;
    let request: OpenAiEmbeddingRequest = parse_json(&bytes)?;
    if !request.unknown.is_empty() {
        let mut names: Vec<&String> = request.unknown.keys().collect();
        names.sort();
        tracing::warn!(fields = ?names, "ignoring unknown fields in an embeddings request");
    }
    // Accepted for compatibility; nothing is stored or cached.
    let _ = (
        request.dryrun,
        request.cache_options,
        request.include_raw_response,
        request.user,
    );
    let name = match request.model.strip_prefix(EMBEDDING_MODEL_PREFIX) {
        Some(name) => name.to_owned(),
        None => {
            tracing::warn!(
                model = %request.model,
                "embedding model names without the `{EMBEDDING_MODEL_PREFIX}` prefix are deprecated"
            );
            request.model.clone()
        }
    };
    if name.is_empty() {
        return Err(Error::InvalidOpenAiRequest(format!(
            "`model` must name an embedding model: `{EMBEDDING_MODEL_PREFIX}<name>`"
        )));
    }
    let payload =
        EmbeddingRequest::new(request.input, request.dimensions, request.encoding_format)?;
    let mut call = Call::new(payload);
    call.extensions
        .insert(DynamicCredentials(Arc::new(request.credentials)));
    // Embeddings carry no tags: rate-limit rules scoped by tags do not match them.
    call.extensions.insert(Tags::default());
    if let Some(id) = parts.extensions.get::<ApiKeyPublicId>() {
        call.extensions.insert(id.clone());
    }
    if let Some(trace) = parts.extensions.get::<TraceContext>() {
        call.extensions.insert(*trace);
    }
    if let Some(extras) = parts.extensions.get::<Arc<TraceExtras>>() {
        call.extensions.insert(extras.clone());
    }
    let output = state.engine.embeddings().embed(&name, call).await?;
    let data: Vec<Value> = output
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| json!({ "object": "embedding", "embedding": embedding, "index": index }))
        .collect();
    let tokens = output.prompt_tokens.unwrap_or(0);
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": format!("{EMBEDDING_MODEL_PREFIX}{name}"),
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens, "tensorzero_cost": output.cost },
        }),
    );
    response.extensions_mut().insert(InferenceInfo {
        model: Some(name.into()),
        provider: Some(output.provider),
        function: None,
        variant: None,
        api_key_public_id: parts
            .extensions
            .get::<ApiKeyPublicId>()
            .map(|k| k.0.clone()),
        stats: None,
    });
    Ok(response)
}
