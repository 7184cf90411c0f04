//! `POST /openai/v1/embeddings` against the mock provider's OpenAI `/embeddings`.

use serde_json::{Value, json};

use crate::harness::{Harness, last_request};

const CONFIG: &str = r#"
[provider_types.openai.defaults]
api_base = "{mock}"
api_key_location = "none"

[embedding_models.small]
routing = ["primary", "backup"]
[embedding_models.small.providers.primary]
type = "openai"
api_base = "{mock}"
model_name = "error-503"
api_key_location = "none"
[embedding_models.small.providers.backup]
type = "openai"
api_base = "{mock}"
model_name = "text-embedding-small"
api_key_location = "dynamic::embed_key"
extra_body = [{ pointer = "/user", value = "from-config" }]

[embedding_models.slow]
routing = ["slow"]
timeout_ms = 300
[embedding_models.slow.providers.slow]
type = "openai"
api_base = "{mock}"
model_name = "slow-3000"
api_key_location = "none"
"#;

async fn start() -> Harness {
    Harness::start(CONFIG).await
}

fn body(model: &str, input: Value) -> Value {
    json!({ "model": format!("tensorzero::embedding_model_name::{model}"), "input": input, "tensorzero::credentials": { "embed_key": "sk-embed" } })
}

#[tokio::test]
async fn embeddings_fall_back_across_providers_in_input_order() {
    let h = start().await;
    let r = h
        .post(
            "/openai/v1/embeddings",
            &body("small", json!(["alpha", "beta gamma"])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "tensorzero::embedding_model_name::small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(
        v["usage"],
        json!({ "prompt_tokens": 3, "total_tokens": 3, "tensorzero_cost": null })
    );
    let seen = h.mock.requests();
    assert_eq!(seen.len(), 2, "primary failed, backup answered");
    let sent = &seen[1];
    assert!(sent.path.ends_with("/embeddings"));
    assert_eq!(sent.body["model"], "text-embedding-small");
    assert_eq!(sent.body["user"], "from-config");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-embed"));
    // Counted like chat calls.
    let metrics = h.get("/metrics").await.text();
    for line in [
        r#"switchyard_provider_requests_total{model="small",provider="primary",status="503"} 1"#,
        r#"switchyard_provider_requests_total{model="small",provider="backup",status="200"} 1"#,
        r#"switchyard_model_fallbacks_total{model="small"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }

    // The same text embeds the same way; dimensions and base64 are passed on.
    let again = h
        .post("/openai/v1/embeddings", &body("small", json!("alpha")))
        .await
        .json();
    assert_eq!(again["data"][0]["embedding"], data[0]["embedding"]);
    let mut b = body("small", json!("alpha"));
    b["dimensions"] = json!(8);
    b["encoding_format"] = json!("base64");
    let v = h.post("/openai/v1/embeddings", &b).await.json();
    assert!(v["data"][0]["embedding"].is_string(), "{v}");
    assert_eq!(last_request(&h.mock).body["dimensions"], 8);
}

#[tokio::test]
async fn shorthand_embedding_models_use_the_provider_type_defaults() {
    let h = start().await;
    let r = h
        .post(
            "/openai/v1/embeddings",
            &json!({ "model": "tensorzero::embedding_model_name::openai::text-embedding-3-small", "input": "hi" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        last_request(&h.mock).body["model"],
        "text-embedding-3-small"
    );
}

#[tokio::test]
async fn bad_embedding_requests_are_refused_clearly() {
    let h = start().await;
    let r = h
        .post("/openai/v1/embeddings", &body("nope", json!("x")))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["message"], "Model not found: nope");
    let r = h
        .post("/openai/v1/embeddings", &body("small", json!([])))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("Input cannot be empty"), "{}", r.error());
    let r = h
        .post("/openai/v1/embeddings", &body("small", json!({ "a": 1 })))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("`input` must be"), "{}", r.error());
    let r = h
        .post("/openai/v1/embeddings", &json!({ "input": "x" }))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("model"), "{}", r.error());
    // Without the dynamic key, the backup cannot be called: a 4xx naming it after the
    // primary's 503.
    let r = h
        .post(
            "/openai/v1/embeddings",
            &json!({ "model": "tensorzero::embedding_model_name::small", "input": "x" }),
        )
        .await;
    assert!(r.error().contains("embed_key"), "{}", r.error());
    assert!(
        h.mock
            .requests()
            .iter()
            .all(|r| r.body["model"] != "text-embedding-small")
    );
}

#[tokio::test]
async fn embedding_model_timeouts_apply() {
    let h = start().await;
    let r = h
        .post("/openai/v1/embeddings", &body("slow", json!("x")))
        .await;
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.error().contains("timed out"), "{}", r.error());
}
