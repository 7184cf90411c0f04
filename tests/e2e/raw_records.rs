//! `include_raw_usage` and `include_raw_response`: each model call's usage object and answer as
//! the provider wrote them (`raw_usage`, `raw_response`, `raw_chunk` natively; the
//! `tensorzero_raw_*` forms on the OpenAI route), streamed or not, over ensembles and relays.

use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::{Harness, gateway, inference, send};

const CONFIG: &str = r#"
[models.gpt]
routing = ["mock"]
[models.gpt.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[models.choose1]
routing = ["mock"]
[models.choose1.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "choose-1"
api_key_location = "none"

[models.claude]
routing = ["anthropic"]
[models.claude.providers.anthropic]
type = "anthropic"
api_base = "{mock}"
model_name = "claude-mock"
api_key_location = "{key}"

[functions.ensemble]
type = "chat"
[functions.ensemble.variants.c1]
type = "chat_completion"
model = "gpt"
weight = 0
[functions.ensemble.variants.c2]
type = "chat_completion"
model = "claude"
weight = 0
[functions.ensemble.variants.bon]
type = "experimental_best_of_n_sampling"
candidates = ["c1", "c2"]
weight = 1
[functions.ensemble.variants.bon.evaluator]
model = "choose1"
"#;

fn asking(mut body: Value) -> Value {
    body["include_raw_usage"] = json!(true);
    body["include_raw_response"] = json!(true);
    body
}

/// Checks one `raw_usage` entry and returns its data.
fn entry<'a>(e: &'a Value, provider_type: &str, api_type: &str) -> &'a Value {
    assert!(
        e["model_inference_id"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .is_some(),
        "{e}"
    );
    assert_eq!(e["provider_type"], provider_type, "{e}");
    assert_eq!(e["api_type"], api_type, "{e}");
    &e["data"]
}

#[tokio::test]
async fn raw_usage_and_responses_come_back_when_asked() {
    let h = Harness::start(CONFIG).await;
    // Not asked: not there.
    let r = h.post("/inference", &inference("gpt", "hi")).await;
    let v = r.json();
    assert!(
        v.get("raw_usage").is_none() && v.get("raw_response").is_none(),
        "{v}"
    );

    let r = h
        .post("/inference", &asking(inference("gpt", "hi there")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let usage = entry(&v["raw_usage"][0], "openai", "chat_completions");
    assert_eq!(usage["prompt_tokens"], v["usage"]["input_tokens"], "{v}");
    assert_eq!(
        usage["completion_tokens"], v["usage"]["output_tokens"],
        "{v}"
    );
    assert!(
        usage.get("total_tokens").is_some(),
        "the provider's object, whole: {usage}"
    );
    let response = &v["raw_response"][0];
    assert_eq!(
        response["model_inference_id"],
        v["raw_usage"][0]["model_inference_id"]
    );
    let answer: Value = serde_json::from_str(response["data"].as_str().unwrap()).unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");

    // Anthropic's own API: `other`, and its usage object.
    let r = h
        .post("/inference", &asking(inference("claude", "hi")))
        .await;
    let v = r.json();
    let usage = entry(&v["raw_usage"][0], "anthropic", "other");
    assert_eq!(usage["input_tokens"], v["usage"]["input_tokens"], "{v}");
}

#[tokio::test]
async fn a_stream_carries_raw_chunks_and_its_usage_at_the_end() {
    let h = Harness::start(CONFIG).await;
    for (model, provider_type, api_type, output_key) in [
        ("gpt", "openai", "chat_completions", "completion_tokens"),
        ("claude", "anthropic", "other", "output_tokens"),
    ] {
        let mut body = asking(inference(model, "one two three"));
        body["stream"] = json!(true);
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let events = r.json_events();
        let chunks: Vec<&str> = events
            .iter()
            .filter_map(|e| e["raw_chunk"].as_str())
            .collect();
        assert!(!chunks.is_empty(), "{model}: {events:?}");
        for chunk in &chunks {
            // The provider's events, verbatim: JSON, and OpenAI's closing `[DONE]`.
            for line in chunk.lines().filter(|l| *l != "[DONE]") {
                serde_json::from_str::<Value>(line).unwrap_or_else(|e| {
                    panic!("{model}: a raw chunk is the provider's JSON ({e}): {line}")
                });
            }
        }
        let last = events.last().unwrap();
        let usage = entry(&last["raw_usage"][0], provider_type, api_type);
        // Anthropic reports input tokens in `message_start` and output in `message_delta`:
        // the object has both.
        assert_eq!(
            usage[output_key], last["usage"]["output_tokens"],
            "{model}: {last}"
        );
        assert!(usage.as_object().unwrap().len() >= 2, "{model}: {usage}");
    }
}

#[tokio::test]
async fn the_openai_route_uses_the_tensorzero_raw_fields() {
    let h = Harness::start(CONFIG).await;
    let body = json!({
        "model": "tensorzero::model_name::gpt",
        "messages": [{"role": "user", "content": "hello"}],
        "tensorzero::include_raw_usage": true,
        "tensorzero::include_raw_response": true,
    });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let usage = entry(&v["tensorzero_raw_usage"][0], "openai", "chat_completions");
    assert_eq!(usage["prompt_tokens"], v["usage"]["prompt_tokens"]);
    assert!(v["tensorzero_raw_response"][0]["data"].is_string(), "{v}");

    // Streaming: usage is turned on by itself, and the usage chunk carries the raw usage.
    let mut body = body;
    body["stream"] = json!(true);
    let r = h.post("/openai/v1/chat/completions", &body).await;
    let events = r.json_events();
    let last = events.last().unwrap();
    assert!(last["usage"]["prompt_tokens"].is_u64(), "{last}");
    entry(
        &last["tensorzero_raw_usage"][0],
        "openai",
        "chat_completions",
    );
    assert!(
        events.iter().any(|e| e["tensorzero_raw_chunk"].is_string()),
        "{events:?}"
    );
}

#[tokio::test]
async fn every_model_call_of_an_ensemble_has_its_records() {
    let h = Harness::start(CONFIG).await;
    let body = json!({"function_name": "ensemble", "input": {"messages": [{"role": "user", "content": "hi"}]}});
    let r = h.post("/inference", &asking(body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let usage = v["raw_usage"].as_array().unwrap();
    let types: Vec<&str> = usage
        .iter()
        .map(|e| e["provider_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 3, "two candidates and the evaluator: {v}");
    assert!(
        types.contains(&"anthropic") && types.contains(&"openai"),
        "{types:?}"
    );
    let mut ids: Vec<&str> = usage
        .iter()
        .map(|e| e["model_inference_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one id per model call");
    assert_eq!(v["raw_response"].as_array().unwrap().len(), 3, "{v}");
}

/// The edge asks the relay for its records, and passes them on: the provider the relay called
/// is named, not the relay.
#[tokio::test]
async fn a_relayed_call_passes_on_the_relays_records() {
    let mock = MockProvider::start().await.unwrap();
    let relay_config = "[models.gpt]\nrouting = [\"mock\"]\n[models.gpt.providers.mock]\ntype = \"openai\"\napi_base = \"{mock}\"\nmodel_name = \"mock-model\"\napi_key_location = \"none\"\n";
    let (relay, _relay_dir) = gateway(relay_config, &[("{mock}", &mock.api_base())]).await;
    let edge_config = "[gateway.relay]\ngateway_url = \"{relay}\"\n[models.gpt]\nrouting = [\"x\"]\n[models.gpt.providers.x]\ntype = \"openai\"\nmodel_name = \"x\"\n";
    let (edge, _edge_dir) = gateway(edge_config, &[("{relay}", &relay.url())]).await;
    let post = |body: Value| {
        let url = format!("{}/inference", edge.url());
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
    let r = post(asking(inference("gpt", "relay me"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let usage = entry(&v["raw_usage"][0], "openai", "chat_completions");
    assert_eq!(usage["prompt_tokens"], v["usage"]["input_tokens"], "{v}");
    assert!(v["raw_response"][0]["data"].is_string(), "{v}");

    let mut body = asking(inference("gpt", "relay me"));
    body["stream"] = json!(true);
    let r = post(body).await;
    let events = r.json_events();
    entry(
        &events.last().unwrap()["raw_usage"][0],
        "openai",
        "chat_completions",
    );
    assert!(
        events.iter().any(|e| e["raw_chunk"].is_string()),
        "{events:?}"
    );
}
