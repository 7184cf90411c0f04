//! Accepting connections and serving the inbound stack on them (HTTP/1.1 and HTTP/2), within
//! the connection limits of `[gateway.limits]`.
//!
//! Every connection is bounded before any layer runs: at most `max_connections` are served at
//! once (more wait in the kernel's listen backlog), a client must finish its request headers
//! within `header_read_timeout_ms`, and a connection with no request in flight and no bytes
//! moving for `idle_timeout_ms` is closed. Together they stop slowloris-style clients from
//! holding descriptors before auth ever sees them. (The body read timeout is the handlers'.)

pub mod metrics_listener;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use pin_project_lite::pin_project;
use switchyard_layers::ext::ClientAddr;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower_http::add_extension::AddExtension;

use crate::stack::inbound::InboundService;

/// The connection limits (`[gateway.limits]`), fixed at start-up.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// The most connections served at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a connection may idle with no request in flight.
    pub idle_timeout: Duration,
}

impl From<&crate::config::gateway::LimitsConfig> for ServerLimits {
    fn from(l: &crate::config::gateway::LimitsConfig) -> Self {
        Self {
            max_connections: l.max_connections,
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight connections finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    service: InboundService,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    // Every connection's task, so that the ones still open when the drain timeout runs out are
    // cut here, before the process starts tearing down (otherwise a stream could see its
    // provider connection close first and end as if complete).
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Forget the connections that have ended (a few per accept, so the set stays as small
        // as the number of open connections).
        while connections.try_join_next().is_some() {}
        // A slot first: past the limit, new connections wait in the backlog, unaccepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
                let in_flight = Arc::new(AtomicUsize::new(0));
                // The client's address travels with each of its requests (the auth shield keys on it).
                let service = InFlight {
                    inner: AddExtension::new(service.clone(), ClientAddr(peer.ip())),
                    count: in_flight.clone(),
                };
                let io = IdleIo::new(stream, limits.idle_timeout, in_flight);
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
                    .into_owned();
                let conn = graceful.watch(conn);
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(slot);
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
        Err(_) => {
            tracing::warn!(
                "the drain timeout ran out; closing the connections still open (their requests are cut short)"
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
    }
}

/// Counts a connection's requests whose response has not been produced yet, so the idle timer
/// never closes a connection that is waiting on a slow provider. (A response body that is
/// streaming moves bytes, which keeps the connection from being idle.)
#[derive(Clone)]
struct InFlight<S> {
    inner: S,
    count: Arc<AtomicUsize>,
}

impl<S, R> tower::Service<R> for InFlight<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let guard = InFlightGuard::new(self.count.clone());
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            drop(guard);
            result
        })
    }
}

struct InFlightGuard(Arc<AtomicUsize>);

impl InFlightGuard {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// A client connection that fails its reads once it has been idle too long: no bytes
    /// either way and no request in flight for a whole `idle_timeout` period (so it closes
    /// between one and two periods after the last activity). hyper then closes it. IO only sets
    /// a flag; the timer is touched once per period, not per read or write.
    struct IdleIo<T> {
        #[pin]
        inner: T,
        deadline: Pin<Box<Sleep>>,
        idle_timeout: Duration,
        active: bool,
        in_flight: Arc<AtomicUsize>,
    }
}

impl<T> IdleIo<T> {
    fn new(inner: T, idle_timeout: Duration, in_flight: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            active: false,
            in_flight,
        }
    }
}

impl<T: AsyncRead> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll_read(cx, buf) {
            *this.active = true;
            return Poll::Ready(result);
        }
        while this.deadline.as_mut().poll(cx).is_ready() {
            let busy = std::mem::take(this.active) || this.in_flight.load(Ordering::Relaxed) > 0;
            if !busy {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle longer than `gateway.limits.idle_timeout_ms`",
                )));
            }
            this.deadline
                .as_mut()
                .reset(Instant::now() + *this.idle_timeout);
        }
        Poll::Pending
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        *this.active = true;
        this.inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        *this.active = true;
        this.inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
