//! Cost: the providers' `cost` prices applied to their raw answers, reported to the last digit
//! in `usage.cost` (native) and `usage.tensorzero_cost` (OpenAI route), streamed or not, summed
//! over best-of-n and mixture-of-n calls, carried from a relay to its edge, and counted in
//! `/metrics`. Expected figures are computed here in integer pico-dollars from the token counts
//! the answer reports, so a rounding anywhere would show.

use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::{Harness, gateway, inference, metric, send};

/// OpenAI-format prices: $0.15 per million prompt tokens, $0.60 per million completion tokens,
/// a cached-token discount and a per-search fee whose fields the mock never sends (so they add
/// nothing).
const OPENAI_PRICES: &str = r#"cost = [
  { pointer = "/usage/prompt_tokens", cost_per_million = 0.15 },
  { pointer = "/usage/completion_tokens", cost_per_million = 0.6 },
  { pointer = "/usage/prompt_tokens_details/cached_tokens", cost_per_million = -0.075 },
  { pointer = "/usage/web_search_calls", cost_per_unit = 0.01 },
]"#;

fn config() -> String {
    format!(
        r#"
[models.priced]
routing = ["mock"]
[models.priced.providers.mock]
type = "openai"
api_base = "{{mock}}"
model_name = "mock-model"
api_key_location = "none"
{OPENAI_PRICES}

[models.choose1]
routing = ["mock"]
[models.choose1.providers.mock]
type = "openai"
api_base = "{{mock}}"
model_name = "choose-1"
api_key_location = "none"
{OPENAI_PRICES}

[models.unpriced]
routing = ["mock"]
[models.unpriced.providers.mock]
type = "openai"
api_base = "{{mock}}"
model_name = "mock-model"
api_key_location = "none"

[models.needs_field]
routing = ["mock"]
[models.needs_field.providers.mock]
type = "openai"
api_base = "{{mock}}"
model_name = "mock-model"
api_key_location = "none"
cost = [
  {{ pointer = "/usage/prompt_tokens", cost_per_million = 1.0 }},
  {{ pointer = "/usage/audio_seconds", cost_per_unit = 0.001, required = true }},
]

[models.claude]
routing = ["anthropic"]
[models.claude.providers.anthropic]
type = "anthropic"
api_base = "{{mock}}"
model_name = "claude-mock"
api_key_location = "{{key}}"
cost = [
  {{ pointer_nonstreaming = "/usage/input_tokens", pointer_streaming = "/message/usage/input_tokens", cost_per_million = 3.0 }},
  {{ pointer = "/usage/output_tokens", cost_per_million = 15.0 }},
]

[functions.ensemble]
type = "chat"
[functions.ensemble.variants.c1]
type = "chat_completion"
model = "priced"
weight = 0
[functions.ensemble.variants.c2]
type = "chat_completion"
model = "priced"
system_template = "templates/c2.minijinja"
weight = 0
[functions.ensemble.variants.bon]
type = "experimental_best_of_n_sampling"
candidates = ["c1", "c2"]
weight = 1
[functions.ensemble.variants.bon.evaluator]
model = "choose1"
[functions.ensemble.variants.mon]
type = "experimental_mixture_of_n"
candidates = ["c1", "c2"]
weight = 0
[functions.ensemble.variants.mon.fuser]
model = "priced"
[functions.ensemble.variants.unknown_part]
type = "experimental_mixture_of_n"
candidates = ["c1", "c2"]
weight = 0
[functions.ensemble.variants.unknown_part.fuser]
model = "unpriced"

[embedding_models.embed]
routing = ["mock"]
[embedding_models.embed.providers.mock]
type = "openai"
api_base = "{{mock}}"
model_name = "embed-model"
api_key_location = "none"
cost = [{{ pointer = "/usage/prompt_tokens", cost_per_million = 0.02 }}]
"#
    )
}

async fn start() -> Harness {
    Harness::start_with_files(
        MockProvider::start().await.unwrap(),
        &config(),
        &[("templates/c2.minijinja", "Be brief.")],
    )
    .await
}

/// `picodollars` (10^-12 dollars) as a JSON number: the `f64` nearest to the exact decimal,
/// which is what a figure computed without rounding error reads as.
fn dollars(picodollars: u64) -> Value {
    let (whole, fraction) = (
        picodollars / 1_000_000_000_000,
        picodollars % 1_000_000_000_000,
    );
    let decimal = format!("{whole}.{fraction:012}");
    json!(decimal.parse::<f64>().unwrap())
}

