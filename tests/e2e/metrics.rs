//! `GET /metrics` after known traffic: exact counts in the Prometheus text format.

use std::collections::BTreeMap;

use serde_json::json;

use crate::harness::{BASIC, Harness, inference};

const CONFIG: &str = r#"
[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "mock"

[functions.g]
type = "chat"
[functions.g.variants.r]
type = "chat_completion"
model = "flaky"
retries = { num_retries = 1, max_delay_s = 0.05 }

[models.flaky]
routing = ["m"]
[models.flaky.providers.m]
type = "openai"
api_base = "{mock}"
model_name = "flaky"
api_key_location = "none"

[rate_limiting]
backend = "memory"
[[rate_limiting.rules]]
always = true
model_inferences_per_hour = 1000

[[rate_limiting.rules]]
priority = 1
model_inferences_per_hour = 1
scope = [{ tag_key = "tier", tag_value = "free" }]

[models.broken]
routing = ["down", "up"]
[models.broken.providers.down]
type = "openai"
api_base = "{mock}"
model_name = "error-503"
api_key_location = "none"
[models.broken.providers.up]
type = "openai"
api_base = "{mock}"
model_name = "fine"
api_key_location = "none"
"#;

/// The samples of the exposition text: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let h = Harness::start(&format!("{BASIC}{CONFIG}")).await;
    let mut input_tokens = 0;
    let mut output_tokens = 0;
    let mut add = |v: &serde_json::Value| {
        input_tokens += v["usage"]["input_tokens"].as_u64().unwrap();
        output_tokens += v["usage"]["output_tokens"].as_u64().unwrap();
    };
    for text in ["one", "two"] {
        let r = h.post("/inference", &inference("mock", text)).await;
        assert_eq!(r.status, 200);
        add(&r.json());
    }
    let r = h
        .post("/inference", &json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "three" }] } }))
        .await;
    add(&r.json());
    // A stream: its usage arrives in the last chunk.
    let mut body = inference("mock", "four five");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    let events = r.json_events();
    add(events.last().unwrap());
    // A fallback: one failed provider attempt, one good one.
    let r = h.post("/inference", &inference("broken", "six")).await;
    assert_eq!(r.status, 200);
    add(&r.json());
    // Refusals.
    assert_eq!(
        h.post("/inference", &inference("nope", "x")).await.status,
        400
    );
    assert_eq!(h.get("/nowhere").await.status, 404);

    let r = h.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = samples(&r.text());
    let get = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in\n{}", r.text()))
    };

    let default_mock =
        r#"{endpoint="inference",function_name="tensorzero::default",model_name="mock"}"#;
    assert_eq!(
        get(&format!("tensorzero_requests_total{default_mock}")),
        3.0
    );
    assert_eq!(
        get(&format!("tensorzero_inferences_total{default_mock}")),
        3.0
    );
    assert_eq!(
        get(r#"tensorzero_requests_total{endpoint="inference",function_name="f"}"#),
        1.0
    );
    assert_eq!(
        get(
            r#"tensorzero_requests_total{endpoint="inference",function_name="tensorzero::default",model_name="broken"}"#
        ),
        1.0
    );
    assert!(
        !m.keys().any(|k| k.contains("model_name=\"nope\"")),
        "an unknown model is not a label"
    );
    assert_eq!(get("tensorzero_input_tokens_total"), input_tokens as f64);
    assert_eq!(get("tensorzero_output_tokens_total"), output_tokens as f64);
    // By model and provider: every call here is one inference's only successful call (the
    // fallback's failed attempt reported none), so the sums equal the totals.
    let tokens_of = |kind: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| {
                k.starts_with("switchyard_tokens_total{") && k.contains(&format!("kind=\"{kind}\""))
            })
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(tokens_of("input"), input_tokens as f64);
    assert_eq!(tokens_of("output"), output_tokens as f64);
    assert!(
        get(r#"switchyard_tokens_total{model_name="broken",provider_name="up",kind="output"}"#)
            > 0.0
    );
    assert_eq!(
        get(r#"switchyard_tokens_total{model_name="broken",provider_name="down",kind="output"}"#),
        0.0
    );
    assert_eq!(
        get(
            r#"tensorzero_inference_latency_overhead_seconds_count{function_name="tensorzero::default",variant_name="mock"}"#
        ),
        3.0
    );
    assert_eq!(
        get(
            r#"tensorzero_inference_latency_overhead_seconds_count{function_name="f",variant_name="v"}"#
        ),
        1.0
    );
    assert!(m.contains_key(r#"tensorzero_inference_latency_overhead_seconds_bucket{function_name="f",variant_name="v",le="0.001"}"#));
    assert_eq!(
        get(
            r#"switchyard_time_to_first_chunk_seconds_count{function_name="tensorzero::default",variant_name="mock"}"#
        ),
        1.0,
        "one streamed inference"
    );

    assert_eq!(
        get(r#"switchyard_provider_requests_total{model="mock",provider="mock",status="200"}"#),
        4.0
    );
    assert_eq!(
        get(r#"switchyard_provider_requests_total{model="broken",provider="down",status="503"}"#),
        1.0
    );
    assert_eq!(
        get(r#"switchyard_provider_requests_total{model="broken",provider="up",status="200"}"#),
        1.0
    );
    assert_eq!(
        get(
            r#"switchyard_provider_request_duration_seconds_count{model="mock",provider="mock",stream="true"}"#
        ),
        1.0
    );

    assert_eq!(
        get(r#"switchyard_http_requests_total{route="/inference",method="POST",status="200"}"#),
        5.0
    );
    assert_eq!(
        get(r#"switchyard_http_requests_total{route="/inference",method="POST",status="400"}"#),
        1.0
    );
    assert_eq!(
        get(r#"switchyard_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        get(r#"switchyard_http_request_duration_seconds_count{route="/inference",status="200"}"#),
        5.0
    );
    assert_eq!(
        get(r#"switchyard_http_requests_in_flight{route="/inference"}"#),
        0.0
    );

    // A second scrape counts the first.
    let again = samples(&h.get("/metrics").await.text());
    assert_eq!(
        again[r#"switchyard_http_requests_total{route="/metrics",method="GET",status="200"}"#],
        1.0
    );
}

/// The JSON log lines of `target` `switchyard::request`.
fn request_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "switchyard::request")
        .collect()
}

#[tokio::test]
async fn one_log_line_per_inference_says_who_answered_and_what_it_cost() {
    use crate::harness::GatewayProcess;
    use switchyard_mock::MockProvider;

    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tensorzero.toml");
    std::fs::write(
        &config,
        format!("[gateway]\ndebug = true\n{BASIC}{CONFIG}").replace("{mock}", &mock.api_base()),
    )
    .unwrap();
    let gw = GatewayProcess::start(&config, &[], &[], dir.path().join("gw.log")).await;
    let secret_prompt = "my-private-prompt-text";
    let r = crate::harness::send(
        http::Method::POST,
        &format!("{}/inference", gw.url),
        bytes::Bytes::from(
            json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": secret_prompt }] } })
                .to_string(),
        ),
        &[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
    )
    .await;
    assert_eq!(r.status, 200);
    let mut streamed = inference("broken", secret_prompt);
    streamed["stream"] = json!(true);
    assert_eq!(gw.infer(&streamed).await.status, 200);
    assert_eq!(
        gw.infer(&inference("nope", secret_prompt)).await.status,
        400
    );
    let logs = gw.stop();
    assert!(
        !logs.contains(secret_prompt),
        "prompt content reached the log"
    );
    let lines = request_lines(&logs);
    // The JSON log flattens fields into the line.
    let fields = |i: usize| lines[i].clone();
    assert_eq!(lines.len(), 3, "{logs}");

    let f = fields(0);
    assert_eq!(f["function"], "f");
    assert_eq!(f["variant"], "v");
    assert_eq!(f["model"], "mock");
    assert_eq!(f["provider"], "mock");
    assert_eq!(f["relayed"], false);
    assert_eq!(f["attempts"], 1);
    assert_eq!(f["status"], 200);
    assert!(f["input_tokens"].as_u64().unwrap() > 0, "{f}");
    assert!(f["output_tokens"].as_u64().unwrap() > 0, "{f}");
    assert!(f["provider_wait_ms"].as_f64().unwrap() > 0.0, "{f}");
    assert!(f["request_id"].is_string());
    assert!(f.get("ttft_ms").is_none(), "not a stream: {f}");
    assert_eq!(
        f["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the client's trace"
    );
    assert_eq!(f["span_id"].as_str().unwrap().len(), 16);

    // The stream fell back once: two attempts; its tokens arrive at its end.
    let s = fields(1);
    assert_eq!(s["function"], "tensorzero::default");
    assert_eq!(s["variant"], "broken");
    assert_eq!(s["provider"], "up");
    assert_eq!(s["attempts"], 2);
    assert!(s["ttft_ms"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["output_tokens"].as_u64().unwrap() > 0, "{s}");

    // `gateway.debug` adds a line per provider attempt.
    let attempts: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "switchyard::attempt")
        .collect();
    assert_eq!(attempts.len(), 3, "{logs}");
    assert_eq!(attempts[1]["provider"], "down");
    assert_eq!(attempts[1]["status"], 503);
    assert!(attempts[1]["error"].as_str().unwrap().contains("503"));
    assert_eq!(attempts[2]["provider"], "up");

    // A refused request still says what it asked for.
    let e = fields(2);
    assert_eq!(e["status"], 400);
    assert_eq!(e["model"], "nope");
    assert_eq!(e["attempts"], 0);
}

#[tokio::test]
async fn server_timing_splits_the_time_when_asked() {
    use bytes::Bytes;
    use http::Method;

    let h = Harness::start(&format!("{BASIC}{CONFIG}")).await;
    let body = Bytes::from(inference("mock", "time me").to_string());
    let plain = crate::harness::send(Method::POST, &h.url("/inference"), body.clone(), &[]).await;
    assert!(
        plain.headers.get("server-timing").is_none(),
        "only when asked"
    );
    let r = crate::harness::send(
        Method::POST,
        &h.url("/inference"),
        body,
        &[("x-switchyard-timing", "1")],
    )
    .await;
    assert_eq!(r.status, 200);
    let timing = r.headers["server-timing"].to_str().unwrap().to_owned();
    let parts: Vec<(&str, f64)> = timing
        .split(", ")
        .map(|p| {
            let (name, dur) = p.split_once(";dur=").unwrap();
            (name, dur.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = parts.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["auth", "ratelimit", "gateway", "provider"],
        "{timing}"
    );
    assert!(parts[3].1 > 0.0, "the provider took some time: {timing}");
    // In aggregate: one observation per layer per inference (auth is off here).
    let m = samples(&h.get("/metrics").await.text());
    for layer in ["gateway", "provider", "rate_limit"] {
        assert_eq!(
            m[&format!("switchyard_layer_duration_seconds_count{{layer=\"{layer}\"}}")],
            2.0,
            "{layer}"
        );
    }
}

#[tokio::test]
async fn a_client_chosen_shorthand_name_cannot_make_a_huge_label() {
    let config = format!(
        "{BASIC}\n[provider_types.openai.defaults]\napi_base = \"{{mock}}\"\napi_key_location = \"none\"\n"
    );
    let h = Harness::start(&config).await;
    let model = format!("openai::{}", "m".repeat(100_000));
    let r = h.post("/inference", &inference(&model, "hi")).await;
    assert_eq!(r.status, 200, "{}", r.error());
    let text = h.get("/metrics").await.text();
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest < 1_000,
        "a metric line of {longest} bytes: label values are cut"
    );
    assert!(text.contains("model_name=\"openai::mmmm"), "{text}");
}
