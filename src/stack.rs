//! The composition of the inbound HTTP stack: the one place that decides the order of layers.
//!
//! Per request, outermost first:
//!
//! 1. `RequestLogLayer` (layers crate): assigns the request id (writes the `RequestId`
//!    request extension, echoes `x-request-id`) and writes one log line when the response body
//!    ends (reads the `InferenceInfo` response extension for model and provider).
//! 2. `SetSensitiveRequestHeadersLayer` (tower-http): marks `authorization`,
//!    `proxy-authorization` and `api-key` sensitive, so no debug output can show them.
//! 3. `RequestDecompressionLayer` (tower-http): gzip, br and zstd request bodies.
//! 4. `Router` (`api`): matches the route under `gateway.base_path`, reads the body under the
//!    size limit, runs the handler, and turns every error into the route's JSON error body
//!    (the one rescue point, `error.rs`). Handlers write `InferenceInfo`.
//!
//! The model-call path after the router (function and variant resolution, fallback over a
//! model's providers, credentials, the provider adapter, the pooled hyper client) lives in
//! `inference` and `providers`.

use std::sync::Arc;

use http::header::{AUTHORIZATION, HeaderName, PROXY_AUTHORIZATION};
use switchyard_layers::{RequestLog, RequestLogLayer};
use tower::ServiceBuilder;
use tower_http::decompression::{RequestDecompression, RequestDecompressionLayer};
use tower_http::sensitive_headers::{SetSensitiveRequestHeaders, SetSensitiveRequestHeadersLayer};

use crate::api::{AppState, Router};

/// The inbound service type: cheap to clone (the state is behind an `Arc`).
pub type InboundService = RequestLog<SetSensitiveRequestHeaders<RequestDecompression<Router>>>;

/// Builds the inbound stack over `state`.
pub fn inbound(state: Arc<AppState>) -> InboundService {
    ServiceBuilder::new()
        .layer(RequestLogLayer::new())
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            HeaderName::from_static("api-key"),
        ]))
        .layer(RequestDecompressionLayer::new())
        .service(Router::new(state))
}
