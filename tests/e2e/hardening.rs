//! Hostile requests: shorthands that try to send a key to another host, credentials that try
//! to follow a URL the request chooses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::harness::{Harness, inference, load};
use crate::vertex::service_account;

/// A TCP listener that counts the connections it gets (none, if no key leaves).
async fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, count)
}

#[tokio::test]
async fn no_shorthand_can_smuggle_a_host() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Real credentials whose token endpoint works: without the checks, each call below would
    // get a token and connect to the trap.
    let sa = service_account(&dir, &format!("{}token", mock.api_base()));
    let config = format!(
        r#"
[provider_types.gcp_vertex_gemini.defaults]
credential_location = "path::{sa}"
[provider_types.gcp_vertex_anthropic.defaults]
credential_location = "path::{sa}"
[provider_types.google_ai_studio_gemini.defaults]
api_key_location = "env::PATH"
api_base = "{{mock}}"
"#
    );
    let h = Harness::start_with_mock(mock, &config).await;
    let (trap, connections) = trap().await;
    for model in [
        format!("gcp_vertex_gemini::projects/p/locations/{trap}#/publishers/google/models/m"),
        format!("gcp_vertex_gemini::projects/p/locations/{trap}?/publishers/google/models/m"),
        "gcp_vertex_gemini::projects/p/locations/evil.example#/publishers/google/models/m"
            .to_owned(),
        format!("gcp_vertex_gemini::projects/p/locations/x@{trap}/publishers/google/models/m"),
        format!("gcp_vertex_anthropic::projects/p/locations/{trap}#/endpoints/1"),
        format!("gcp_vertex_gemini::projects/{trap}#/locations/us/publishers/google/models/m"),
    ] {
        let r = h.post("/inference", &inference(&model, "hi")).await;
        assert_eq!(r.status, 400, "{model}: {}", r.text());
        assert!(r.error().contains("is not a"), "{model}: {}", r.error());
    }
    // A Gemini model name stays one path segment on the configured host.
    let r = h
        .post(
            "/inference",
            &inference("google_ai_studio_gemini::x/../../evil?key=1#", "hi"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let path = crate::harness::last_request(&h.mock).path;
    assert!(
        path.starts_with("/v1/models/x%2F%2E%2E%2F%2E%2E%2Fevil%3Fkey%3D1%23:generateContent"),
        "{path}"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a call reached the trap"
    );
}

#[tokio::test]
async fn dynamic_gcp_credentials_may_only_use_googles_token_endpoint() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let (trap, connections) = trap().await;
    let dir = tempfile::tempdir().unwrap();
    let sa = service_account(&dir, &format!("http://{trap}/token"));
    let config = r#"
[models.gem]
routing = ["v"]
[models.gem.providers.v]
type = "gcp_vertex_gemini"
model_id = "gemini-mock"
location = "us-central1"
project_id = "proj"
api_base = "{mock}"
credential_location = "dynamic::gcp"
"#;
    let h = Harness::start_with_mock(mock, config).await;
    let mut body = inference("gem", "hi");
    body["credentials"] = json!({ "gcp": std::fs::read_to_string(&sa).unwrap() });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.error()
            .contains("may only use Google's `https://oauth2.googleapis.com/token`"),
        "{}",
        r.error()
    );
    assert!(!r.text().contains("PRIVATE KEY"), "{}", r.text());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the assertion reached the trap"
    );
}

#[tokio::test]
async fn a_static_azure_key_never_follows_a_dynamic_endpoint() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (key, refused) in [
        ("env::PATH", true),
        (
            r#"{ default = "dynamic::key", fallback = "env::PATH" }"#,
            true,
        ),
        ("\"dynamic::key\"", false),
        ("\"none\"", false),
    ] {
        let key = if key.starts_with('{') || key.starts_with('"') {
            key.to_owned()
        } else {
            format!("\"{key}\"")
        };
        let config = format!(
            r#"
[models.az]
routing = ["az"]
[models.az.providers.az]
type = "azure"
deployment_id = "d"
endpoint = "dynamic::endpoint"
api_key_location = {key}
"#
        );
        match load(&config, &mock, &dir) {
            Err(e) if refused => assert!(
                e.contains("models.az.providers.az.endpoint")
                    && e.contains("Make the key dynamic too"),
                "{e}"
            ),
            Ok(_) if !refused => {}
            other => panic!("{key}: {:?}", other.map(|_| ())),
        }
    }
}

/// The peak resident memory of process `pid`, in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// A gateway process serving `toml` (`{mock}` replaced), for tests that measure its memory.
pub(crate) async fn gateway_process(
    toml: &str,
    mock: &switchyard_mock::MockProvider,
) -> (crate::harness::GatewayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, toml.replace("{mock}", &mock.api_base())).unwrap();
    let log = dir.path().join("gateway.log");
    (
        crate::harness::GatewayProcess::start(&path, &[], &[], log).await,
        dir,
    )
}

