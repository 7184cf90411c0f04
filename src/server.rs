//! Accepting connections and serving the inbound stack on them (HTTP/1.1 and HTTP/2).

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use switchyard_layers::ext::ClientAddr;
use tokio::net::TcpListener;
use tower_http::add_extension::AddExtension;

use crate::stack::InboundService;

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight connections finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    service: InboundService,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small responses must not wait for the client's delayed ACK.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                // The client's address travels with each of its requests (the auth shield keys on it).
                let service = AddExtension::new(service.clone(), ClientAddr(peer.ip()));
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        drain_timeout_ms = drain.as_millis() as u64,
        "shutting down: no new connections; in-flight requests and streams are finishing"
    );
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => tracing::info!("every in-flight request finished"),
        Err(_) => tracing::warn!(
            "the drain timeout ran out; closing the connections still open (their requests are cut short)"
        ),
    }
}
