//! Gemini and Anthropic on Vertex AI: service-account tokens, resource paths, wire formats.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::harness::{Harness, inference};

/// A service-account key file (a fresh RSA key, from openssl) whose token endpoint is the mock.
pub(crate) fn service_account(dir: &tempfile::TempDir, token_uri: &str) -> String {
    let pem = dir.path().join("key.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl is installed (tests/run installs it)")
        .status
        .success();
    assert!(ok, "openssl could not make a key");
    let key = json!({
        "type": "service_account",
        "project_id": "proj",
        "client_email": "gateway@proj.iam.gserviceaccount.com",
        "private_key": std::fs::read_to_string(&pem).unwrap(),
        "token_uri": token_uri,
    });
    let path = dir.path().join("sa.json");
    std::fs::write(&path, key.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

const CONFIG: &str = r#"
[models.gem]
routing = ["v"]
[models.gem.providers.v]
type = "gcp_vertex_gemini"
model_id = "gemini-mock"
location = "us-central1"
project_id = "proj"
api_base = "{mock}"
credential_location = "path::SA"

[models.claude]
routing = ["v"]
[models.claude.providers.v]
type = "gcp_vertex_anthropic"
model_id = "claude-mock"
location = "us-east5"
project_id = "proj"
api_base = "{mock}"
credential_location = "path::SA"
"#;

async fn start() -> (Harness, tempfile::TempDir) {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sa = service_account(&dir, &format!("{}token", mock.api_base()));
    (
        Harness::start_with_mock(mock, &CONFIG.replace("SA", &sa)).await,
        dir,
    )
}

#[tokio::test]
async fn gemini_on_vertex_signs_a_token_and_calls_the_resource_path() {
    let (h, dir) = start().await;
    let r = h
        .post("/inference", &inference("gem", "hello vertex"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["content"][0]["text"],
        "mock reply to: hello vertex"
    );
    let seen = h.mock.requests();
    assert!(seen[0].path.ends_with("/token"), "{:?}", seen[0].path);
    let form = seen[0].body.as_str().unwrap().to_owned();
    assert!(
        form.starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
        ),
        "{form}"
    );
    let jwt = form.rsplit("assertion=").next().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "gateway@proj.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert!(claims["aud"].as_str().unwrap().ends_with("/token"));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(),
        256,
        "an RS256 signature of a 2048-bit key"
    );
    // openssl checks the signature with the account's public key.
    let d = dir.path();
    std::fs::write(d.join("signed.txt"), format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(d.join("sig.bin"), URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("pub.pem"))
        .status()
        .unwrap();
    assert!(public.success());
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(d.join("pub.pem"))
        .arg("-signature")
        .arg(d.join("sig.bin"))
        .arg(d.join("signed.txt"))
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let call = &seen[1];
    assert!(call.path.ends_with("/projects/proj/locations/us-central1/publishers/google/models/gemini-mock:generateContent"), "{}", call.path);
    assert_eq!(call.header("authorization"), Some("Bearer ya29.mock-token"));
    // The token is cached: a second call asks for none.
    assert_eq!(
        h.post("/inference", &inference("gem", "again"))
            .await
            .status,
        200
    );
    assert_eq!(
        h.mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/token"))
            .count(),
        1
    );
}

#[tokio::test]
async fn anthropic_on_vertex_uses_raw_predict() {
    let (h, _d) = start().await;
    let r = h
        .post("/inference", &inference("claude", "hi claude"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["content"][0]["text"], "mock reply to: hi claude");
    let call = h
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.contains(":rawPredict"))
        .unwrap();
    assert!(
        call.path.ends_with(
            "/projects/proj/locations/us-east5/publishers/anthropic/models/claude-mock:rawPredict"
        ),
        "{}",
        call.path
    );
    assert_eq!(call.body["anthropic_version"], "vertex-2023-10-16");
    assert!(
        call.body.get("model").is_none() || call.body["model"] == "claude-mock",
        "the mock fills in the model from the path"
    );
    assert_eq!(call.header("authorization"), Some("Bearer ya29.mock-token"));
    assert_eq!(call.header("anthropic-version"), None);

    let mut body = inference("claude", "stream");
    body["stream"] = json!(true);
    let events = h.post("/inference", &body).await.json_events();
    assert_eq!(events.last().unwrap()["finish_reason"], "stop");
    assert!(
        h.mock
            .requests()
            .iter()
            .any(|r| r.path.ends_with(":streamRawPredict"))
    );
}

#[tokio::test]
async fn a_bad_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa.json");
    std::fs::write(&sa, "not json").unwrap();
    let h = Harness::start(&CONFIG.replace("SA", sa.to_str().unwrap())).await;
    let e = h.post("/inference", &inference("gem", "x")).await.error();
    assert!(
        e.contains("gcp_vertex_gemini provider `v`")
            && e.contains("not a service-account JSON key"),
        "{e}"
    );
    assert!(!e.contains("not json"), "the key's content is never echoed");
}

#[tokio::test]
async fn shorthand_models_take_a_resource_path() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sa = service_account(&dir, &format!("{}token", mock.api_base()));
    // No internet here: a well-formed path gets as far as calling Google (502, quickly).
    let config = format!(
        "[gateway]\nglobal_outbound_http_timeout_ms = 3000\n\n\
         [provider_types.gcp_vertex_gemini.defaults]\ncredential_location = \"path::{sa}\"\n"
    );
    let h = Harness::start_with_mock(mock, &config).await;
    let r = h
        .post(
            "/inference",
            &inference("gcp_vertex_gemini::gemini-2.5-flash", "x"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error()
            .contains("projects/PROJECT/locations/LOCATION/publishers/google/models/MODEL"),
        "the error shows the expected form: {}",
        r.error()
    );
    let r = h
        .post(
            "/inference",
            &inference(
                "gcp_vertex_gemini::projects/proj/locations/us-central1/publishers/google/models/gemini-mock",
                "x",
            ),
        )
        .await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("gcp_vertex_gemini"), "{}", r.error());
}

#[tokio::test]
async fn both_vertex_providers_stream_tools_and_json_through_the_openai_route() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sa = service_account(&dir, &format!("{}token", mock.api_base()));
    let config = CONFIG
        .replace("SA", &sa)
        .replace("gemini-mock", "gemini-tool")
        .replace("claude-mock", "claude-tool");
    let h = Harness::start_with_mock(mock, &config).await;
    for model in ["gem", "claude"] {
        for stream in [false, true] {
            let body = json!({
                "model": format!("tensorzero::model_name::{model}"),
                "messages": [{ "role": "user", "content": "weather in Paris?" }],
                "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }],
                "stream": stream
            });
            let r = h.post("/openai/v1/chat/completions", &body).await;
            assert_eq!(
                r.status,
                200,
                "{model}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let arguments: String = if stream {
                r.json_events()
                    .iter()
                    .filter_map(|e| {
                        e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect()
            } else {
                r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            assert_eq!(
                serde_json::from_str::<Value>(&arguments).unwrap_or_default(),
                json!({ "city": "Paris" }),
                "{model} (stream {stream}): {arguments}"
            );
        }
        // JSON mode (implicit_tool through the native API, answered by a forced tool call).
        let mut body = inference(model, "answer in JSON");
        body["params"] = json!({ "chat_completion": { "json_mode": "implicit_tool" } });
        let r = h.post("/inference", &body).await;
        assert_eq!(
            r.status,
            200,
            "{model}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["content"][0]["text"], "{\"city\":\"Paris\"}");
    }
}
