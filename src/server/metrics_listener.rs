//! `--metrics-bind-address`: a second listener that serves only `GET /metrics`, without API
//! keys, for Prometheus.
//!
//! An edge sidecar listens on 127.0.0.1, which Prometheus cannot reach, and a relay with
//! `gateway.auth.enabled` wants a key on every route of its main port; this port is the one to
//! open to the scraper instead (bind it where only Prometheus gets in). It answers nothing but
//! the metrics text, so it carries no request data and no secret. It is bounded like the main
//! port, more tightly: a few connections, headers within five seconds, one request per
//! connection (a scrape every few seconds pays a handshake; an idle client cannot sit on a
//! slot), HTTP/1.1 only.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::metrics::GatewayMetrics;

/// Scrapers served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last: a client that does not read its answer does not hold a
/// slot for ever.
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serves `metrics` on `listener` until the task is aborted (the process is stopping).
pub async fn serve(listener: TcpListener, metrics: Arc<GatewayMetrics>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = answer(request.method(), request.uri().path(), &metrics);
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        connections.spawn(async move {
            if let Ok(Err(e)) = tokio::time::timeout(MAX_CONNECTION_LIFETIME, connection).await {
                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// The answer to one request: the metrics text, or why not.
fn answer(method: &Method, path: &str, metrics: &GatewayMetrics) -> Response<Body> {
    let (status, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let mut response = Response::new(full(metrics.render()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return response;
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "this port serves only GET /metrics\n",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "this port serves only GET /metrics (the gateway's API is on its main address)\n",
        ),
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_answered() {
        let metrics = GatewayMetrics::new(None);
        assert_eq!(
            answer(&Method::GET, "/metrics", &metrics).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer(&Method::HEAD, "/metrics", &metrics).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer(&Method::POST, "/metrics", &metrics).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            answer(&Method::GET, "/inference", &metrics).status(),
            StatusCode::NOT_FOUND
        );
    }
}
