//! Test support: a mock provider and a gateway on ephemeral ports, and an HTTP client.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use switchyard::RunningGateway;
use switchyard::config::LoadedConfig;
use switchyard::mock_provider::MockProvider;

/// A mock provider and a gateway configured to use it.
pub struct Harness {
    pub mock: MockProvider,
    pub gateway: RunningGateway,
    _dir: tempfile::TempDir,
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` message of an error body (native or OpenAI shape).
    pub fn error(&self) -> String {
        let v = self.json();
        match &v["error"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o["message"].as_str().expect("error.message").to_owned(),
            _ => panic!("no error in {v}"),
        }
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn events(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
            .collect()
    }

    /// The JSON events of an SSE body, without the final `[DONE]`.
    pub fn json_events(&self) -> Vec<Value> {
        let events = self.events();
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "stream did not end with [DONE]: {events:?}"
        );
        events[..events.len() - 1]
            .iter()
            .map(|e| {
                serde_json::from_str(e).unwrap_or_else(|err| panic!("event not JSON ({err}): {e}"))
            })
            .collect()
    }
}

/// Writes `toml` (with `{mock}` replaced by the mock's `api_base`) and loads it.
pub fn load(
    toml: &str,
    mock: &MockProvider,
    dir: &tempfile::TempDir,
) -> Result<LoadedConfig, String> {
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, toml.replace("{mock}", &mock.api_base())).unwrap();
    LoadedConfig::from_files(path.to_str().unwrap()).map_err(|e| e.to_string())
}

impl Harness {
    /// Starts a mock and a gateway with `toml`.
    pub async fn start(toml: &str) -> Harness {
        Self::start_with_mock(MockProvider::start().await.unwrap(), toml).await
    }

    /// Starts a gateway against an already running mock (when the config must name its address
    /// in places `{mock}` does not reach, such as a key file).
    pub async fn start_with_mock(mock: MockProvider, toml: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(toml, &mock, &dir).unwrap_or_else(|e| panic!("config did not load: {e}"));
        let gateway = switchyard::start(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        Harness {
            mock,
            gateway,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        send(Method::POST, &self.url(path), body.to_string().into(), &[]).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(Method::GET, &self.url(path), Bytes::new(), &[]).await
    }
}

/// The most common config: one model `mock` served by the mock provider.
pub const BASIC: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"
"#;

/// A minimal `/inference` body.
pub fn inference(model: &str, text: &str) -> Value {
    serde_json::json!({ "model_name": model, "input": { "messages": [{ "role": "user", "content": text }] } })
}

pub async fn send(method: Method, url: &str, body: Bytes, headers: &[(&str, &str)]) -> Reply {
    let client = switchyard::http_client::build();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .expect("gateway unreachable");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Header values the mock received on its last request.
pub fn last_request(mock: &MockProvider) -> switchyard::mock_provider::Recorded {
    mock.requests().pop().expect("the mock received no request")
}

#[allow(dead_code)]
pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A gateway started from `toml` after replacing each `(from, to)` pair; keep the returned
/// directory alive as long as the gateway.
pub async fn gateway(
    toml: &str,
    replacements: &[(&str, &str)],
) -> (RunningGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = toml.to_owned();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap())
        .unwrap_or_else(|e| panic!("config did not load: {e}"));
    let gw = switchyard::start(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
    (gw, dir)
}

/// A key file holding `key`.
pub fn key_file(dir: &tempfile::TempDir, name: &str, key: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, key).unwrap();
    path.to_str().unwrap().to_owned()
}
