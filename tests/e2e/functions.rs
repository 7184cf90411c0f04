//! Functions, variants, templates, schemas, tools and json functions, end to end: requests over
//! HTTP to a gateway whose config directory holds real template and schema files, answered by
//! the mock provider, whose recorded requests show what the model was sent.

use serde_json::{Value, json};
use switchyard_mock::MockProvider;
use uuid::Uuid;

use crate::harness::{Harness, last_request};

const CONFIG: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[models.json]
routing = ["mock"]
[models.json.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "json"
api_key_location = "none"

[models.tool]
routing = ["mock"]
[models.tool.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "tool"
api_key_location = "none"

[models.cot]
routing = ["mock"]
[models.cot.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "cot"
api_key_location = "none"

[models.choose1]
routing = ["mock"]
[models.choose1.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "choose-1"
api_key_location = "none"

[models.broken]
routing = ["mock"]
[models.broken.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "error-500"
api_key_location = "none"

[models.slow]
routing = ["mock"]
[models.slow.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "slow-3000"
api_key_location = "none"

[functions.greet]
type = "chat"
description = "Greets the user in character."
system_schema = "schemas/system.json"
user_schema = "schemas/user.json"
[functions.greet.variants.a]
type = "chat_completion"
model = "mock"
system_template = "templates/system.minijinja"
user_template = "templates/user.minijinja"
system_instructions = "templates/instructions.txt"
temperature = 0.5
max_tokens = 100
seed = 7
stop_sequences = ["END"]
extra_body = [{ pointer = "/custom", value = 1 }]
extra_headers = [{ name = "x-variant", value = "a" }]

[functions.plain]
type = "chat"
[functions.plain.variants.wrapped]
type = "chat_completion"
model = "mock"
user_template = "templates/wrap.minijinja"

[functions.weighted]
type = "chat"
[functions.weighted.variants.a]
type = "chat_completion"
model = "mock"
weight = 1
[functions.weighted.variants.b]
type = "chat_completion"
model = "mock"
weight = 3
[functions.weighted.variants.z]
type = "chat_completion"
model = "mock"
weight = 0

[functions.fallback]
type = "chat"
[functions.fallback.variants.first]
type = "chat_completion"
model = "broken"
weight = 1
# No weight: a fallback (weight 0 would be reachable only by pinning).
[functions.fallback.variants.second]
type = "chat_completion"
model = "mock"

[tools.get_weather]
description = "The weather in a city."
parameters = "schemas/weather.json"
[tools.lookup]
description = "Looks a place up."
parameters = "schemas/lookup.json"
name = "lookup_place"
strict = true

[functions.tools]
type = "chat"
tools = ["get_weather", "lookup"]
tool_choice = "auto"
parallel_tool_calls = false
[functions.tools.variants.v]
type = "chat_completion"
model = "tool"

[functions.extract]
type = "json"
output_schema = "schemas/answer.json"
[functions.extract.variants.on]
type = "chat_completion"
model = "json"
json_mode = "on"
weight = 1
[functions.extract.variants.strict]
type = "chat_completion"
model = "json"
json_mode = "strict"
weight = 0
[functions.extract.variants.cot]
type = "experimental_chain_of_thought"
model = "cot"
json_mode = "strict"
weight = 0

[functions.locate]
type = "json"
output_schema = "schemas/weather.json"
[functions.locate.variants.implicit]
type = "chat_completion"
model = "tool"
json_mode = "tool"

[functions.ensemble]
type = "chat"
[functions.ensemble.variants.c1]
type = "chat_completion"
model = "mock"
weight = 0
[functions.ensemble.variants.c2]
type = "chat_completion"
model = "mock"
user_template = "templates/c2.minijinja"
weight = 0
[functions.ensemble.variants.c_broken]
type = "chat_completion"
model = "broken"
weight = 0
[functions.ensemble.variants.c_slow]
type = "chat_completion"
model = "slow"
weight = 0
[functions.ensemble.variants.bon]
type = "experimental_best_of_n_sampling"
candidates = ["c1", "c2", "c_broken", "c_slow"]
timeout_s = 1.0
weight = 1
[functions.ensemble.variants.bon.evaluator]
model = "choose1"
[functions.ensemble.variants.mon]
type = "experimental_mixture_of_n"
candidates = ["c1", "c2", "c_broken"]
weight = 0
[functions.ensemble.variants.mon.fuser]
model = "mock"

[functions.dicl]
type = "chat"
[functions.dicl.variants.d]
type = "experimental_dynamic_in_context_learning"
embedding_model = "openai::text-embedding-3-small"
k = 3
model = "mock"
weight = 1
[functions.dicl.variants.fallback]
type = "chat_completion"
model = "mock"
"#;

const FILES: &[(&str, &str)] = &[
    (
        "schemas/system.json",
        r#"{"type": "object", "properties": {"assistant_name": {"type": "string"}}, "required": ["assistant_name"], "additionalProperties": false}"#,
    ),
    (
        "schemas/user.json",
        r#"{"type": "object", "properties": {"topic": {"type": "string", "minLength": 2}}, "required": ["topic"]}"#,
    ),
    (
        "schemas/weather.json",
        r#"{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"#,
    ),
    (
        "schemas/lookup.json",
        r#"{"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}"#,
    ),
    (
        "schemas/answer.json",
        r#"{"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}"#,
    ),
    (
        "templates/system.minijinja",
        "You are {{ assistant_name }}.",
    ),
    ("templates/user.minijinja", "Tell me about {{ topic }}."),
    ("templates/instructions.txt", "Be brief."),
    ("templates/wrap.minijinja", "<<{{ user_text }}>>"),
    ("templates/c2.minijinja", "C2: {{ user_text }}"),
];

async fn start() -> Harness {
    Harness::start_with_files(MockProvider::start().await.unwrap(), CONFIG, FILES).await
}

fn call(function: &str, text: &str) -> Value {
    json!({ "function_name": function, "input": { "messages": [{ "role": "user", "content": text }] } })
}

fn system_and_user(body: &Value) -> (String, String) {
    let messages = body["messages"].as_array().unwrap();
    let system = messages
        .iter()
        .find(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .unwrap_or_default();
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        })
        .unwrap();
    (system, user)
}

#[tokio::test]
async fn templates_render_schema_checked_arguments_with_the_variant_settings() {
    let h = start().await;
    let body = json!({
        "function_name": "greet",
        "input": {
            "system": { "assistant_name": "Ada" },
            "messages": [{ "role": "user", "content": [{ "type": "template", "name": "user", "arguments": { "topic": "rust" } }] }]
        }
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], "a");
    let sent = last_request(&h.mock);
    let (system, user) = system_and_user(&sent.body);
    assert_eq!(system, "Be brief.\n\nYou are Ada.");
    assert_eq!(user, "Tell me about rust.");
    assert_eq!(sent.body["temperature"], 0.5);
    assert_eq!(sent.body["max_completion_tokens"], 100);
    assert_eq!(sent.body["seed"], 7);
    assert_eq!(sent.body["stop"], json!(["END"]));
    assert_eq!(sent.body["custom"], 1);
    assert!(
        sent.headers
            .iter()
            .any(|(n, v)| n == "x-variant" && v == "a"),
        "{:?}",
        sent.headers
    );
    assert_eq!(
        r.json()["content"][0]["text"],
        "mock reply to: Tell me about rust."
    );

    // The older spelling: a text block with `arguments`.
    let body = json!({
        "function_name": "greet",
        "input": {
            "system": { "assistant_name": "Bo" },
            "messages": [{ "role": "user", "content": [{ "type": "text", "arguments": { "topic": "tea" } }] }]
        }
    });
    assert_eq!(h.post("/inference", &body).await.status, 200);
    assert_eq!(
        system_and_user(&last_request(&h.mock).body).1,
        "Tell me about tea."
    );

    // The OpenAI route: a system template block and a user template block.
    let body = json!({
        "model": "tensorzero::function_name::greet",
        "messages": [
            { "role": "system", "content": [{ "type": "tensorzero::template", "name": "system", "arguments": { "assistant_name": "Cy" } }] },
            { "role": "user", "content": [{ "type": "tensorzero::template", "name": "user", "arguments": { "topic": "sql" } }] }
        ]
    });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["model"],
        "tensorzero::function_name::greet::variant_name::a"
    );
    let (system, user) = system_and_user(&last_request(&h.mock).body);
    assert_eq!(system, "Be brief.\n\nYou are Cy.");
    assert_eq!(user, "Tell me about sql.");

    // Raw text skips the template.
    let body = json!({
        "function_name": "greet",
        "input": {
            "system": { "assistant_name": "Di" },
            "messages": [{ "role": "user", "content": [{ "type": "raw_text", "value": "untouched" }] }]
        }
    });
    assert_eq!(h.post("/inference", &body).await.status, 200);
    assert_eq!(system_and_user(&last_request(&h.mock).body).1, "untouched");
}

#[tokio::test]
async fn inputs_that_break_a_schema_are_refused_before_any_model_call() {
    let h = start().await;
    let cases = [
        (
            json!({ "system": { "assistant_name": "Ada" }, "messages": [{ "role": "user", "content": [{ "type": "template", "name": "user", "arguments": { "topic": 7 } }] }] }),
            vec!["`user_schema`", "/topic"],
        ),
        (
            json!({ "system": { "assistant_name": "Ada" }, "messages": [{ "role": "user", "content": [{ "type": "template", "name": "user", "arguments": { "topic": "x" } }] }] }),
            vec!["`user_schema`", "/topic"],
        ),
        (
            json!({ "system": { "name": "Ada" }, "messages": [] }),
            vec!["`system_schema`"],
        ),
        (
            json!({ "system": { "assistant_name": "Ada" }, "messages": [{ "role": "user", "content": "plain text" }] }),
            vec!["`user_schema`", "Message 0 (user)"],
        ),
        (
            json!({ "system": "plain", "messages": [] }),
            vec!["`system_schema`"],
        ),
    ];
    for (input, expected) in cases {
        let r = h
            .post(
                "/inference",
                &json!({ "function_name": "greet", "input": input }),
            )
            .await;
        assert_eq!(r.status, 400, "{input}: {}", r.text());
        for e in expected {
            assert!(r.error().contains(e), "{input}: `{e}` not in {}", r.error());
        }
    }
    // Template arguments for a function without schema or such a template.
    let body = json!({ "function_name": "plain", "input": { "messages": [{ "role": "user", "content": [{ "type": "template", "name": "other", "arguments": {} }] }] } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error()
            .contains("no variant of this function has a `other` template"),
        "{}",
        r.error()
    );
    assert!(h.mock.requests().is_empty(), "no model was called");
}

#[tokio::test]
async fn a_template_without_schema_wraps_plain_text() {
    let h = start().await;
    let r = h.post("/inference", &call("plain", "hi there")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        system_and_user(&last_request(&h.mock).body).1,
        "<<hi there>>"
    );
}

#[tokio::test]
async fn weights_sample_by_episode_and_zero_weight_variants_only_run_when_pinned() {
    let h = start().await;
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    // A fixed set of episode ids: the sampling is a function of them, so this is repeatable.
    for i in 0..400u128 {
        let episode = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | i);
        let mut body = call("weighted", "x");
        body["episode_id"] = json!(episode);
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 200);
        *counts
            .entry(r.json()["variant_name"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        counts.get("z"),
        None,
        "weight 0 is never sampled: {counts:?}"
    );
    // Expected 300 of 400 for b (sd about 8.7).
    let b = counts["b"];
    assert!((260..=340).contains(&b), "{counts:?}");
    // The same episode sticks to its variant.
    let episode = Uuid::now_v7();
    let mut seen = std::collections::BTreeSet::<String>::new();
    for _ in 0..10 {
        let mut body = call("weighted", "x");
        body["episode_id"] = json!(episode);
        seen.insert(h.post("/inference", &body).await.json()["variant_name"].to_string());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    // Pinned, a weight-0 variant runs.
    let mut body = call("weighted", "x");
    body["variant_name"] = json!("z");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.json()["variant_name"], "z");
}

#[tokio::test]
async fn a_failed_variant_falls_back_unless_pinned() {
    let h = start().await;
    let r = h.post("/inference", &call("fallback", "x")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], "second");
    assert_eq!(h.mock.requests().len(), 2, "first (failed), then second");

    let mut body = call("fallback", "x");
    body["variant_name"] = json!("first");
    let r = h.post("/inference", &body).await;
    // Pinned, the error is not wrapped by sampling: all providers failed is a 500 (as in the
    // TensorZero Gateway; with sampling it is a 502), and the provider's own words are in it.
    assert_eq!(r.status, 500, "{}", r.text());
    let e = r.error();
    assert!(
        e.starts_with("All model providers failed to infer with errors:"),
        "{e}"
    );
    assert!(
        e.contains("Error from openai provider `mock` (HTTP 500): mock provider error 500"),
        "the provider, its status and its own message: {e}"
    );
    assert_eq!(h.mock.requests().len(), 3, "no fallback when pinned");
}

#[tokio::test]
async fn tools_round_trip_with_checked_arguments() {
    let h = start().await;
    let r = h
        .post("/inference", &call("tools", "weather in Paris?"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["finish_reason"], "tool_call");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_call");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["arguments"], json!({ "city": "Paris" }));
    assert_eq!(block["raw_arguments"], "{\"city\":\"Paris\"}");
    let sent = last_request(&h.mock).body;
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "lookup_place"]);
    assert_eq!(sent["tools"][1]["function"]["strict"], true);
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["parallel_tool_calls"], false);

    // The tool result goes back; the model sees the call and the result.
    let id = block["id"].as_str().unwrap();
    let body = json!({
        "function_name": "tools",
        "input": { "messages": [
            { "role": "user", "content": "weather in Paris?" },
            { "role": "assistant", "content": [{ "type": "tool_call", "id": id, "name": "get_weather", "arguments": { "city": "Paris" } }] },
            { "role": "user", "content": [{ "type": "tool_result", "id": id, "name": "get_weather", "result": "sunny, 21C" }] }
        ] },
        "tool_choice": "none"
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock).body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["id"], id);
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], id);
    assert_eq!(messages[2]["content"], "sunny, 21C");
    assert_eq!(sent["tool_choice"], "none");

    // Forced to `lookup_place`, the mock writes `{"city": ...}`, which breaks its schema:
    // the raw arguments come back, the parsed ones are null.
    let mut body = call("tools", "where?");
    body["tool_choice"] = json!({ "specific": "lookup_place" });
    let v = h.post("/inference", &body).await.json();
    let block = &v["content"][0];
    assert_eq!(block["name"], "lookup_place");
    assert_eq!(block["arguments"], Value::Null);
    assert_eq!(block["raw_arguments"], "{\"city\":\"Paris\"}");

    // allowed_tools narrows what the model sees; the model then calls a tool it was not offered.
    let mut body = call("tools", "where?");
    body["allowed_tools"] = json!(["lookup_place"]);
    let v = h.post("/inference", &body).await.json();
    let sent = last_request(&h.mock).body;
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1);
    assert_eq!(v["content"][0]["raw_name"], "get_weather");
    assert_eq!(v["content"][0]["name"], Value::Null, "not an offered tool");

    // additional_tools: a new one is offered and checked; a duplicate name is refused.
    let mut body = call("tools", "x");
    body["additional_tools"] = json!([{ "name": "get_weather", "description": "dup", "parameters": { "type": "object" } }]);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("two tools are named `get_weather`"),
        "{}",
        r.error()
    );
    let mut body = call("tools", "x");
    body["allowed_tools"] = json!([]);
    body["additional_tools"] = json!([{ "name": "get_weather", "description": "mine", "parameters": { "type": "object", "required": ["city"] } }]);
    let v = h.post("/inference", &body).await.json();
    assert_eq!(v["content"][0]["arguments"], json!({ "city": "Paris" }));
}

