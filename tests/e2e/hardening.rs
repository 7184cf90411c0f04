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
    let mock = switchyard::mock_provider::MockProvider::start()
        .await
        .unwrap();
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
    let mock = switchyard::mock_provider::MockProvider::start()
        .await
        .unwrap();
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
    let mock = switchyard::mock_provider::MockProvider::start()
        .await
        .unwrap();
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
