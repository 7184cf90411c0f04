//! Surviving provider outages, over HTTP against the mock provider: the circuit breaker, hedging
//! (plain and streamed), the retry budget, the back-off after a 429 shared across requests, and
//! the prompt 503 when every provider is skipped. Proofs are the mock's own counters (which
//! calls reached it, which were cancelled); durations are only bounded loosely.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Harness, inference, metric};

const CONFIG: &str = r#"
[models.guarded]
routing = ["primary", "backup"]
[models.guarded.providers.primary]
type = "openai"
api_base = "{mock}"
model_name = "primary-model"
api_key_location = "none"
circuit_breaker = { enabled = true, consecutive_failures = 3, cooldown_ms = 300 }
[models.guarded.providers.backup]
type = "openai"
api_base = "{mock}"
model_name = "backup-model"
api_key_location = "none"

[models.hedged]
routing = ["slow", "fast"]
hedge_after_ms = 200
[models.hedged.providers.slow]
type = "openai"
api_base = "{mock}"
model_name = "slow-2000"
api_key_location = "none"
[models.hedged.providers.fast]
type = "openai"
api_base = "{mock}"
model_name = "fast-model"
api_key_location = "none"

[models.limited]
routing = ["throttled", "spare"]
[models.limited.providers.throttled]
type = "openai"
api_base = "{mock}"
model_name = "throttled-model"
api_key_location = "none"
[models.limited.providers.spare]
type = "openai"
api_base = "{mock}"
model_name = "spare-model"
api_key_location = "none"

[models.dark]
routing = ["a", "b"]
[models.dark.providers.a]
type = "openai"
api_base = "{mock}"
model_name = "dark-a"
api_key_location = "none"
circuit_breaker = { enabled = true, consecutive_failures = 1, cooldown_ms = 60000 }
[models.dark.providers.b]
type = "openai"
api_base = "{mock}"
model_name = "dark-b"
api_key_location = "none"
circuit_breaker = { enabled = true, consecutive_failures = 1, cooldown_ms = 30000 }

[models.storm]
routing = ["p"]
[models.storm.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "storm-model"
api_key_location = "none"

[functions.retrying]
type = "chat"
[functions.retrying.variants.v]
type = "chat_completion"
model = "storm"
retries = { num_retries = 3, max_delay_s = 0.01 }

[gateway.retry_budget]
ratio = 0.2
min_per_second = 0.1
window_s = 10
"#;

async fn start() -> Harness {
    Harness::start(CONFIG).await
}

fn status_of<'a>(status: &'a Value, model: &str, provider: &str) -> &'a Value {
    status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == model && p["provider"] == provider)
        .unwrap_or_else(|| panic!("{model}/{provider} not in {status}"))
}