#[tokio::test]
async fn json_functions_parse_and_check_their_output() {
    let h = start().await;
    let r = h.post("/inference", &call("extract", "the answer?")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["variant_name"], "on");
    assert_eq!(v["output"]["raw"], "{\"answer\":42}");
    assert_eq!(v["output"]["parsed"], json!({ "answer": 42 }));
    assert!(v.get("content").is_none());
    assert_eq!(
        last_request(&h.mock).body["response_format"]["type"],
        "json_object"
    );

    let mut body = call("extract", "the answer?");
    body["variant_name"] = json!("strict");
    let v = h.post("/inference", &body).await.json();
    assert_eq!(v["output"]["parsed"], json!({ "answer": 42 }));
    let sent = last_request(&h.mock).body;
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(
        sent["response_format"]["json_schema"]["schema"]["required"],
        json!(["answer"])
    );

    // An inference-time schema the output breaks: raw is kept, parsed is null.
    let mut body = call("extract", "the answer?");
    body["output_schema"] = json!({ "type": "object", "properties": { "answer": { "type": "string" } }, "required": ["answer"] });
    let v = h.post("/inference", &body).await.json();
    assert_eq!(v["output"]["raw"], "{\"answer\":42}");
    assert_eq!(v["output"]["parsed"], Value::Null);

    // implicit_tool: a forced `respond` tool under the hood, turned back into JSON.
    let v = h.post("/inference", &call("locate", "where?")).await.json();
    assert_eq!(v["output"]["parsed"], json!({ "city": "Paris" }), "{v}");
    let sent = last_request(&h.mock).body;
    assert_eq!(sent["tool_choice"]["function"]["name"], "respond");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["required"],
        json!(["city"])
    );

    // The OpenAI route gives a json function's raw output as the message content.
    let body = json!({ "model": "tensorzero::function_name::extract", "messages": [{ "role": "user", "content": "x" }] });
    let v = h.post("/openai/v1/chat/completions", &body).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "{\"answer\":42}");
}

