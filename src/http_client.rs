//! The one outbound HTTP client: pooled, HTTP/1.1 and HTTP/2, TLS 1.2/1.3 through rustls.
//!
//! Trust roots are the webpki (Mozilla) set plus whatever the system trusts, so a corporate
//! proxy's CA installed in the OS works without extra configuration.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The client type every provider call goes through.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a TCP connect may take before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of every outbound connection (providers, the relay, Postgres).
pub fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A malformed system certificate should not take the gateway down; skip it.
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Builds the client. Call once at start-up and clone (clones share the pool).
pub fn build() -> HttpClient {
    builder().build(connector())
}

/// A client that speaks only HTTP/2, also over plain TCP (prior knowledge, as gRPC does).
pub fn build_http2_only() -> HttpClient {
    builder().http2_only(true).build(connector())
}

fn builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(POOL_IDLE_TIMEOUT);
    builder
}

fn connector() -> HttpsConnector<HttpConnector> {
    let tls = tls_config();
    let mut http = HttpConnector::new();
    // Without TCP_NODELAY small request bodies can wait for the peer's delayed ACK (~40 ms).
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));

    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}