/// 100 MiB of JSON whitespace inside a valid object, compressed by `encoding`.
fn bomb(encoding: &str) -> Vec<u8> {
    use std::io::Write;
    let chunk = vec![b' '; 1 << 20];
    // Collect the compressed bytes through a shared buffer, whatever the encoder's shape.
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut plain: Box<dyn Write> = match encoding {
        "gzip" => Box::new(flate2::write::GzEncoder::new(
            Sink(out.clone()),
            flate2::Compression::best(),
        )),
        "br" => Box::new(brotli::CompressorWriter::new(
            Sink(out.clone()),
            4096,
            9,
            22,
        )),
        _ => Box::new(
            zstd::Encoder::new(Sink(out.clone()), 19)
                .unwrap()
                .auto_finish(),
        ),
    };
    plain.write_all(b"{\"model_name\": \"mock\", ").unwrap();
    for _ in 0..100 {
        plain.write_all(&chunk).unwrap();
    }
    plain.write_all(b"\"input\": {\"messages\": []}}").unwrap();
    drop(plain);
    out.lock().unwrap().clone()
}

#[tokio::test]
async fn compressed_bombs_are_refused_after_decompression() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let (gw, _dir) = gateway_process(crate::harness::BASIC, &mock).await;
    let before = peak_rss_mib(gw.child.id());
    for encoding in ["gzip", "br", "zstd"] {
        let body = bomb(encoding);
        assert!(body.len() < 200_000, "{encoding}: {} bytes", body.len());
        let r = crate::harness::send(
            http::Method::POST,
            &format!("{}/inference", gw.url),
            body.into(),
            &[
                ("content-encoding", encoding),
                ("content-type", "application/json"),
            ],
        )
        .await;
        assert_eq!(r.status, 413, "{encoding}: {}", r.text());
        assert!(
            r.error().contains("after decompression")
                && r.error().contains("gateway.limits.max_request_body_bytes"),
            "{}",
            r.error()
        );
    }
    // 100 MiB each was never held: the gateway's peak stays near where it started.
    let peak = peak_rss_mib(gw.child.id());
    eprintln!("gateway peak RSS: {before} MiB at start, {peak} MiB after three bombs");
    assert!(
        peak < before + 64,
        "peak RSS {peak} MiB (started at {before} MiB)"
    );
    let r = crate::harness::send(
        http::Method::POST,
        &format!("{}/inference", gw.url),
        inference("mock", "still here").to_string().into(),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A raw TCP client: writes `bytes`, then waits for the gateway to answer or close.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("the gateway kept the connection open past its timeouts");
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_cut_off() {
    let config = format!(
        "{}\n[gateway.limits]\nheader_read_timeout_ms = 500\nbody_read_timeout_ms = 500\nidle_timeout_ms = 500\n",
        crate::harness::BASIC
    );
    let h = Harness::start(&config).await;
    let addr = h.gateway.addr;
    // Headers that never finish: the connection is closed, not kept forever.
    let (_, took) = raw_exchange(addr, b"POST /inference HTTP/1.1\r\nhost: x\r\n").await;
    assert!(took >= std::time::Duration::from_millis(400), "{took:?}");
    // A body that never finishes: 408 naming the setting.
    let (reply, _) = raw_exchange(
        addr,
        b"POST /inference HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model_name\"",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        reply.contains("gateway.limits.body_read_timeout_ms"),
        "{reply}"
    );
    // A connection that never sends anything is closed too.
    let (reply, took) = raw_exchange(addr, b"").await;
    assert!(
        reply.is_empty() && took < std::time::Duration::from_secs(5),
        "{reply} {took:?}"
    );
    // And the gateway still serves.
    let r = h.post("/inference", &inference("mock", "after")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn connections_over_the_cap_wait_rather_than_exhaust_descriptors() {
    let config = format!(
        "{}\n[gateway.limits]\nmax_connections = 2\nidle_timeout_ms = 60000\n",
        crate::harness::BASIC
    );
    let h = Harness::start(&config).await;
    let addr = h.gateway.addr;
    // Two keep-alive connections take both slots: each has been served once (so the server
    // has surely accepted it), then stays open and idle.
    async fn served_once(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /live HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let n = c.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        c
    }
    let _a = served_once(addr).await;
    let _b = served_once(addr).await;
    let third = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        h.post("/inference", &inference("mock", "third")),
    )
    .await;
    assert!(third.is_err(), "a third connection was served past the cap");
    drop(_a);
    let r = h
        .post("/inference", &inference("mock", "after a slot frees"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn deep_nesting_huge_arrays_and_many_tools_get_clear_errors() {
    let h = Harness::start(crate::harness::BASIC).await;
    // Nesting deeper than the JSON parser allows.
    let deep = format!(
        "{{\"model_name\":\"mock\",\"input\":{{\"messages\":[]}},\"extra_body\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = crate::harness::send(http::Method::POST, &h.url("/inference"), deep.into(), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("recursion limit"), "{}", r.error());
    // A huge array inside the body limit is parsed without trouble and refused by type.
    let huge = format!(
        "{{\"model_name\":\"mock\",\"input\":{{\"messages\":[{}]}}}}",
        vec!["0"; 2_000_000].join(",")
    );
    let r = crate::harness::send(http::Method::POST, &h.url("/inference"), huge.into(), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // 100k tools: refused by count, before any schema is compiled.
    let tools: Vec<_> = (0..100_000)
        .map(|i| json!({ "name": format!("t{i}"), "description": "d", "parameters": { "type": "object" } }))
        .collect();
    let mut body = inference("mock", "hi");
    body["additional_tools"] = json!(tools);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.error().contains("gateway.limits.max_tools"),
        "{}",
        r.error()
    );
    assert!(h.mock.requests().is_empty());
}