#[tokio::test]
async fn a_json_function_streams_raw_deltas() {
    let h = start().await;
    let mut body = call("extract", "stream it");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json_events();
    let raw: String = events.iter().filter_map(|e| e["raw"].as_str()).collect();
    assert_eq!(raw, "{\"answer\":42}");
    assert!(events.iter().all(|e| e.get("content").is_none()));
    assert!(events.last().unwrap()["usage"]["output_tokens"].is_number());
}

#[tokio::test]
async fn chain_of_thought_answers_with_the_response_part() {
    let h = start().await;
    let mut body = call("extract", "think");
    body["variant_name"] = json!("cot");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["output"]["parsed"], json!({ "answer": 42 }));
    assert_eq!(v["output"]["raw"], "{\"answer\":42}");
    let schema = &last_request(&h.mock).body["response_format"]["json_schema"]["schema"];
    assert_eq!(schema["required"], json!(["thinking", "response"]));
    assert_eq!(
        schema["properties"]["response"]["required"],
        json!(["answer"])
    );

    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("does not stream"), "{}", r.error());
}

#[tokio::test]
async fn best_of_n_runs_candidates_and_the_evaluator_picks() {
    let h = start().await;
    let r = h.post("/inference", &call("ensemble", "hello")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["variant_name"], "bon");
    // Candidates that answered: c1, c2 (c_broken failed, c_slow passed timeout_s); the
    // evaluator chose index 1.
    assert_eq!(v["content"][0]["text"], "mock reply to: C2: hello");
    let requests = h.mock.requests();
    let evaluator = requests
        .iter()
        .find(|r| r.body["model"] == "choose-1")
        .expect("the evaluator was called");
    let (system, _) = system_and_user(&evaluator.body);
    assert!(
        system.contains("<candidate index=\"0\">\nmock reply to: hello\n</candidate>"),
        "{system}"
    );
    assert!(
        system.contains("<candidate index=\"1\">\nmock reply to: C2: hello\n</candidate>"),
        "{system}"
    );
    assert!(!system.contains("index=\"2\""), "{system}");
    assert_eq!(evaluator.body["response_format"]["type"], "json_schema");
    // Usage is the sum of the two candidates that answered and the evaluator (the mock counts
    // whitespace-separated words: 4 + 5 + 4); the late candidate's is not in it.
    assert_eq!(v["usage"]["output_tokens"], 13, "{v}");

    // Streaming: the chosen answer arrives as a stream.
    let mut body = call("ensemble", "hello");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text: String = r
        .json_events()
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "mock reply to: C2: hello");
}