#[tokio::test]
async fn an_open_circuit_is_skipped_and_a_probe_closes_it() {
    let h = start().await;
    h.mock.set_outage("primary-model", Some(503));
    // Three failures open the circuit; each call still answers, from the backup.
    for _ in 0..3 {
        let r = h.post("/inference", &inference("guarded", "x")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(h.mock.calls_for("primary-model"), 3);
    let status = h.get("/status").await.json();
    let primary = status_of(&status, "guarded", "primary");
    assert_eq!(primary["circuit"], "open", "{primary}");
    assert!(
        primary["last_error"].as_str().unwrap().contains("503"),
        "{primary}"
    );

    // The next 50 never reach it (so never wait on it): the backup answers at once.
    let began = std::time::Instant::now();
    for _ in 0..50 {
        let r = h.post("/inference", &inference("guarded", "x")).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(h.mock.calls_for("primary-model"), 3, "skipped while open");
    assert!(began.elapsed() < Duration::from_secs(20));
    let skips = metric(
        &h.url(""),
        "switchyard_provider_skips_total{model_name=\"guarded\",provider_name=\"primary\",reason=\"circuit_open\"}",
    )
    .await;
    assert!(skips >= 50.0, "{skips}");

    // It recovers; after the cooldown one call probes, succeeds, and closes the circuit.
    h.mock.set_outage("primary-model", None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = h.post("/inference", &inference("guarded", "x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.mock.calls_for("primary-model"), 4, "the probe");
    let status = h.get("/status").await.json();
    assert_eq!(
        status_of(&status, "guarded", "primary")["circuit"],
        "closed"
    );
    let r = h.post("/inference", &inference("guarded", "x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.mock.calls_for("primary-model"),
        5,
        "closed: calls flow again"
    );
    let text = h.get("/metrics").await.text();
    assert!(
        text.contains(
            "switchyard_circuit_transitions_total{model_name=\"guarded\",provider_name=\"primary\",state=\"open\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "switchyard_circuit_state{model_name=\"guarded\",provider_name=\"primary\"} 0"
        )
    );
}

#[tokio::test]
async fn a_slow_provider_is_hedged_plain_and_streamed() {
    let h = start().await;
    for stream in [false, true] {
        let cancelled = h.mock.cancelled_requests();
        let mut body = inference("hedged", "hedge me");
        body["stream"] = json!(stream);
        let began = std::time::Instant::now();
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            began.elapsed() < Duration::from_millis(1500),
            "the hedge answered, not the 2 s provider"
        );
        // The slow call was dropped: the mock saw its connection close before it answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while h.mock.cancelled_requests() == cancelled {
            assert!(
                std::time::Instant::now() < deadline,
                "stream={stream}: not cancelled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(h.mock.calls_for("slow-2000"), 2);
    assert_eq!(h.mock.calls_for("fast-model"), 2);
    let won = metric(
        &h.url(""),
        "switchyard_hedges_total{model_name=\"hedged\",outcome=\"won\"}",
    )
    .await;
    assert_eq!(won, 2.0);
}

#[tokio::test]
async fn the_retry_budget_caps_a_storm_of_retries() {
    let h = start().await;
    h.mock.set_outage("storm-model", Some(503));
    let body = json!({"function_name": "retrying", "input": {"messages": [{"role": "user", "content": "x"}]}});
    let replies =
        futures_util::future::join_all((0..100).map(|_| h.post("/inference", &body))).await;
    assert!(
        replies
            .iter()
            .all(|r| r.status.as_u16() == 502 || r.status.as_u16() == 503)
    );
    // 100 requests earn 0.2 x 100 = 20 retries, plus 0.1/s x 10 s = 1: at most 121 calls,
    // where num_retries = 3 alone would have allowed 400.
    let calls = h.mock.calls_for("storm-model");
    assert!((100..=121).contains(&calls), "{calls}");
    let skipped = metric(
        &h.url(""),
        "switchyard_retries_skipped_total{reason=\"budget\"}",
    )
    .await;
    assert!(skipped >= 79.0, "{skipped}");
}

#[tokio::test]
async fn a_429_with_retry_after_holds_the_provider_back_across_requests() {
    let h = start().await;
    h.mock.set_outage("throttled-model", Some(429));
    let r = h.post("/inference", &inference("limited", "x")).await;
    assert_eq!(r.status, 200, "the spare answered: {}", r.text());
    assert_eq!(h.mock.calls_for("throttled-model"), 1);
    h.mock.set_outage("throttled-model", None);
    for _ in 0..10 {
        let r = h.post("/inference", &inference("limited", "x")).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        h.mock.calls_for("throttled-model"),
        1,
        "every request skips it while it asked to be left alone"
    );
    assert_eq!(h.mock.calls_for("spare-model"), 11);
    let status = h.get("/status").await.json();
    let waiting = &status_of(&status, "limited", "throttled")["backing_off"];
    assert_eq!(waiting["credentials"], 1, "{status}");
    assert!(waiting["longest_ms"].as_u64().unwrap() <= 5000);
    // After the five seconds it is called again.
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let r = h.post("/inference", &inference("limited", "x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.mock.calls_for("throttled-model"), 2);
}

#[tokio::test]
async fn when_every_circuit_is_open_the_answer_is_a_prompt_503() {
    let h = start().await;
    h.mock.set_outage("dark-a", Some(500));
    h.mock.set_outage("dark-b", Some(502));
    let r = h.post("/inference", &inference("dark", "x")).await;
    assert_eq!(r.status, 502, "both failed: {}", r.text());
    let began = std::time::Instant::now();
    let r = h.post("/inference", &inference("dark", "x")).await;
    assert!(began.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status, 503, "{}", r.text());
    // Retried when the first of them is: b's 30 s cooldown.
    let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&after), "{after}");
    let message = r.error();
    for expected in [
        "a: skipped",
        "b: skipped",
        "circuit is open",
        "tried again in",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert_eq!(h.mock.calls_for("dark-a") + h.mock.calls_for("dark-b"), 2);
}
