//! The inbound HTTP stack (stages 1 to 5 of [`crate::stack`]).

use std::sync::Arc;

use http::header::{AUTHORIZATION, HeaderName, PROXY_AUTHORIZATION};
use switchyard_layers::auth::{Auth, AuthLayer};
use switchyard_layers::metrics::{HttpMetrics, Metrics, MetricsLayer};
use switchyard_layers::rescue::{Rescue, RescueLayer};
use switchyard_layers::{RequestLog, RequestLogLayer};
use tower::{Layer, ServiceBuilder};
use tower_http::decompression::{RequestDecompression, RequestDecompressionLayer};
use tower_http::sensitive_headers::{SetSensitiveRequestHeaders, SetSensitiveRequestHeadersLayer};

use crate::api::{AppState, Router};
use crate::body::Body;
use crate::stack::swappable::Swappable;

/// The part of the inbound stack that depends on the configuration (stages 4 and 5): what a
/// reload replaces.
pub type ConfiguredService = Auth<Router, Body>;

/// The inbound service type: cheap to clone (the state is behind an `Arc`).
pub type InboundService = RequestLog<
    Metrics<
        Rescue<
            SetSensitiveRequestHeaders<RequestDecompression<Swappable<ConfiguredService>>>,
            Rescued,
        >,
    >,
>;

/// Builds stages 4 and 5 for one configuration.
pub fn configured(state: Arc<AppState>, auth: AuthLayer<Body>) -> ConfiguredService {
    auth.layer(Router::new(state))
}

/// The response body below the rescue: decompression makes its error type a boxed one.
pub type InboundBody = tower_http::body::UnsyncBoxBody<bytes::Bytes, tower_http::BoxError>;

/// The rescue's answer (`error::panic_response`), in the body type of the layers it sits on.
#[derive(Clone, Copy, Debug)]
pub struct Rescued;

impl switchyard_layers::rescue::Respond<InboundBody> for Rescued {
    fn respond(&self, uri: &http::Uri) -> http::Response<InboundBody> {
        use http_body_util::BodyExt;
        crate::error::panic_response(uri)
            .map(|b| InboundBody::new(b.map_err(|never| match never {})))
    }
}

/// Builds the inbound stack: stages 1 to 3 over whichever configuration `current` holds when
/// each request arrives.
pub fn inbound(
    current: Swappable<ConfiguredService>,
    metrics: HttpMetrics,
    spans: Arc<crate::otlp::SpanSink>,
) -> InboundService {
    ServiceBuilder::new()
        .layer(RequestLogLayer::with_sink(spans))
        .layer(MetricsLayer::new(metrics))
        .layer(RescueLayer::new(Rescued))
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            HeaderName::from_static("api-key"),
            HeaderName::from_static("x-api-key"),
        ]))
        .layer(RequestDecompressionLayer::new())
        .service(current)
}