#[tokio::test]
async fn mixture_of_n_fuses_the_candidates() {
    let h = start().await;
    let mut body = call("ensemble", "hello");
    body["variant_name"] = json!("mon");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], "mon");
    let fuser = last_request(&h.mock).body;
    let (system, user) = system_and_user(&fuser);
    assert!(system.contains("<candidate index=\"0\">"), "{system}");
    assert!(system.contains("mock reply to: C2: hello"), "{system}");
    assert_eq!(user, "hello");

    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json_events();
    let text: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "mock reply to: hello");
}

#[tokio::test]
async fn dynamic_in_context_learning_without_a_store_is_refused_clearly_and_sampling_moves_on() {
    let h = start().await;
    let mut body = call("dicl", "hi");
    body["variant_name"] = json!("d");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 501, "{}", r.text());
    assert!(
        r.error()
            .contains("experimental_dynamic_in_context_learning"),
        "{}",
        r.error()
    );
    let r = h.post("/inference", &call("dicl", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], "fallback");
}

#[tokio::test]
async fn includes_read_only_inside_the_base_path() {
    let config = r#"
[gateway.template_filesystem_access]
base_path = "."

[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[functions.f]
type = "chat"
[functions.f.variants.inside]
type = "chat_completion"
model = "mock"
user_template = "templates/with_include.minijinja"
weight = 1
[functions.f.variants.escape]
type = "chat_completion"
model = "mock"
user_template = "templates/escape.minijinja"
weight = 0
"#;
    let h = Harness::start_with_files(
        MockProvider::start().await.unwrap(),
        config,
        &[
            (
                "templates/with_include.minijinja",
                "{% include 'templates/partials/header.txt' %}{{ user_text }}",
            ),
            ("templates/partials/header.txt", "HEADER "),
            (
                "templates/escape.minijinja",
                "{% include '../../etc/passwd' %}",
            ),
        ],
    )
    .await;
    let r = h.post("/inference", &call("f", "body")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        system_and_user(&last_request(&h.mock).body).1,
        "HEADER body"
    );
    let mut body = call("f", "body");
    body["variant_name"] = json!("escape");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("cannot include"), "{}", r.error());
}

