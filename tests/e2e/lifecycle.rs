//! The process lifecycle of the real binary: graceful shutdown on SIGTERM (readiness, shutdown
//! delay, drain of in-flight streams, exit code) and configuration reload without restart
//! (SIGHUP, file changes, a Kubernetes-style ConfigMap symlink swap, invalid files, in-flight
//! requests, rate-limit buckets).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::{GatewayProcess, inference};

/// Streams `body` to `/inference`, reading until the stream ends or breaks: the bytes read and
/// whether it ended cleanly.
async fn stream(url: String, body: Value) -> (String, bool) {
    let client = switchyard::http_client::build();
    let req = Request::post(format!("{url}/inference"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.expect("the stream starts");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut text = String::new();
    loop {
        match body.frame().await {
            None => return (text, true),
            Some(Err(_)) => return (text, false),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
        }
    }
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("gateway.log")
}

async fn config_hash(gw: &GatewayProcess) -> String {
    gw.get("/status").await.json()["config_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn refuses_connections(gw: &GatewayProcess) -> bool {
    std::net::TcpStream::connect(gw.url.trim_start_matches("http://")).is_err()
}

fn streaming(model: &str) -> Value {
    let mut body = inference(model, "tell me a long story");
    body["stream"] = json!(true);
    body
}

async fn until_mock_has(mock: &MockProvider, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.requests().len() < n {
        assert!(Instant::now() < deadline, "the mock never saw request #{n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tensorzero.toml");
    // Write then rename, as editors and config management do: the poll never sees half a file.
    let tmp = dir.join(".tensorzero.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn model(name: &str, mock: &MockProvider, provider_model: &str) -> String {
    format!(
        "[models.{name}]\nrouting = [\"m\"]\n[models.{name}.providers.m]\ntype = \"openai\"\n\
         api_base = \"{}\"\nmodel_name = \"{provider_model}\"\napi_key_location = \"none\"\n\n",
        mock.api_base()
    )
}

#[tokio::test]
async fn sigterm_fails_readiness_then_drains_in_flight_streams_and_exits_zero() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &(model("story", &mock, "drip-20") + &model("quick", &mock, "quick")),
    );
    let mut gw = GatewayProcess::start(
        &config,
        &["--shutdown-delay", "2", "--drain-timeout", "20"],
        &[],
        log_path(&dir),
    )
    .await;
    assert_eq!(gw.get("/ready").await.status, 200);
    assert_eq!(gw.get("/live").await.status, 200);

    // A stream of 200 chunks, 20 ms apart: about 4 s, so it outlives the 2 s delay.
    let in_flight = tokio::spawn(stream(gw.url.clone(), streaming("story")));
    until_mock_has(&mock, 1).await;
    gw.signal("TERM");

    // During the shutdown delay: not ready, still alive, still serving new connections.
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let r = gw.get("/ready").await;
        if r.status == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reasons"][0]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{}",
        ready.json()
    );
    assert_eq!(gw.get("/live").await.status, 200);
    assert_eq!(gw.infer(&inference("quick", "hi")).await.status, 200);

    // After the delay: new connections are refused while the stream goes on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !refuses_connections(&gw) {
        assert!(Instant::now() < deadline, "still accepting after the delay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the stream should still be running when the listener closes"
    );

    let (text, clean) = in_flight.await.unwrap();
    assert!(clean, "the stream was cut");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(text.matches("\"type\":\"text\"").count(), 200);
    assert!(
        gw.wait_exit(Duration::from_secs(10)).await,
        "exit code not 0"
    );
    let logs = gw.logs();
    assert!(logs.contains("every in-flight request finished"), "{logs}");
}

#[tokio::test]
async fn a_stream_longer_than_the_drain_timeout_is_cut_and_the_process_still_exits_zero() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &model("story", &mock, "drip-50"));
    let mut gw =
        GatewayProcess::start(&config, &["--drain-timeout", "0.5"], &[], log_path(&dir)).await;
    let in_flight = tokio::spawn(stream(gw.url.clone(), streaming("story")));
    until_mock_has(&mock, 1).await;
    let signalled = Instant::now();
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(5)).await);
    assert!(signalled.elapsed() < Duration::from_secs(5));
    let (text, clean) = in_flight.await.unwrap();
    assert!(
        !text.contains("[DONE]"),
        "a 10 s stream cannot have finished"
    );
    assert!(
        !clean,
        "the client must see the stream break, not a clean end"
    );
    assert!(gw.logs().contains("the drain timeout ran out"));
}

#[tokio::test]
async fn sighup_reloads_and_an_invalid_file_keeps_the_old_configuration() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &model("first", &mock, "one"));
    let gw = GatewayProcess::start(
        &config,
        &["--config-poll-interval", "0"],
        &[],
        log_path(&dir),
    )
    .await;
    let before = config_hash(&gw).await;
    assert_eq!(gw.infer(&inference("first", "hi")).await.status, 200);
    assert_eq!(gw.infer(&inference("second", "hi")).await.status, 400);

    write_config(
        dir.path(),
        &(model("first", &mock, "one") + &model("second", &mock, "two")),
    );
    gw.signal("HUP");
    gw.wait_for_log("configuration reloaded", Duration::from_secs(10))
        .await;
    let after = config_hash(&gw).await;
    assert_ne!(before, after);
    assert_eq!(gw.infer(&inference("second", "hi")).await.status, 200);

    // A broken file: the error is logged with its place, and the previous configuration serves.
    write_config(
        dir.path(),
        "[models.second]\nrouting = [\"m\"]\n[models.second.providers.m]\ntype = \"openai\"\nmodel_name = 42\n",
    );
    gw.signal("HUP");
    let line = gw
        .wait_for_log("configuration reload failed", Duration::from_secs(10))
        .await;
    assert!(line.contains("tensorzero.toml:5"), "{line}");
    assert!(
        line.contains("models.second.providers.m.model_name"),
        "{line}"
    );
    assert_eq!(config_hash(&gw).await, after);
    assert_eq!(gw.infer(&inference("first", "hi")).await.status, 200);
    assert_eq!(gw.infer(&inference("second", "hi")).await.status, 200);

    // A file that parses but cannot be served (an unset key variable) also changes nothing.
    write_config(
        dir.path(),
        "[models.k]\nrouting = [\"m\"]\n[models.k.providers.m]\ntype = \"openai\"\nmodel_name = \"x\"\n\
         api_key_location = \"env::SWITCHYARD_TEST_UNSET_KEY\"\n",
    );
    gw.signal("HUP");
    let line = gw
        .wait_for_nth_log("configuration reload failed", 2, Duration::from_secs(10))
        .await;
    assert!(line.contains("SWITCHYARD_TEST_UNSET_KEY"), "{line}");
    assert_eq!(config_hash(&gw).await, after);
    assert_eq!(gw.get("/ready").await.status, 200);
}

