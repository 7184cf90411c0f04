//! A provider that misbehaves on purpose: every answer must become a JSON error (or an error
//! event in a stream), the gateway process must live on with bounded memory, and the next
//! normal request must succeed.

use serde_json::{Value, json};

use crate::hardening::{gateway_process, peak_rss_mib};
use crate::harness::send;

const CONFIG: &str = r#"
[provider_types.openai.defaults]
api_key_location = "none"
api_base = "{mock}"
"#;

#[tokio::test]
async fn hostile_answers_become_errors_and_the_gateway_lives_on() {
    let mock = switchyard_mock::MockProvider::start().await.unwrap();
    let (gw, _dir) = gateway_process(CONFIG, &mock).await;
    let url = format!("{}/inference", gw.url);
    let before = peak_rss_mib(gw.child.id());
    for model in [
        "hostile-index",
        "hostile-longline",
        "hostile-utf8",
        "hostile-retry",
        "hostile-noblank",
    ] {
        for stream in [false, true] {
            let body = json!({
                "model_name": format!("openai::{model}"),
                "stream": stream,
                "input": { "messages": [{ "role": "user", "content": "hi" }] }
            });
            let r = send(http::Method::POST, &url, body.to_string().into(), &[]).await;
            let what = format!("{model} stream={stream}: {} {}", r.status, r.text());
            assert!(!r.body.is_empty(), "empty reply: {what}");
            if r.status.is_success() && !stream {
                // The index of a non-streamed choice is never used as a size: the answer is
                // simply read. (`hostile-noblank` is a streaming quirk; unstreamed it is normal.)
                assert!(
                    matches!(model, "hostile-index" | "hostile-noblank"),
                    "{what}"
                );
            } else if r.status.is_success() {
                // A stream that started: it must end with an error event, never silently.
                let errors: Vec<Value> = r
                    .events()
                    .iter()
                    .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                    .filter(|e| e.get("error").is_some())
                    .collect();
                assert!(
                    !errors.is_empty() || model == "hostile-utf8",
                    "no error event: {what}"
                );
            } else {
                let message = r.error();
                assert!(!message.is_empty(), "{what}");
                // A provider's errors, its 429 included, reach the client as 502 (as in the
                // TensorZero Gateway); an absurd Retry-After is bounded, not a panic. After the
                // 429, later calls skip the provider (503) for at most the back-off cap.
                if model == "hostile-retry" && stream {
                    assert_eq!(r.status, 503, "{what}");
                    assert!(message.contains("tried again in 300 s"), "{what}");
                } else {
                    assert_eq!(r.status, 502, "{what}");
                }
                if model == "hostile-index" {
                    assert!(
                        message.contains("index") || message.contains("choice"),
                        "{what}"
                    );
                }
                if model == "hostile-longline" {
                    assert!(
                        message.contains("33554432") || message.contains("16777216"),
                        "the limit is named: {what}"
                    );
                }
            }
            assert!(gw_alive(&gw), "the gateway died on {model} stream={stream}");
        }
    }
    let peak = peak_rss_mib(gw.child.id());
    eprintln!("gateway peak RSS: {before} MiB at start, {peak} MiB after the hostile provider");
    // 64 MiB answers are refused at 16 MiB (events) or 32 MiB (bodies), never held whole.
    assert!(
        peak < before + 128,
        "peak RSS {peak} MiB (started at {before} MiB)"
    );
    let ok = json!({ "model_name": "openai::fine", "input": { "messages": [{ "role": "user", "content": "hi" }] } });
    let r = send(http::Method::POST, &url, ok.to_string().into(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn gw_alive(gw: &crate::harness::GatewayProcess) -> bool {
    std::fs::metadata(format!("/proc/{}", gw.child.id())).is_ok()
        && !std::fs::read_to_string(format!("/proc/{}/status", gw.child.id()))
            .unwrap_or_default()
            .contains("State:\tZ")
}