#[tokio::test]
async fn templates_and_schemas_that_cannot_work_stop_start_up() {
    /// A config, the files beside it, and what the start-up error must say.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            r#"
[functions.f]
type = "chat"
user_schema = "user.json"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
"#,
            &[("user.json", r#"{"type": "object"}"#)],
            "`functions.f.variants.v.templates.user.path` (or `user_template`) is required",
        ),
        (
            r#"
[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
user_template = "user.minijinja"
"#,
            &[("user.minijinja", "{{ topic }}")],
            "uses the variables [topic]",
        ),
        (
            r#"
[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
system_template = "system.minijinja"
"#,
            &[("system.minijinja", "line\n{% if %}")],
            "system.minijinja",
        ),
        (
            r#"
[functions.f]
type = "json"
output_schema = "out.json"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
json_mode = "strict"
"#,
            &[("out.json", r#"{"type": "nonsense"}"#)],
            "`functions.f.output_schema`",
        ),
    ];
    for (toml, files, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        crate::harness::write_files(&dir, files);
        let path = dir.path().join("tensorzero.toml");
        std::fs::write(&path, toml).unwrap();
        let loaded = switchyard::config::LoadedConfig::from_files(path.to_str().unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
        let err = match switchyard::start(&loaded, "127.0.0.1:0".parse().unwrap()).await {
            Ok(_) => panic!("started with {toml}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expected), "`{expected}` not in: {err}");
    }
}
