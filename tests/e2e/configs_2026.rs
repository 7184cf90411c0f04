//! Configurations as TensorZero 2026.4 users write them: named templates and schemas
//! (`templates.NAME.path`, `schemas.NAME.path`) addressed by name on both routes, the
//! `experimental_best_of_n_sampling` tag, `json_mode = "tool"`, and `json_mode` optional.

use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::{Harness, last_request};

const CONFIG: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[functions.draft]
type = "chat"
schemas.system.path = "schemas/system.json"
schemas.greeting.path = "schemas/greeting.json"
[functions.draft.variants.v]
type = "chat_completion"
model = "mock"
templates.system.path = "templates/system.minijinja"
templates.greeting.path = "templates/greeting.minijinja"
templates.user.path = "templates/user.minijinja"

[functions.formatted]
type = "chat"
[functions.formatted.variants.v]
type = "chat_completion"
model = "mock"
json_mode = "on"

[functions.extract]
type = "json"
output_schema = "schemas/answer.json"
[functions.extract.variants.v]
type = "chat_completion"
model = "mock"
"#;

const FILES: &[(&str, &str)] = &[
    (
        "schemas/system.json",
        r#"{"type": "object", "properties": {"assistant_name": {"type": "string"}}, "required": ["assistant_name"]}"#,
    ),
    (
        "schemas/greeting.json",
        r#"{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}"#,
    ),
    (
        "schemas/answer.json",
        r#"{"type": "object", "properties": {"answer": {"type": "integer"}}}"#,
    ),
    (
        "templates/system.minijinja",
        "You are {{ assistant_name }}.",
    ),
    ("templates/greeting.minijinja", "Hello {{ name }}!"),
    ("templates/user.minijinja", "<<{{ user_text }}>>"),
];

async fn start() -> Harness {
    Harness::start_with_files(MockProvider::start().await.unwrap(), CONFIG, FILES).await
}