#[tokio::test]
async fn a_configmap_update_is_picked_up_by_the_poll_and_in_flight_requests_finish_on_the_old_one()
{
    let mock = MockProvider::start().await.unwrap();
    // Lay the directory out as the kubelet does for a ConfigMap volume:
    // tensorzero.toml -> ..data/tensorzero.toml, ..data -> ..<timestamp>/, swapped atomically.
    let dir = tempfile::tempdir().unwrap();
    let publish = |version: &str, text: &str| {
        let versioned = dir.path().join(format!("..{version}"));
        std::fs::create_dir(&versioned).unwrap();
        std::fs::write(versioned.join("tensorzero.toml"), text).unwrap();
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
    };
    publish("v1", &model("story", &mock, "drip-10"));
    let config = dir.path().join("tensorzero.toml");
    std::os::unix::fs::symlink("..data/tensorzero.toml", &config).unwrap();
    let gw = GatewayProcess::start(
        &config,
        &["--config-poll-interval", "0.2"],
        &[],
        log_path(&dir),
    )
    .await;

    // A 2 s stream on the first configuration...
    let in_flight = tokio::spawn(stream(gw.url.clone(), streaming("story")));
    until_mock_has(&mock, 1).await;
    // ...while the new one points `story` somewhere that refuses connections.
    let dead_base = format!("http://{}/v1/", crate::harness::REFUSING);
    publish(
        "v2",
        &format!(
            "[models.story]\nrouting = [\"m\"]\n[models.story.providers.m]\ntype = \"openai\"\n\
             api_base = \"{dead_base}\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n"
        ),
    );
    gw.wait_for_log("configuration reloaded", Duration::from_secs(10))
        .await;
    assert!(!in_flight.is_finished());
    let r = gw.infer(&inference("story", "hi")).await;
    assert_eq!(r.status, 502, "new requests use the new configuration");
    let (text, clean) = in_flight.await.unwrap();
    assert!(clean && text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_buckets_keep_their_balance_across_a_reload() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = "[rate_limiting]\nbackend = \"memory\"\n[[rate_limiting.rules]]\n\
                 model_inferences_per_hour = 3\nalways = true\n\n";
    let config = write_config(dir.path(), &(rules.to_owned() + &model("a", &mock, "a")));
    let gw = GatewayProcess::start(
        &config,
        &["--config-poll-interval", "0"],
        &[],
        log_path(&dir),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(gw.infer(&inference("a", "hi")).await.status, 200);
    }
    write_config(
        dir.path(),
        &(rules.to_owned() + &model("a", &mock, "a") + &model("b", &mock, "b")),
    );
    gw.signal("HUP");
    gw.wait_for_log("configuration reloaded", Duration::from_secs(10))
        .await;
    assert_eq!(gw.infer(&inference("b", "hi")).await.status, 200);
    let r = gw.infer(&inference("a", "hi")).await;
    assert_eq!(r.status, 429, "the reload must not refill the bucket");
}

#[tokio::test]
async fn sighup_with_the_built_in_configuration_does_not_stop_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::spawn(&["--default-config"], &[], log_path(&dir)).await;
    gw.signal("HUP");
    gw.wait_for_log("nothing to reload", Duration::from_secs(10))
        .await;
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
    assert_eq!(gw.get("/live").await.status, 200);
}

#[tokio::test]
async fn an_edited_template_is_picked_up_by_the_poll_and_a_broken_one_is_not() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("user.minijinja");
    std::fs::write(&template, "v1: {{ user_text }}").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\n\
             model = \"m\"\nuser_template = \"user.minijinja\"\n",
            model("m", &mock, "mock-model")
        ),
    );
    let gw = GatewayProcess::start(
        &config,
        &["--config-poll-interval", "0.2"],
        &[],
        log_path(&dir),
    )
    .await;
    let ask = json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "hi" }] } });
    let reply = |r: crate::harness::Reply| r.json()["content"][0]["text"].clone();
    assert_eq!(reply(gw.infer(&ask).await), "mock reply to: v1: hi");

    std::fs::write(&template, "v2: {{ user_text }}").unwrap();
    gw.wait_for_log("configuration reloaded", Duration::from_secs(10))
        .await;
    assert_eq!(reply(gw.infer(&ask).await), "mock reply to: v2: hi");

    // A template that does not compile is refused; the last good one keeps serving.
    std::fs::write(&template, "{% if %}").unwrap();
    gw.wait_for_log("configuration reload failed", Duration::from_secs(10))
        .await;
    assert_eq!(reply(gw.infer(&ask).await), "mock reply to: v2: hi");
}
