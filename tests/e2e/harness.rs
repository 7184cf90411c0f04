//! Test support: a mock provider and a gateway on ephemeral ports, and an HTTP client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use switchyard::RunningGateway;
use switchyard::config::LoadedConfig;
use switchyard_mock::MockProvider;

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
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

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

/// Writes `(relative path, text)` pairs under `dir`.
pub fn write_files(dir: &tempfile::TempDir, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Writes `toml` (with `{mock}` replaced by the mock's `api_base`) and loads it.
pub fn load(
    toml: &str,
    mock: &MockProvider,
    dir: &tempfile::TempDir,
) -> Result<LoadedConfig, String> {
    let path = dir.path().join("tensorzero.toml");
    // `{key}`: a provider key in a file, for providers whose real APIs refuse a call without
    // one (Anthropic, Gemini), as the mock does too.
    let key = dir.path().join("provider.key");
    std::fs::write(&key, PROVIDER_KEY).unwrap();
    let toml = toml
        .replace("{mock}", &mock.api_base())
        .replace("{key}", &format!("path::{}", key.display()));
    std::fs::write(&path, toml).unwrap();
    LoadedConfig::from_files(path.to_str().unwrap()).map_err(|e| e.to_string())
}

/// The key `{key}` stands for in a test configuration.
pub const PROVIDER_KEY: &str = "sk-test-provider-key";

impl Harness {
    /// Starts a mock and a gateway with `toml`.
    pub async fn start(toml: &str) -> Harness {
        Self::start_with_mock(MockProvider::start().await.unwrap(), toml).await
    }

    /// Starts a gateway against an already running mock (when the config must name its address
    /// in places `{mock}` does not reach, such as a key file).
    pub async fn start_with_mock(mock: MockProvider, toml: &str) -> Harness {
        Self::start_with_files(mock, toml, &[]).await
    }

    /// Starts a gateway whose config directory also holds `files` (`(relative path, text)`:
    /// templates, schemas), written before the config loads.
    pub async fn start_with_files(
        mock: MockProvider,
        toml: &str,
        files: &[(&str, &str)],
    ) -> Harness {
        Self::start_with_env(mock, toml, files, &switchyard::Environment::default()).await
    }

    /// [`Self::start_with_files`] with the stores of `env` (Postgres, Valkey).
    pub async fn start_with_env(
        mock: MockProvider,
        toml: &str,
        files: &[(&str, &str)],
        env: &switchyard::Environment,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        write_files(&dir, files);
        let loaded = load(toml, &mock, &dir).unwrap_or_else(|e| panic!("config did not load: {e}"));
        let gateway = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), env)
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

/// An address that refuses connections: port 1 is privileged and closed on any test machine,
/// so (unlike a port that was free a moment ago) no other test can start listening there.
pub const REFUSING: &str = "127.0.0.1:1";

/// How long any one exchange with a gateway may take in a test before the test fails (rather
/// than hangs): far above what any test needs, so only a hang reaches it.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// A plain-HTTP client for talking to a gateway on 127.0.0.1: cheap to build (no TLS roots to
/// load, unlike the gateway's own outbound client), so each exchange can have its own.
pub fn local_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

pub async fn send(method: Method, url: &str, body: Bytes, headers: &[(&str, &str)]) -> Reply {
    let client = local_client();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let exchange = async {
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
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("no whole answer from {url} within {DEADLINE:?}"))
}

/// The sum of the samples of `series` (a metric name, optionally with the start of its labels,
/// e.g. `switchyard_otlp_exports_total{outcome="dropped"}`) in the gateway at `base_url`'s
/// `/metrics`; 0 when there is none.
pub async fn metric(base_url: &str, series: &str) -> f64 {
    let r = send(
        Method::GET,
        &format!("{base_url}/metrics"),
        Bytes::new(),
        &[],
    )
    .await;
    r.text()
        .lines()
        .filter(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with([' ', '{', ',', '}']))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Reads `n` data frames of a streamed answer; fails (never hangs) if the stream ends first or
/// stalls past [`DEADLINE`].
pub async fn read_frames<B>(body: &mut B, n: usize)
where
    B: http_body::Body + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut got = 0;
    while got < n {
        let frame = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the stream stalled after {got} frames"));
        match frame {
            Some(Ok(frame)) if frame.data_ref().is_some() => got += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the stream failed after {got} of {n} frames: {e:?}"),
            None => panic!("the stream ended after {got} of {n} frames"),
        }
    }
}

/// GETs `url` until it answers `status` (the background backend check needs a few seconds to
/// see a change), and returns that answer; panics after `within`.
pub async fn get_until(url: &str, status: u16, within: std::time::Duration) -> Reply {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let r = send(Method::GET, url, Bytes::new(), &[]).await;
        if r.status.as_u16() == status {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} still answers {} after {within:?}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Header values the mock received on its last request.
pub fn last_request(mock: &MockProvider) -> switchyard_mock::Recorded {
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

/// The switchyard binary as a child process, with JSON logs in a file: for tests that need
/// their own environment, real signals, or the process's exit code.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub url: String,
    log: std::path::PathBuf,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    /// Starts `switchyard --config-file CONFIG --bind-address 127.0.0.1:0 ARGS` with the
    /// environment's gateway variables removed, then `env` set (RUST_LOG is `info` unless
    /// `env` sets it), logging to `log`; returns once it listens.
    pub async fn start(
        config: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: std::path::PathBuf,
    ) -> GatewayProcess {
        let mut all = vec!["--config-file", config.to_str().unwrap()];
        all.extend_from_slice(args);
        Self::spawn(&all, env, log).await
    }

    /// [`Self::start`] without a config file: `args` say where the configuration comes from.
    pub async fn spawn(
        args: &[&str],
        env: &[(&str, &str)],
        log: std::path::PathBuf,
    ) -> GatewayProcess {
        use std::process::{Command, Stdio};
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["--bind-address", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("TENSORZERO_GATEWAY_BIND_ADDRESS")
            .env_remove("TENSORZERO_POSTGRES_URL")
            .env_remove("TENSORZERO_VALKEY_URL")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file);
        let mut gateway = GatewayProcess {
            child: cmd.spawn().unwrap(),
            url: String::new(),
            log,
        };
        let line = gateway
            .wait_for_log("switchyard listening", Duration::from_secs(20))
            .await;
        let v: Value = serde_json::from_str(&line).unwrap();
        gateway.url = format!("http://{}", v["address"].as_str().unwrap());
        gateway
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process and returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }

    /// The first log line containing `text`, waiting for it up to `within`.
    pub async fn wait_for_log(&self, text: &str, within: Duration) -> String {
        self.wait_for_nth_log(text, 1, within).await
    }

    /// The `n`th log line containing `text`.
    pub async fn wait_for_nth_log(&self, text: &str, n: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let logs = self.logs();
            if let Some(line) = logs.lines().filter(|l| l.contains(text)).nth(n - 1) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line #{n} with {text:?}:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {name} failed");
    }

    /// Waits for the process to exit; whether it exited 0.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after the signal:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(
            Method::GET,
            &format!("{}{path}", self.url),
            Bytes::new(),
            &[],
        )
        .await
    }

    /// `POST /inference` with a JSON body.
    pub async fn infer(&self, body: &Value) -> Reply {
        send(
            Method::POST,
            &format!("{}/inference", self.url),
            Bytes::from(body.to_string()),
            &[("content-type", "application/json")],
        )
        .await
    }
}
