//! How streams fail, in each provider's own format: an error as the first event, an error
//! mid-stream (Gemini's also as a raw JSON tail), a broken connection, a 429, a slow start.
//! Before the first chunk a failure is a plain JSON error and the next provider is tried; after
//! it, the client gets an `error` event and nothing is retried.

use serde_json::{Value, json};

use crate::harness::{Harness, Reply, inference, key_file};

/// One provider section of `kind` (`openai`, `anthropic`, `gemini`) calling `model`.
fn provider(model_name: &str, id: &str, kind: &str, model: &str, key: &str) -> String {
    let (kind, key) = match kind {
        "openai" => ("openai", "none".to_owned()),
        "anthropic" => ("anthropic", format!("path::{key}")),
        _ => ("google_ai_studio_gemini", format!("path::{key}")),
    };
    format!(
        "[models.{model_name}.providers.{id}]\ntype = \"{kind}\"\napi_base = \"{{mock}}\"\nmodel_name = \"{model}\"\napi_key_location = \"{key}\"\n"
    )
}

/// A model of one provider, or of `routing` providers tried in order.
fn model(name: &str, providers: &[(&str, &str)], key: &str) -> String {
    let ids: Vec<String> = (0..providers.len()).map(|i| format!("p{i}")).collect();
    let mut out = format!("[models.{name}]\nrouting = {ids:?}\n");
    for (i, (kind, m)) in providers.iter().enumerate() {
        out.push_str(&provider(name, &ids[i], kind, m, key));
    }
    out
}

async fn stream(h: &Harness, model: &str) -> Reply {
    let mut body = inference(model, "hi");
    body["stream"] = json!(true);
    h.post("/inference", &body).await
}

/// The stream's events (its `[DONE]` dropped) and whether the last one is an error.
fn split(r: &Reply) -> (Vec<Value>, Option<String>) {
    let events = r.json_events();
    let error = events
        .last()
        .and_then(|e| e.get("error"))
        .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned));
    (events, error)
}

const KINDS: [&str; 3] = ["openai", "anthropic", "gemini"];

#[tokio::test]
async fn an_error_as_the_first_event_is_a_plain_error_and_falls_back() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(&keys, "k", "provider-key");
    let mut config = String::new();
    for kind in KINDS {
        config.push_str(&model(
            &format!("{kind}_alone"),
            &[(kind, "first-error")],
            &key,
        ));
        config.push_str(&model(
            &format!("{kind}_then_good"),
            &[(kind, "first-error"), ("openai", "fine")],
            &key,
        ));
    }
    let h = Harness::start(&config).await;
    for kind in KINDS {
        let r = stream(&h, &format!("{kind}_alone")).await;
        assert_eq!(r.status, 502, "{kind}: {}", r.text());
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{kind}: a plain JSON error, not a stream"
        );
        let e = r.error();
        assert!(
            e.contains("verloaded") || e.contains("failed mid-stream"),
            "{kind}: the provider's message: {e}"
        );
        let r = stream(&h, &format!("{kind}_then_good")).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let (events, error) = split(&r);
        assert!(error.is_none(), "{kind}: {events:?}");
        let text: String = events
            .iter()
            .filter_map(|e| e["content"][0]["text"].as_str())
            .collect();
        assert_eq!(
            text, "mock reply to: hi",
            "{kind}: the second provider answered"
        );
    }
}

#[tokio::test]
async fn an_error_or_a_break_mid_stream_ends_the_stream_with_an_error_event() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(&keys, "k", "provider-key");
    let mut config = String::new();
    let mut cases = Vec::new();
    for kind in KINDS {
        for behaviour in ["stream-error", "break"] {
            let name = format!("{kind}_{}", behaviour.replace('-', "_"));
            config.push_str(&model(
                &name,
                &[(kind, behaviour), ("openai", "fine")],
                &key,
            ));
            cases.push((kind, behaviour, name));
        }
    }
    config.push_str(&model(
        "gemini_raw_tail",
        &[("gemini", "stream-error-raw")],
        &key,
    ));
    cases.push(("gemini", "stream-error-raw", "gemini_raw_tail".into()));
    let h = Harness::start(&config).await;
    for (kind, behaviour, name) in cases {
        let r = stream(&h, &name).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let (events, error) = split(&r);
        let error = error.unwrap_or_else(|| panic!("{name}: no error event: {events:?}"));
        assert!(events.len() >= 2, "{name}: content came first: {events:?}");
        if behaviour != "break" {
            assert!(
                error.contains("verloaded") || error.contains("failed mid-stream"),
                "{kind} {behaviour}: the provider's message: {error}"
            );
        }
        assert!(
            r.text().trim_end().ends_with("data: [DONE]"),
            "{name}: the stream still ends properly"
        );
    }
    // Once content has gone to the client, nothing falls back to the next provider.
    let fallbacks = h
        .mock
        .requests()
        .iter()
        .filter(|r| r.body["model"] == "fine")
        .count();
    assert_eq!(fallbacks, 0);
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_chunk_is_not_retried() {
    let config = format!(
        "{}\n[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"cut\"\nretries = {{ num_retries = 3, max_delay_s = 0.1 }}\n",
        model("cut", &[("openai", "break")], "")
    );
    let h = Harness::start(&config).await;
    let body = json!({ "function_name": "f", "stream": true, "input": { "messages": [{ "role": "user", "content": "hi" }] } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (events, error) = split(&r);
    assert!(error.is_some(), "the client is told: {events:?}");
    assert!(events.len() >= 2, "content came first: {events:?}");
    assert_eq!(
        h.mock.requests().len(),
        1,
        "a started stream is never retried"
    );
}

#[tokio::test]
async fn gemini_429s_and_slow_starts() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(&keys, "k", "provider-key");
    let config = format!(
        "{}{}\n[models.slow.providers.p0.timeouts]\nstreaming = {{ ttft_ms = 100 }}\n{}",
        model("limited", &[("gemini", "rate-limited")], &key),
        model("slow", &[("gemini", "slow-2000"), ("openai", "fine")], &key),
        model("drip", &[("gemini", "drip-300")], &key),
    );
    let h = Harness::start(&config).await;
    for streamed in [false, true] {
        let mut body = inference("limited", "hi");
        body["stream"] = json!(streamed);
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 502, "{}", r.text());
        let e = r.error();
        assert!(
            e.contains("HTTP 429") && e.contains("Resource has been exhausted"),
            "{e}"
        );
    }
    // A first chunk later than the provider's ttft_ms: the next provider answers.
    let r = stream(&h, "slow").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (events, error) = split(&r);
    assert!(error.is_none(), "{events:?}");
    // A slow but steady stream is read to its end.
    let r = stream(&h, "drip").await;
    let (events, error) = split(&r);
    assert!(error.is_none(), "{events:?}");
    let text: String = events
        .iter()
        .filter_map(|e| e["content"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "mock reply to: hi");
}

#[tokio::test]
async fn an_anthropic_block_index_of_two_to_the_forty_is_an_error_not_an_allocation() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(&keys, "k", "provider-key");
    let h = Harness::start(&model("claude", &[("anthropic", "hostile-index")], &key)).await;
    let r = stream(&h, "claude").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (events, error) = split(&r);
    let error = error.unwrap_or_else(|| panic!("no error event: {events:?}"));
    assert!(
        error.contains("1099511627776"),
        "the index is named: {error}"
    );
    // The gateway is fine: the next call is answered.
    let r = h.post("/inference", &inference("claude", "again")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