/// The texts of the messages the model was sent, role by role.
fn sent_messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("|"),
                _ => String::new(),
            };
            (m["role"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

#[tokio::test]
async fn named_templates_render_on_the_native_route() {
    let h = start().await;
    let body = json!({
        "function_name": "draft",
        "input": {
            "system": { "assistant_name": "Ada" },
            "messages": [
                { "role": "user", "content": [{ "type": "template", "name": "greeting", "arguments": { "name": "Ann" } }] },
                { "role": "assistant", "content": "Hi." },
                { "role": "user", "content": "plain words" }
            ]
        }
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock);
    assert_eq!(
        sent_messages(&sent.body),
        [
            ("system".to_owned(), "You are Ada.".to_owned()),
            ("user".to_owned(), "Hello Ann!".to_owned()),
            ("assistant".to_owned(), "Hi.".to_owned()),
            ("user".to_owned(), "<<plain words>>".to_owned()),
        ]
    );

    // Arguments that break the named schema are refused before any model call, naming it.
    let before = h.mock.requests().len();
    let mut wrong = body.clone();
    wrong["input"]["messages"][0]["content"][0]["arguments"] = json!({ "name": 5 });
    let r = h.post("/inference", &wrong).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`schemas.greeting.path`"), "{}", r.text());
    // A name that no variant has a template for is refused too.
    let mut unknown = body.clone();
    unknown["input"]["messages"][0]["content"][0]["name"] = json!("farewell");
    let r = h.post("/inference", &unknown).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`farewell` template"), "{}", r.text());
    assert_eq!(h.mock.requests().len(), before);
}

#[tokio::test]
async fn named_templates_render_on_the_openai_route() {
    let h = start().await;
    let body = json!({
        "model": "tensorzero::function_name::draft",
        "messages": [
            { "role": "system", "content": [{ "type": "tensorzero::template", "name": "system", "arguments": { "assistant_name": "Bo" } }] },
            { "role": "user", "content": [{ "type": "tensorzero::template", "name": "greeting", "arguments": { "name": "Cy" } }] }
        ]
    });
    let r = h.post("/openai/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock);
    assert_eq!(
        sent_messages(&sent.body),
        [
            ("system".to_owned(), "You are Bo.".to_owned()),
            ("user".to_owned(), "Hello Cy!".to_owned()),
        ]
    );
}

#[tokio::test]
async fn json_mode_is_optional_and_chat_variants_may_set_it() {
    let h = start().await;
    // A chat variant with `json_mode = "on"` asks the provider for JSON.
    let r = h
        .post(
            "/inference",
            &json!({ "function_name": "formatted", "input": { "messages": [{ "role": "user", "content": "x" }] } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        last_request(&h.mock).body["response_format"],
        json!({ "type": "json_object" })
    );
    // A json variant without `json_mode` is strict: the output schema goes to the provider.
    let r = h
        .post(
            "/inference",
            &json!({ "function_name": "extract", "input": { "messages": [{ "role": "user", "content": "x" }] } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let format = &last_request(&h.mock).body["response_format"];
    assert_eq!(format["type"], "json_schema", "{format}");
}

fn load(toml: &str, files: &[(&str, &str)]) -> Result<(), String> {
    load_full(toml, files).map(|_| ())
}

#[tokio::test]
async fn each_form_once_and_a_template_for_every_schema() {
    let files: &[(&str, &str)] = &[
        ("s.json", r#"{"type": "object"}"#),
        ("t.minijinja", "{{ user_text }}"),
    ];
    // Both forms for one role: the error names both keys.
    let e = load(
        r#"
[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
user_template = "t.minijinja"
templates.user.path = "t.minijinja"
"#,
        files,
    )
    .unwrap_err();
    assert!(
        e.contains("`functions.f.variants.v.templates.user`")
            && e.contains("`templates.user.path` and as `user_template`"),
        "{e}"
    );
    let e = load(
        r#"
[functions.f]
type = "chat"
user_schema = "s.json"
schemas.user.path = "s.json"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
templates.user.path = "t.minijinja"
"#,
        files,
    )
    .unwrap_err();
    assert!(
        e.contains("`schemas.user.path` and as `user_schema`"),
        "{e}"
    );
    // A missing file under the new form is located like the old ones.
    let e = load(
        r#"
[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
templates.other.path = "missing.minijinja"
"#,
        files,
    )
    .unwrap_err();
    assert!(
        e.contains("`functions.f.variants.v.templates.other.path`")
            && e.contains("missing.minijinja"),
        "{e}"
    );

    // A named schema without a template of its name in some variant stops start-up.
    let dir = tempfile::tempdir().unwrap();
    crate::harness::write_files(&dir, files);
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(
        &path,
        r#"
[functions.f]
type = "chat"
schemas.greeting.path = "s.json"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
"#,
    )
    .unwrap();
    let loaded = switchyard::config::LoadedConfig::from_files(path.to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let err = match switchyard::start(&loaded, "127.0.0.1:0".parse().unwrap()).await {
        Ok(_) => panic!("started without a `greeting` template"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`functions.f.variants.v.templates.greeting.path` is required")
            && err.contains("`schemas.greeting.path`"),
        "{err}"
    );

    // The tags and names of today load: `experimental_best_of_n_sampling`, `json_mode = "tool"`,
    // and the older spellings as aliases.
    for (tag, mode) in [
        ("experimental_best_of_n_sampling", "tool"),
        ("experimental_best_of_n", "implicit_tool"),
    ] {
        let toml = format!(
            r#"
[functions.j]
type = "json"
[functions.j.variants.c]
type = "chat_completion"
model = "openai::gpt-4o-mini"
json_mode = "{mode}"
[functions.j.variants.b]
type = "{tag}"
candidates = ["c"]
[functions.j.variants.b.evaluator]
model = "openai::gpt-4o-mini"
"#
        );
        load(&toml, files).unwrap_or_else(|e| panic!("{tag}/{mode}: {e}"));
    }
}

fn load_full(
    toml: &str,
    files: &[(&str, &str)],
) -> Result<switchyard::config::LoadedConfig, String> {
    let dir = tempfile::tempdir().unwrap();
    crate::harness::write_files(&dir, files);
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, toml).unwrap();
    switchyard::config::LoadedConfig::from_files(path.to_str().unwrap()).map_err(|e| e.to_string())
}

fn warned(loaded: &switchyard::config::LoadedConfig, text: &str) -> bool {
    loaded.warnings.iter().any(|w| w.message.contains(text))
}

/// The deprecations TensorZero 2026.4 warns about load with the same warnings and behave as
/// they do there.
#[test]
fn deprecated_keys_warn_and_behave_as_in_tensorzero() {
    let ensemble = |extra: &str| {
        format!(
            r#"
[functions.f]
type = "json"
[functions.f.variants.a]
type = "chat_completion"
model = "openai::gpt-4o-mini"
weight = 1
{extra}
[functions.f.variants.b]
type = "experimental_chain_of_thought"
model = "openai::gpt-4o-mini"
[functions.f.variants.bon]
type = "experimental_best_of_n_sampling"
candidates = ["a", "b"]
timeout_s = 2.5
[functions.f.variants.bon.evaluator]
model = "openai::gpt-4o-mini"
"#
        )
    };
    let loaded = load_full(&ensemble(""), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(&loaded, "`weight` (on variants `a`) is deprecated"),
        "{:#?}",
        loaded.warnings
    );
    assert!(
        warned(&loaded, "`experimental_chain_of_thought` is deprecated"),
        "{:#?}",
        loaded.warnings
    );
    assert!(
        warned(
            &loaded,
            "`functions.f.variants.bon.timeout_s`: is deprecated"
        ),
        "{:#?}",
        loaded.warnings
    );
    // `timeout_s` lands on every candidate as its non-streaming total and streaming first-token
    // limits (no default of its own any more).
    for candidate in ["a", "b"] {
        let t = loaded.config.functions["f"].variants()[candidate].timeouts();
        assert_eq!(t.non_streaming.total_ms, Some(2500), "{candidate}");
        assert_eq!(t.streaming.ttft_ms, Some(2500), "{candidate}");
    }
    // ... which fails when a candidate has timeouts of its own.
    let e = load_full(
        &ensemble("timeouts = { non_streaming = { total_ms = 1000 } }"),
        &[],
    )
    .unwrap_err();
    assert!(
        e.contains("`functions.f.variants.bon.timeout_s`")
            && e.contains("candidate `a` has `timeouts` of its own"),
        "{e}"
    );

    // `template_filesystem_access.enabled` is deprecated: includes follow `base_path` alone.
    let files: &[(&str, &str)] = &[("part.txt", "PART")];
    let loaded = load_full(
        "[gateway.template_filesystem_access]\nenabled = true\n",
        files,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(
            &loaded,
            "has no effect: template includes are on only when `base_path` is set"
        ),
        "{:#?}",
        loaded.warnings
    );
    assert_eq!(loaded.template_base_dir, None);
    let loaded = load_full(
        "[gateway.template_filesystem_access]\nbase_path = \".\"\n",
        files,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Resolved against the config file's directory (a temporary one, gone by now).
    let base = loaded.template_base_dir.unwrap();
    assert!(base.is_absolute(), "{base:?}");
}

/// Sections TensorZero 2026.4 users have that drive work outside the gateway, and the store
/// sections: they load (with TensorZero's rules for unknown keys) and are reported once.
#[test]
fn sections_outside_inference_load_and_are_reported() {
    let files: &[(&str, &str)] = &[
        ("judge.txt", "Is the answer polite?"),
        ("score.ts", "export default () => 1;"),
    ];
    let toml = r#"
[gateway]
observability.backend = "postgres"
observability.batch_writes = { max_rows_postgres = 50, write_queue_capacity = 10000 }
cache.enabled = true
cache.backend = "valkey"
cache.valkey.ttl_s = 3600

[clickhouse]
disable_automatic_migrations = true

[postgres]
connection_pool_size = 8
inference_retention_days = 30
inference_metadata_retention_days = 90
enabled = true
some_future_key = "ignored, as TensorZero ignores it"

[metrics.polite]
level = "inference"
optimize = "max"
type = "boolean"
description = "The judge found the answer polite."

[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
[functions.f.evaluators.exact]
type = "exact_match"
[functions.f.evaluators.polite]
type = "llm_judge"
output_type = "boolean"
optimize = "max"
description = "politeness"
include = { reference_output = true }
[functions.f.evaluators.polite.variants.judge]
type = "chat_completion"
model = "openai::gpt-4o-mini"
system_instructions = "judge.txt"
json_mode = "strict"
[functions.f.evaluators.polite.variants.best]
type = "experimental_best_of_n_sampling"
candidates = ["judge"]
evaluator = { model = "openai::gpt-4o-mini" }
[functions.f.evaluators.tools]
type = "tool_use"
behavior = "any_of"
tools = ["search"]
[functions.f.evaluators.format]
type = "regex"
must_match = "^[A-Z]"
[functions.f.evaluators.script]
type = "typescript"
typescript_file = "score.ts"
output_type = "float"
optimize = "min"

[evaluations.legacy]
type = "static"
function_name = "f"
evaluators.exact = { type = "exact_match", cutoff = 0.5 }

[optimizers.sft]
type = "openai_sft"
model = "gpt-4o-mini"
n_epochs = 2

[autopilot]
tool_whitelist = ["run_evaluation"]
"#;
    let loaded = load_full(toml, files).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(&loaded, "loaded, not used by the gateway")
            && warned(&loaded, "`functions.f.evaluators.polite`")
            && warned(&loaded, "`[optimizers]`")
            && warned(&loaded, "`[autopilot]`"),
        "{:#?}",
        loaded.warnings
    );
    for text in [
        "`[evaluations]` is deprecated",
        "`type = \"static\"` is deprecated",
        "`evaluations.legacy.evaluators.exact.cutoff`: is deprecated",
        "`postgres.enabled`: is deprecated and ignored",
        "the inference cache (`gateway.cache`) is not supported by switchyard yet",
    ] {
        assert!(warned(&loaded, text), "{text}: {:#?}", loaded.warnings);
    }
    assert_eq!(
        loaded.config.metrics["polite"].description.as_deref(),
        Some("The judge found the answer polite.")
    );
    assert_eq!(
        loaded
            .config
            .postgres
            .as_ref()
            .unwrap()
            .inference_data_retention_days,
        Some(30)
    );

    // Deliberate mistakes get errors where TensorZero errors.
    for (mistake, expected) in [
        ("[clickhouse]\ncluster = \"x\"\n", "unknown field `cluster`"),
        ("[autopilot]\nallow = []\n", "unknown field `allow`"),
        (
            "[functions.f]\ntype = \"chat\"\n[functions.f.evaluators.e]\ntype = \"tool_use\"\nbehavior = \"all_of\"\n",
            "need `tools`",
        ),
        (
            "[functions.f]\ntype = \"chat\"\n[functions.f.evaluators.e]\ntype = \"regex\"\n",
            "set `must_match`, `must_not_match` or both",
        ),
        (
            "[functions.f]\ntype = \"chat\"\n[functions.f.evaluators.e]\ntype = \"exact_match\"\nthreshold = 1\n",
            "unknown field `threshold`",
        ),
        (
            "[functions.f]\ntype = \"chat\"\n[functions.f.evaluators.e]\ntype = \"llm_judge\"\noutput_type = \"float\"\noptimize = \"max\"\n[functions.f.evaluators.e.variants.j]\ntype = \"chat_completion\"\nmodel = \"openai::gpt-4o-mini\"\njson_mode = \"strict\"\n",
            "missing field `system_instructions`",
        ),
        (
            "[optimizers.o]\ntype = \"magic\"\n",
            "unknown variant `magic`",
        ),
        (
            "[evaluations.\"a::b\"]\ntype = \"inference\"\nfunction_name = \"nope\"\n",
            "evaluation names may not contain `::`",
        ),
        (
            "[gateway.observability.batch_writes]\nwrite_queue_capacity = 0\n",
            "must be greater than 0",
        ),
    ] {
        let e = load_full(mistake, files).map(|_| ()).unwrap_err();
        assert!(e.contains(expected), "{mistake}: {e}");
    }
}

const EXPERIMENT: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[models.broken]
routing = ["mock"]
[models.broken.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "error-500"
api_key_location = "none"

[models.acme_ft]
namespace = "acme"
routing = ["mock"]
[models.acme_ft.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "acme-fine-tune"
api_key_location = "none"

[functions.exp]
type = "chat"
[functions.exp.experimentation]
type = "static"
candidate_variants = ["bad"]
fallback_variants = ["good", "also"]
[functions.exp.experimentation.namespaces.acme]
type = "static"
candidate_variants = ["tenant"]
fallback_variants = ["good"]
[functions.exp.variants.bad]
type = "chat_completion"
model = "broken"
[functions.exp.variants.good]
type = "chat_completion"
model = "mock"
[functions.exp.variants.also]
type = "chat_completion"
model = "mock"
[functions.exp.variants.tenant]
type = "chat_completion"
model = "acme_ft"
namespace = "acme"
"#;

fn ask(namespace: Option<&str>) -> Value {
    let mut body = json!({ "function_name": "exp", "input": { "messages": [{ "role": "user", "content": "hi" }] } });
    if let Some(ns) = namespace {
        body["namespace"] = json!(ns);
    }
    body
}

#[tokio::test]
async fn static_experimentation_falls_back_in_order_and_namespaces_route_to_their_variants() {
    let h = Harness::start_with_files(MockProvider::start().await.unwrap(), EXPERIMENT, &[]).await;
    // The only candidate fails; the first fallback answers.
    let r = h.post("/inference", &ask(None)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], "good");
    let models: Vec<String> = h
        .mock
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, ["error-500", "mock-model"]);

    // The namespace's own table: its variant and its model.
    let r = h.post("/inference", &ask(Some("acme"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], "tenant");
    assert_eq!(last_request(&h.mock).body["model"], "acme-fine-tune");
    // A namespace without a table of its own samples the base table.
    let r = h.post("/inference", &ask(Some("globex"))).await;
    assert_eq!(r.json()["variant_name"], "good", "{}", r.text());

    // The same on the OpenAI route, with `tensorzero::namespace`.
    let r = h
        .post(
            "/openai/v1/chat/completions",
            &json!({
                "model": "tensorzero::function_name::exp",
                "messages": [{ "role": "user", "content": "hi" }],
                "tensorzero::namespace": "acme"
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_request(&h.mock).body["model"], "acme-fine-tune");

    // A namespaced model is refused to requests of another namespace (or none).
    let before = h.mock.requests().len();
    for namespace in [None, Some("globex")] {
        let mut body = json!({ "model_name": "acme_ft", "input": { "messages": [{ "role": "user", "content": "hi" }] } });
        if let Some(ns) = namespace {
            body["namespace"] = json!(ns);
        }
        let r = h.post("/inference", &body).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.text().contains("belongs to namespace `acme`"),
            "{}",
            r.text()
        );
    }
    // Namespaces are names: not empty, not `tensorzero::`.
    for bad in ["", "tensorzero::x"] {
        let r = h.post("/inference", &ask(Some(bad))).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
    }
    assert_eq!(h.mock.requests().len(), before);
}

#[test]
fn experimentation_mistakes_are_config_errors() {
    let base = r#"
[models.acme_ft]
namespace = "acme"
routing = ["p"]
[models.acme_ft.providers.p]
type = "openai"
model_name = "x"
api_key_location = "none"
[functions.f]
type = "chat"
[functions.f.variants.a]
type = "chat_completion"
model = "openai::gpt-4o-mini"
[functions.f.variants.t]
type = "chat_completion"
model = "acme_ft"
namespace = "acme"
"#;
    for (extra, expected) in [
        (
            "[functions.f.experimentation]\ntype = \"static\"\ncandidate_variants = [\"t\"]\n",
            "variant `t` belongs to namespace `acme`, so only `experimentation.namespaces.acme` may list it",
        ),
        (
            "[functions.f.experimentation]\ntype = \"static\"\ncandidate_variants = [\"nope\"]\n",
            "variant `nope` is not a variant of this function",
        ),
        (
            "[functions.f.experimentation]\ntype = \"static\"\ncandidate_variants = { a = -1.0 }\n",
            "weights must be finite, non-negative numbers",
        ),
        (
            "[functions.f.experimentation]\ntype = \"adaptive\"\nmetric = \"missing\"\ncandidate_variants = [\"a\"]\n",
            "metric `missing` is not defined",
        ),
        (
            "[functions.f.experimentation]\ntype = \"static\"\ncandidate_variants = [\"a\"]\n[functions.f.experimentation.namespaces.\"tensorzero::x\"]\ntype = \"static\"\ncandidate_variants = [\"a\"]\n",
            "uses the reserved prefix `tensorzero::`",
        ),
    ] {
        let e = load_full(&format!("{base}{extra}"), &[])
            .map(|_| ())
            .unwrap_err();
        assert!(e.contains(expected), "{extra}: {e}");
    }
    // `weight` and `[experimentation]` together.
    let e = load_full(
        &format!(
            "{}\n[functions.g]\ntype = \"chat\"\n[functions.g.variants.a]\ntype = \"chat_completion\"\nmodel = \"openai::gpt-4o-mini\"\nweight = 1\n[functions.g.experimentation]\ntype = \"static\"\ncandidate_variants = [\"a\"]\n",
            base
        ),
        &[],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(e.contains("sampling is set in one place"), "{e}");
    // A variant without a namespace whose model has one, reachable from the base table.
    let e = load_full(
        &base.replace(
            "model = \"acme_ft\"\nnamespace = \"acme\"",
            "model = \"acme_ft\"",
        ),
        &[],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(e.contains("which belongs to namespace `acme`"), "{e}");
    // Legacy types load with their warnings.
    let loaded = load_full(
        &format!(
            "{base}[metrics.m]\nlevel = \"inference\"\noptimize = \"max\"\ntype = \"boolean\"\n[functions.f.experimentation]\ntype = \"track_and_stop\"\nmetric = \"m\"\ncandidate_variants = [\"a\"]\n"
        ),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(&loaded, "`track_and_stop` is deprecated"),
        "{:#?}",
        loaded.warnings
    );
    assert!(
        !warned(&loaded, "sampled uniformly"),
        "adaptive experiments work now: {:#?}",
        loaded.warnings
    );
}

/// Unknown keys are treated table by table as TensorZero treats them: ignored (with a warning
/// naming each) where it ignores them, an error where it errors; and a rate-limit key
/// switchyard cannot enforce is always an error.
#[test]
fn unknown_keys_follow_tensorzero_table_by_table() {
    let loaded = load_full(
        r#"
[rate_limiting]
enabled = true
future_option = 1
[[rate_limiting.rules]]
model_inferences_per_minute = 10
always = true
note = "team A"

[object_storage]
type = "filesystem"
path = "/tmp"
compression = "zstd"

[provider_types.openai.defaults]
api_key_location = "env::OPENAI_API_KEY"
organization = "x"

[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "openai::gpt-4o-mini"
retries = { num_retries = 1, jitter = true }
"#,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for key in [
        "`rate_limiting.future_option`",
        "`rate_limiting.rules[0].note`",
        "`object_storage.compression`",
        "`provider_types.openai.defaults.organization`",
        "`functions.f.variants.v.retries.jitter`",
    ] {
        assert!(
            loaded.warnings.iter().any(|w| w.message.contains(key)
                && w.message.contains("ignored, as TensorZero ignores it")),
            "{key}: {:#?}",
            loaded.warnings
        );
    }
    for (toml, expected) in [
        // Where TensorZero errors, so does switchyard, with the path, line and valid keys.
        ("[gateway]\ndebugg = true\n", "unknown field `debugg`"),
        (
            "[models.m]\nrouting = []\nprovider = {}\n",
            "unknown field `provider`",
        ),
        // A limit that cannot be enforced is refused rather than ignored.
        (
            "[[rate_limiting.rules]]\ntokens_per_fortnight = 5\nalways = true\n",
            "`tokens_per_fortnight` is not a limit",
        ),
    ] {
        let e = load_full(toml, &[]).map(|_| ()).unwrap_err();
        assert!(e.contains(expected), "{toml}: {e}");
    }
    let e = load_full("[gateway]\ndebugg = true\n", &[])
        .map(|_| ())
        .unwrap_err();
    assert!(e.contains("tensorzero.toml:2:1"), "{e}");
}

/// A streaming total below the first-token limit only warns, as in TensorZero.
#[test]
fn a_stream_total_below_its_first_token_limit_warns() {
    let loaded = load_full(
        "[models.m]\nrouting = [\"p\"]\ntimeouts = { streaming = { ttft_ms = 500, total_ms = 100 } }\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(
            &loaded,
            "`streaming.total_ms` = 100 ms is below `streaming.ttft_ms` = 500 ms"
        ),
        "{:#?}",
        loaded.warnings
    );
}

/// Provider `cost`, `batch_cost` and embedding-provider `cost` load in every form TensorZero
/// takes (`batch_cost` is said to be unused: switchyard serves no batch inference); malformed
/// entries are errors.
#[test]
fn cost_tables_load_and_malformed_entries_are_refused() {
    let model = |cost: &str| {
        format!(
            "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n{cost}\n"
        )
    };
    let loaded = load_full(
        &format!(
            "{}\n[embedding_models.e]\nrouting = [\"p\"]\n[embedding_models.e.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\ncost = [{{ pointer = \"/usage/prompt_tokens\", cost_per_million = 0.02 }}]\n",
            model(
                r#"cost = [
  { pointer = "/usage/prompt_tokens", cost_per_million = 3.0 },
  { pointer_nonstreaming = "/usage/completion_tokens", pointer_streaming = "/usage/completion_tokens", cost_per_million = 15.0, required = true },
  { pointer = "/usage/prompt_tokens_details/cached_tokens", cost_per_million = -1.5 },
  { pointer = "/usage/web_searches", cost_per_unit = 0.01 },
]
batch_cost = [{ pointer = "/usage/prompt_tokens", cost_per_million = 1.5 }]"#
            )
        ),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(
            &loaded,
            "`models.m.providers.p.batch_cost`: is checked and kept, but not used"
        ),
        "{:#?}",
        loaded.warnings
    );
    assert!(
        !warned(&loaded, "`models.m.providers.p.cost`"),
        "cost is computed: {:#?}",
        loaded.warnings
    );
    assert_eq!(loaded.config.models["m"].providers["p"].cost.len(), 4);
    for (cost, expected) in [
        (
            "cost = [{ cost_per_million = 1.0 }]",
            "set `pointer`, or both",
        ),
        (
            "cost = [{ pointer = \"/a\", cost_per_million = 1.0, cost_per_unit = 1.0 }]",
            "exactly one of `cost_per_million` and `cost_per_unit`",
        ),
        (
            "cost = [{ pointer = \"usage\", cost_per_unit = 1.0 }]",
            "is not a JSON Pointer",
        ),
        (
            "batch_cost = [{ pointer_nonstreaming = \"/a\", pointer_streaming = \"/a\", cost_per_unit = 1.0 }]",
            "takes a single `pointer`",
        ),
        (
            "cost = [{ pointer = \"/a\", cost_per_unit = 1.0, per = 2 }]",
            "unknown field `per`",
        ),
    ] {
        let e = load_full(&model(cost), &[]).map(|_| ()).unwrap_err();
        assert!(e.contains(expected), "{cost}: {e}");
    }
}

/// Provider keys of TensorZero 2026 that switchyard reads without acting on, and embedding
/// providers' `extra_headers`, which it applies.
#[tokio::test]
async fn provider_keys_of_today_load_and_embedding_headers_apply() {
    let loaded = load_full(
        r#"
[models.m]
routing = ["a", "f"]
[models.m.providers.a]
type = "anthropic"
model_name = "claude"
api_key_location = "none"
beta_structured_outputs = true
discard_unknown_chunks = true
[models.m.providers.f]
type = "fireworks"
model_name = "x"
api_key_location = "none"
parse_think_blocks = true
"#,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for key in ["beta_structured_outputs", "parse_think_blocks"] {
        assert!(
            warned(
                &loaded,
                &format!(".{key}`: is deprecated in TensorZero and ignored")
            ),
            "{key}: {:#?}",
            loaded.warnings
        );
    }
    let e = load_full(
        "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\nparse_think_blocks = true\n",
        &[],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(e.contains("is not a key of `openai` providers"), "{e}");

    let h = Harness::start_with_files(
        MockProvider::start().await.unwrap(),
        r#"
[embedding_models.e]
routing = ["p"]
[embedding_models.e.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "text-embedding-mock"
api_key_location = "none"
extra_headers = [{ name = "x-team", value = "search" }]
"#,
        &[],
    )
    .await;
    let r = embed(&h, "e").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_request(&h.mock).header("x-team"), Some("search"));
}

/// `POST /openai/v1/embeddings` of `"hi"` with embedding model `model`.
async fn embed(h: &Harness, model: &str) -> crate::harness::Reply {
    h.post(
        "/openai/v1/embeddings",
        &json!({ "model": format!("tensorzero::embedding_model_name::{model}"), "input": "hi" }),
    )
    .await
}

/// Azure embedding providers: `endpoint` + `deployment_id`, the key in `api-key`.
#[tokio::test]
async fn azure_embedding_providers_work() {
    let keys = tempfile::tempdir().unwrap();
    let key = crate::harness::key_file(&keys, "azure.key", "azure-embedding-key");
    let h = Harness::start_with_files(
        MockProvider::start().await.unwrap(),
        &format!(
            r#"
[embedding_models.e]
routing = ["az"]
[embedding_models.e.providers.az]
type = "azure"
endpoint = "{{mock}}"
deployment_id = "embed-small"
api_key_location = "path::{key}"
"#
        ),
        &[],
    )
    .await;
    let r = embed(&h, "e").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock);
    assert!(
        sent.path
            .ends_with("/openai/deployments/embed-small/embeddings?api-version=2025-04-01-preview"),
        "{}",
        sent.path
    );
    assert_eq!(sent.header("api-key"), Some("azure-embedding-key"));
    assert_eq!(sent.header("authorization"), None);
    // Its keys are required.
    let e = load_full(
        "[embedding_models.e]\nrouting = [\"az\"]\n[embedding_models.e.providers.az]\ntype = \"azure\"\nendpoint = \"https://x.openai.azure.com\"\n",
        &[],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(e.contains("needs `deployment_id`"), "{e}");
}

/// `[gateway]` keys of TensorZero 2026 load: `include_content` (warned as not built),
/// `unstable_disable_feedback_target_validation`, `bind_address`, the auth cache, the overhead
/// buckets; and the newer credential and timeout forms elsewhere.
#[test]
fn gateway_keys_of_today_load() {
    let loaded = load_full(
        r#"
[gateway]
bind_address = "0.0.0.0:3000"
unstable_disable_feedback_target_validation = true
export.otlp.traces.include_content = true
auth.cache.enabled = true
auth.cache.ttl_ms = 1000
metrics.tensorzero_inference_latency_overhead_seconds_buckets = [0.001, 0.01, 0.1]

[provider_types.google_ai_studio_gemini.defaults]
api_key_location = "env::GOOGLE_AI_STUDIO_API_KEY"
[provider_types.vllm.defaults]
api_key_location = "env::VLLM_API_KEY"

[models.m]
routing = ["p"]
skip_relay = true
timeouts = { streaming = { total_ms = 60000, ttft_ms = 1000 } }
[models.m.providers.p]
type = "openai"
model_name = "x"
api_key_location = { default = "dynamic::k", fallback = "env::OPENAI_API_KEY" }
"#,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warned(
            &loaded,
            "content attributes on trace spans (`include_content`) is not supported by switchyard yet"
        ),
        "{:#?}",
        loaded.warnings
    );
}

/// `reasoning_format` (Groq) and `prompt_mode` (Mistral) go to the provider with every call,
/// and belong to their own types only.
#[tokio::test]
async fn groq_reasoning_format_and_mistral_prompt_mode_are_sent() {
    let h = Harness::start_with_files(
        MockProvider::start().await.unwrap(),
        r#"
[models.g]
routing = ["p"]
[models.g.providers.p]
type = "groq"
api_base = "{mock}"
model_name = "qwen"
api_key_location = "none"
reasoning_format = "parsed"
[models.m]
routing = ["p"]
[models.m.providers.p]
type = "mistral"
api_base = "{mock}"
model_name = "magistral"
api_key_location = "none"
prompt_mode = "reasoning"
"#,
        &[],
    )
    .await;
    let ask = |model: &str| json!({ "model_name": model, "input": { "messages": [{ "role": "user", "content": "hi" }] } });
    let r = h.post("/inference", &ask("g")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_request(&h.mock).body["reasoning_format"], "parsed");
    let r = h.post("/inference", &ask("m")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_request(&h.mock).body["prompt_mode"], "reasoning");
    let e = load_full(
        "[models.x]\nrouting = [\"p\"]\n[models.x.providers.p]\ntype = \"xai\"\nmodel_name = \"grok\"\napi_key_location = \"none\"\nreasoning_format = \"parsed\"\n",
        &[],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        e.contains("is a key of `groq` providers, not of `xai` ones"),
        "{e}"
    );
}

/// `content_type_overrides` on `openai` providers: how inline files of a MIME type are sent.
#[tokio::test]
async fn openai_content_type_overrides_choose_the_part() {
    let h = Harness::start_with_files(
        MockProvider::start().await.unwrap(),
        r#"
[models.o]
routing = ["p"]
[models.o.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"
content_type_overrides = { "application/pdf" = "image_url", "audio/mpeg" = "input_audio" }
"#,
        &[],
    )
    .await;
    let file = |mime: &str| json!({ "type": "file", "file_type": "base64", "mime_type": mime, "data": "QUJD" });
    let body = json!({
        "model_name": "o",
        "input": { "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "read these" },
            file("application/pdf"), file("audio/mpeg"), file("text/csv")
        ] }] }
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let parts = last_request(&h.mock).body["messages"][0]["content"].clone();
    assert_eq!(
        parts[1],
        json!({ "type": "image_url", "image_url": { "url": "data:application/pdf;base64,QUJD" } })
    );
    assert_eq!(
        parts[2],
        json!({ "type": "input_audio", "input_audio": { "data": "QUJD", "format": "mp3" } })
    );
    assert_eq!(
        parts[3],
        json!({ "type": "file", "file": { "file_data": "data:text/csv;base64,QUJD" } })
    );
}