/// What `OPENAI_PRICES` charge for these counts, in pico-dollars.
fn openai_price(input: u64, output: u64) -> u64 {
    input * 150_000 + output * 600_000
}

fn tokens(usage: &Value) -> (u64, u64) {
    let n = |k: &str| {
        usage[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k}: {usage}"))
    };
    match usage.get("input_tokens") {
        Some(_) => (n("input_tokens"), n("output_tokens")),
        None => (n("prompt_tokens"), n("completion_tokens")),
    }
}

/// The last usage a stream of JSON events reported.
fn last_usage(events: &[Value]) -> Value {
    events
        .iter()
        .rev()
        .find_map(|e| e.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("the stream reported usage")
}

#[tokio::test]
async fn a_call_costs_what_its_tokens_cost_to_the_last_digit() {
    let h = start().await;
    let r = h
        .post("/inference", &inference("priced", "hello there"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let (input, output) = tokens(usage);
    let expected = dollars(openai_price(input, output));
    assert_eq!(usage["cost"], expected, "{usage}");
    // The JSON text itself carries the shortest form of the exact figure (no float noise
    // such as ...0000001).
    assert!(
        r.text().contains(&format!("\"cost\":{expected}")),
        "{}",
        r.text()
    );

    // Streamed: the usage event carries the same figure.
    let mut body = inference("priced", "hello there");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = last_usage(&r.json_events());
    let (input, output) = tokens(&usage);
    assert_eq!(usage["cost"], dollars(openai_price(input, output)));

    // Unknown cost is `null`, and always present: no prices, or a required field missing.
    for model in ["unpriced", "needs_field"] {
        let r = h.post("/inference", &inference(model, "hi")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let usage = &r.json()["usage"];
        assert!(
            usage.get("cost").is_some_and(Value::is_null),
            "{model}: {usage}"
        );
    }
}

#[tokio::test]
async fn the_openai_route_reports_tensorzero_cost() {
    let h = start().await;
    let body = json!({
        "model": "tensorzero::model_name::priced",
        "messages": [{"role": "user", "content": "count my tokens"}],
    });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let (input, output) = tokens(usage);
    assert_eq!(
        usage["tensorzero_cost"],
        dollars(openai_price(input, output))
    );

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = last_usage(&r.json_events());
    let (input, output) = tokens(&usage);
    assert_eq!(
        usage["tensorzero_cost"],
        dollars(openai_price(input, output))
    );

    let r = h
        .post(
            "/openai/v1/chat/completions",
            &json!({"model": "tensorzero::model_name::unpriced", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert!(
        r.json()["usage"]["tensorzero_cost"].is_null(),
        "{}",
        r.text()
    );
}

/// Anthropic reports input tokens in `message_start` and output tokens in `message_delta`:
/// the streaming pointers read each where it is, and the figure matches the non-streamed one.
#[tokio::test]
async fn streamed_usage_spread_over_events_is_priced_whole() {
    let h = start().await;
    let price = |input: u64, output: u64| input * 3_000_000 + output * 15_000_000;
    let r = h
        .post("/inference", &inference("claude", "one two three"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let (input, output) = tokens(usage);
    assert_eq!(usage["cost"], dollars(price(input, output)));

    let mut body = inference("claude", "one two three");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = last_usage(&r.json_events());
    let (input, output) = tokens(&usage);
    assert!(output > 1, "the final count, not message_start's: {usage}");
    assert_eq!(usage["cost"], dollars(price(input, output)));
}

#[tokio::test]
async fn ensembles_cost_the_sum_of_their_model_calls() {
    let h = start().await;
    let call = |variant: &str| {
        json!({"function_name": "ensemble", "variant_name": variant,
               "input": {"messages": [{"role": "user", "content": "hello"}]}})
    };
    for variant in ["bon", "mon"] {
        let r = h.post("/inference", &call(variant)).await;
        assert_eq!(r.status, 200, "{variant}: {}", r.text());
        let usage = &r.json()["usage"];
        // Every call is priced alike, so the sum of the calls' costs is the price of the
        // summed tokens.
        let (input, output) = tokens(usage);
        assert_eq!(
            usage["cost"],
            dollars(openai_price(input, output)),
            "{variant}: {usage}"
        );
        // Three calls: two candidates and the evaluator or fuser, each with its own prompt.
        assert_eq!(h.mock.requests().len() % 3, 0);
    }
    // Streamed best-of-n: the same sum in the usage event.
    let mut body = call("bon");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    let usage = last_usage(&r.json_events());
    let (input, output) = tokens(&usage);
    assert_eq!(usage["cost"], dollars(openai_price(input, output)));

    // One call of unknown cost (an unpriced fuser) makes the total unknown.
    let r = h.post("/inference", &call("unknown_part")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["usage"]["cost"].is_null(), "{}", r.text());
}

#[tokio::test]
async fn embeddings_cost_and_costs_are_counted_in_metrics() {
    let h = start().await;
    let r = h
        .post(
            "/openai/v1/embeddings",
            &json!({"model": "tensorzero::embedding_model_name::embed", "input": "one two three four"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let n = usage["prompt_tokens"].as_u64().unwrap();
    assert_eq!(usage["tensorzero_cost"], dollars(n * 20_000));
    let counted = metric(
        &h.url(""),
        "switchyard_cost_dollars_total{model_name=\"embed\",provider_name=\"mock\"}",
    )
    .await;
    assert_eq!(json!(counted), dollars(n * 20_000));

    let mut spent = 0;
    for text in ["a", "a b c d e f g"] {
        let r = h.post("/inference", &inference("priced", text)).await;
        let (input, output) = tokens(&r.json()["usage"]);
        spent += openai_price(input, output);
    }
    let counted = metric(
        &h.url(""),
        "switchyard_cost_dollars_total{model_name=\"priced\",provider_name=\"mock\"}",
    )
    .await;
    assert_eq!(json!(counted), dollars(spent));
    let text = send(
        http::Method::GET,
        &h.url("/metrics"),
        Default::default(),
        &[],
    )
    .await
    .text();
    assert!(
        !text.contains("switchyard_cost_dollars_total{model_name=\"unpriced\""),
        "models without prices have no cost series"
    );
}

/// The relay prices the call with its own configuration; the edge, which has no prices,
/// reports the relay's figure, streamed or not.
#[tokio::test]
async fn a_relayed_call_reports_the_relays_cost() {
    let mock = MockProvider::start().await.unwrap();
    let relay_config = format!(
        "[models.priced]\nrouting = [\"mock\"]\n[models.priced.providers.mock]\ntype = \"openai\"\napi_base = \"{{mock}}\"\nmodel_name = \"mock-model\"\napi_key_location = \"none\"\n{OPENAI_PRICES}\n"
    );
    let (relay, _relay_dir) = gateway(&relay_config, &[("{mock}", &mock.api_base())]).await;
    let edge_config = "[gateway.relay]\ngateway_url = \"{relay}\"\n[models.priced]\nrouting = [\"x\"]\n[models.priced.providers.x]\ntype = \"openai\"\nmodel_name = \"x\"\n";
    let relay_url = relay.url();
    let (edge, _edge_dir) = gateway(edge_config, &[("{relay}", &relay_url)]).await;
    let edge_url = edge.url();

    let post = |body: Value| {
        let url = format!("{edge_url}/inference");
        async move {
            send(
                http::Method::POST,
                &url,
                body.to_string().into(),
                &[("content-type", "application/json")],
            )
            .await
        }
    };
    let r = post(inference("priced", "relay me")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    let (input, output) = tokens(usage);
    assert_eq!(usage["cost"], dollars(openai_price(input, output)));

    let mut body = inference("priced", "relay me");
    body["stream"] = json!(true);
    let r = post(body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = last_usage(&r.json_events());
    let (input, output) = tokens(&usage);
    assert_eq!(usage["cost"], dollars(openai_price(input, output)));
}

/// Cost limits: a call that sets `max_tokens` to a priced model reserves what it may cost at
/// most; one that does not reserves `default_cost`; both settle with the real cost.
const CAPPED: &str = r#"
[models.slow]
routing = ["mock"]
[models.slow.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "slow-400"
api_key_location = "none"
cost = [
  { pointer = "/usage/prompt_tokens", cost_per_million = 0.15 },
  { pointer = "/usage/completion_tokens", cost_per_million = 0.6 },
]

[rate_limiting]
backend = "memory"
default_cost = 0.0001

[[rate_limiting.rules]]
priority = 1
scope = [{ tag_key = "budget", tag_value = "estimated" }]
cost_per_day = 0.0003

[[rate_limiting.rules]]
priority = 1
scope = [{ tag_key = "budget", tag_value = "default" }]
cost_per_hour = { capacity = 0.0003, refill_rate = 0.0003 }
"#;

/// Twenty calls at once against a $0.0003 budget, each a slow answer so that every reservation
/// is made before any settles: `reserves` of them fit. Returns the admitted answers' usage.
async fn twenty_at_once(h: &Harness, budget: &str, max_tokens: Option<u32>) -> Vec<Value> {
    let mut body = inference("slow", "hi");
    body["tags"] = json!({ "budget": budget });
    if let Some(n) = max_tokens {
        body["params"] = json!({ "chat_completion": { "max_tokens": n } });
    }
    let replies =
        futures_util::future::join_all((0..20).map(|_| h.post("/inference", &body))).await;
    let mut admitted = Vec::new();
    for r in replies {
        match r.status.as_u16() {
            200 => admitted.push(r.json()["usage"].clone()),
            429 => assert!(
                r.error()
                    .starts_with("TensorZero rate limit exceeded for `cost` resource."),
                "{}",
                r.error()
            ),
            other => panic!("{other}: {}", r.text()),
        }
    }
    admitted
}

#[tokio::test]
async fn a_cost_cap_holds_under_twenty_concurrent_requests() {
    let h = Harness::start(CAPPED).await;

    // With `max_tokens = 100`, a call may cost 1 input token (the estimate for "hi") at $0.15/M
    // plus 100 output tokens at $0.60/M: $0.00006015. Four fit in $0.0003, a fifth does not.
    let admitted = twenty_at_once(&h, "estimated", Some(100)).await;
    assert_eq!(admitted.len(), 4, "{admitted:?}");
    let spent: f64 = admitted.iter().map(|u| u["cost"].as_f64().unwrap()).sum();
    assert!(spent <= 0.0003, "the cap holds: {spent}");
    // The refusal says what was asked and what was left, in dollars.
    let mut body = inference("slow", "hi");
    body["tags"] = json!({ "budget": "estimated" });
    body["params"] = json!({ "chat_completion": { "max_tokens": 1000 } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.error().contains("Requested: $0.00060015"),
        "{}",
        r.error()
    );
    // The four settled with their real cost (far below the reservation): the money they did
    // not spend is back, so a fifth call fits now.
    body["params"] = json!({ "chat_completion": { "max_tokens": 100 } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Without `max_tokens`, each call reserves `default_cost` ($0.0001): three fit.
    let admitted = twenty_at_once(&h, "default", None).await;
    assert_eq!(admitted.len(), 3, "{admitted:?}");
}

#[test]
fn cost_limits_load_in_both_forms_and_bad_ones_are_refused() {
    let load = |rules: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tensorzero.toml");
        std::fs::write(
            &path,
            format!("[rate_limiting]\nbackend = \"memory\"\n{rules}"),
        )
        .unwrap();
        switchyard::config::LoadedConfig::from_files(path.to_str().unwrap())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    load("default_cost = 0.5\n[[rate_limiting.rules]]\nalways = true\ncost_per_month = 100\ncost_per_second = { capacity = 0.5, refill_rate = 0.01 }\n")
        .unwrap();
    for (rules, expected) in [
        (
            "[[rate_limiting.rules]]\nalways = true\ncost_per_day = -1\n",
            "non-negative number of dollars",
        ),
        (
            "[[rate_limiting.rules]]\nalways = true\ncost_per_day = { capacity = 1 }\n",
            "a number of dollars or { capacity = DOLLARS, refill_rate = DOLLARS }",
        ),
        (
            "default_cost = -0.1\n[[rate_limiting.rules]]\nalways = true\ncost_per_day = 1\n",
            "default_cost",
        ),
        (
            "[[rate_limiting.rules]]\nalways = true\ncost_per_fortnight = 1\n",
            "is not a limit",
        ),
    ] {
        let e = load(rules).unwrap_err();
        assert!(e.contains(expected), "{rules}: {e}");
    }
}
