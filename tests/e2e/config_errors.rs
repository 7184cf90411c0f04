//! Configuration errors name the file, the line and the TOML path, and say what to fix.

use switchyard::config::LoadedConfig;

fn load(files: &[(&str, &str)]) -> Result<LoadedConfig, String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let pattern = if files.len() == 1 {
        dir.path().join(files[0].0)
    } else {
        dir.path().join("*.toml")
    };
    let result = LoadedConfig::from_files(pattern.to_str().unwrap()).map_err(|e| e.to_string());
    // Keep the directory alive until the files are read.
    drop(dir);
    result
}

const MODEL: &str = "[models.x]\nrouting = [\"a\"]\n[models.x.providers.a]\ntype = \"openai\"\nmodel_name = \"gpt\"\n";

#[test]
fn unknown_key_names_file_line_and_path() {
    let text = "[models.x]\nroutng = [\"a\"]\nrouting = [\"a\"]\n[models.x.providers.a]\ntype = \"openai\"\nmodel_name = \"gpt\"\n";
    let e = load(&[("tensorzero.toml", text)]).unwrap_err();
    assert!(e.contains("tensorzero.toml:2:1"), "{e}");
    assert!(e.contains("`models.x.routng`"), "{e}");
    assert!(
        e.contains("unknown field `routng`, expected one of `routing`"),
        "{e}"
    );
}

#[test]
fn unknown_key_inside_a_provider_is_located() {
    let text = "[models.x]\nrouting = [\"a\"]\n[models.x.providers.a]\ntype = \"openai\"\nmodel_nme = \"gpt\"\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(e.contains("c.toml:5:1") && e.contains("model_nme"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = "[gateway]\ndebug = \"yes\"\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(
        e.contains("c.toml:2:1")
            && e.contains("`gateway.debug`")
            && e.contains("expected a boolean"),
        "{e}"
    );
}

#[test]
fn invalid_toml_is_located() {
    let e = load(&[("c.toml", "[models.x\n")]).unwrap_err();
    assert!(e.contains("invalid TOML") && e.contains("c.toml:1:"), "{e}");
}

#[test]
fn semantic_errors_say_what_to_fix() {
    let text = r#"
[gateway]
global_outbound_http_timeout_ms = 1000

[models.x]
routing = ["a", "missing"]
timeouts = { non_streaming = { total_ms = 5000 } }
[models.x.providers.a]
type = "openai"
model_name = "gpt"

[models."openai::sneaky"]
routing = ["a"]
[models."openai::sneaky".providers.a]
type = "openai"
model_name = "gpt"

[functions.f]
type = "chat"
[functions.f.variants.v]
type = "chat_completion"
model = "nonexistent"
json_mode = "on"
system_template = "missing.minijinja"

[functions.j]
type = "json"
[functions.j.variants.v]
type = "chat_completion"
model = "x"

[metrics.comment]
level = "inference"
optimize = "max"
type = "boolean"

[[rate_limiting.rules]]
model_inferences_per_minute = 10
priority = 1
always = true
"#;
    let e = load(&[("c.toml", text)]).unwrap_err();
    for expected in [
        "provider `missing` is not defined",
        "uses the reserved prefix `openai::`",
        "`non_streaming.total_ms` = 5000 ms is larger than `gateway.global_outbound_http_timeout_ms` = 1000 ms",
        "model `nonexistent` is not defined",
        "template file",
        "`comment` is reserved",
        "set `priority` or `always = true`, not both",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in:\n{e}");
    }
    assert!(e.contains("c.toml:6:1: `models.x.routing`"), "{e}");
}

#[test]
fn rate_limit_rules_are_checked() {
    let text = r#"
[[rate_limiting.rules]]
tokens_per_hour = { capacity = 10 }
priority = 1
"#;
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(e.contains("missing field `refill_rate`"), "{e}");
    let text = r#"
[[rate_limiting.rules]]
model_inferences_per_minute = 10
always = true
scope = [{ tag_key = "user", tag_value = "tensorzero::every" }]
[[rate_limiting.rules]]
tokens_per_minute = 10
priority = 2
scope = [{ api_key_public_id = "short" }]
"#;
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(
        e.contains("`rate_limiting.rules[0].scope[0]`") && e.contains("tensorzero::each"),
        "{e}"
    );
    assert!(e.contains("12-character public id"), "{e}");
}

#[test]
fn globs_merge_files_and_refuse_conflicts() {
    let a = MODEL;
    let b = "[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"x\"\n";
    let loaded = load(&[("a.toml", a), ("b.toml", b)]).unwrap();
    assert!(loaded.config.models.contains_key("x") && loaded.config.functions.contains_key("f"));
    assert_eq!(loaded.sources.paths().count(), 2);

    let clash = "[models.x]\nrouting = [\"a\"]\n";
    let e = load(&[("a.toml", a), ("b.toml", clash)]).unwrap_err();
    assert!(
        e.contains("`models.x.routing`")
            && e.contains("more than one file")
            && e.contains("a.toml:2")
            && e.contains("b.toml:2"),
        "{e}"
    );
}

#[test]
fn paths_are_relative_to_the_file_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf/tools")).unwrap();
    std::fs::write(
        dir.path().join("conf/tools/weather.json"),
        r#"{"type":"object"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf/tensorzero.toml"),
        "[tools.weather]\ndescription = \"w\"\nparameters = \"tools/weather.json\"\n",
    )
    .unwrap();
    let loaded =
        LoadedConfig::from_files(dir.path().join("conf/tensorzero.toml").to_str().unwrap())
            .unwrap();
    assert!(loaded.config.tools["weather"].parameters.is_file());
}

#[test]
fn unsupported_sections_load_with_warnings() {
    let text = format!(
        "{MODEL}\n[[rate_limiting.rules]]\nmodel_inferences_per_minute = 5\npriority = 0\nunknown_key = 1\n"
    );
    let loaded = load(&[("c.toml", &text)]).unwrap();
    let warnings: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        warnings.iter().any(|w| w.contains("unknown_key")),
        "no warning about the ignored key: {warnings:#?}"
    );
    // Both kinds of object storage work: nothing to warn about.
    for storage in [
        "type = \"filesystem\"\npath = \"/tmp\"",
        "type = \"s3_compatible\"\nbucket_name = \"b\"\nregion = \"eu-west-1\"",
    ] {
        let text = format!("{MODEL}\n[object_storage]\n{storage}\n");
        let loaded = load(&[("c.toml", &text)]).unwrap();
        assert!(
            !loaded.warnings.iter().any(|w| w.message.contains("object")),
            "{:#?}",
            loaded.warnings
        );
    }
}

#[test]
fn every_section_of_the_reference_parses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), "{}").unwrap();
    std::fs::write(dir.path().join("t.minijinja"), "hi").unwrap();
    let text = r#"
[gateway]
base_path = "/gw"
bind_address = "127.0.0.1:3100"
debug = true
disable_pseudonymous_usage_analytics = true
fetch_and_encode_input_files_before_inference = false
global_outbound_http_timeout_ms = 60000
unstable_error_json = false
export.otlp.traces.enabled = false
export.otlp.traces.format = "openinference"
export.otlp.traces.extra_headers = { "x-team" = "a" }
observability.enabled = false
observability.async_writes = false
observability.batch_writes = { enabled = true, flush_interval_ms = 50, max_rows = 100 }
observability.disable_automatic_migrations = true
template_filesystem_access = { enabled = false }
auth.enabled = false
auth.cache = { enabled = true, ttl_ms = 500 }
metrics.tensorzero_inference_latency_overhead_seconds_buckets = [0.001, 0.01]

[gateway.relay]
gateway_url = "http://relay:3000"
api_key_location = { default = "env::RELAY_KEY", fallback = "none" }

[models.all]
routing = ["openai", "azure", "anthropic", "bedrock", "sagemaker", "vertex_g", "vertex_a", "gemini", "vllm", "tgi", "sglang", "groq"]
skip_relay = true
timeouts = { non_streaming = { total_ms = 10000 }, streaming = { ttft_ms = 3000 } }
[models.all.providers.openai]
type = "openai"
model_name = "gpt-4o"
api_key_location = "none"
extra_body = [{ pointer = "/x", value = 1 }, { pointer = "/y", delete = true }]
extra_headers = [{ name = "x-a", value = "b" }, { name = "x-c", delete = true }]
[models.all.providers.azure]
type = "azure"
deployment_id = "d"
endpoint = "https://example.openai.azure.com"
api_key_location = "none"
[models.all.providers.anthropic]
type = "anthropic"
model_name = "claude"
[models.all.providers.bedrock]
type = "aws_bedrock"
model_id = "anthropic.claude"
region = "us-east-1"
allow_auto_detect_region = false
[models.all.providers.sagemaker]
type = "aws_sagemaker"
endpoint_name = "e"
hosted_provider = "tgi"
model_name = "m"
region = "us-east-1"
[models.all.providers.vertex_g]
type = "gcp_vertex_gemini"
model_id = "gemini-2.5"
location = "us-central1"
project_id = "p"
[models.all.providers.vertex_a]
type = "gcp_vertex_anthropic"
model_id = "claude-sonnet-4-5@20250929"
location = "us-east5"
project_id = "p"
credential_location = "file::/creds.json"
[models.all.providers.gemini]
type = "google_ai_studio_gemini"
model_name = "gemini-2.5-flash"
[models.all.providers.vllm]
type = "vllm"
api_base = "http://vllm:8000/v1/"
model_name = "llama"
api_key_location = "none"
[models.all.providers.tgi]
type = "tgi"
api_base = "http://tgi:8080/v1/"
[models.all.providers.sglang]
type = "sglang"
api_base = "http://sglang:30000/v1/"
model_name = "m"
[models.all.providers.groq]
type = "groq"
model_name = "llama"
api_key_location = "dynamic::groq"

[embedding_models.emb]
routing = ["openai"]
timeout_ms = 1000
[embedding_models.emb.providers.openai]
type = "openai"
model_name = "text-embedding-3-small"
api_key_location = "none"

[provider_types.openai.defaults]
api_key_location = "dynamic::openai_api_key"
[provider_types.gcp_vertex_gemini.defaults]
credential_location = "path_from_env::GCP_PATH"
[provider_types.gcp_vertex_gemini.batch]
storage_type = "cloud_storage"
input_uri_prefix = "gs://in/"
output_uri_prefix = "gs://out/"
[provider_types.google_ai_studio.defaults]
api_key_location = "env::GEMINI_KEY"

[tools.weather]
description = "Weather"
parameters = "schema.json"
strict = true
name = "get_weather"

[functions.chat]
type = "chat"
description = "a chat function"
system_schema = "schema.json"
tools = ["weather"]
tool_choice = { specific = "weather" }
parallel_tool_calls = false
[functions.chat.variants.base]
type = "chat_completion"
model = "all"
weight = 1.0
system_template = "t.minijinja"
temperature = 0.2
top_p = 0.9
max_tokens = 100
presence_penalty = 0.1
frequency_penalty = 0.1
seed = 1
stop_sequences = ["x"]
retries = { num_retries = 2, max_delay_s = 5 }
extra_body = [{ pointer = "/z", value = "v" }]
[functions.chat.variants.timed]
type = "chat_completion"
model = "all"
timeouts = { non_streaming = { total_ms = 9000 } }
[functions.chat.variants.bon]
type = "experimental_best_of_n"
candidates = ["base", "base"]
timeout_s = 30
evaluator = { model = "openai::gpt-4o-mini" }
[functions.chat.variants.mix]
type = "experimental_mixture_of_n"
candidates = ["base"]
fuser = { model = "openai::gpt-4o-mini" }
[functions.chat.variants.dicl]
type = "experimental_dynamic_in_context_learning"
embedding_model = "emb"
k = 3
model = "openai::gpt-4o-mini"

[functions.json]
type = "json"
output_schema = "schema.json"
[functions.json.variants.cot]
type = "experimental_chain_of_thought"
model = "all"
json_mode = "implicit_tool"

[metrics.accuracy]
level = "episode"
optimize = "max"
type = "float"

[rate_limiting]
enabled = true
[[rate_limiting.rules]]
model_inferences_per_second = 10
tokens_per_month = { capacity = 1000000, refill_rate = 500000 }
always = true
[[rate_limiting.rules]]
tokens_per_day = 100000
priority = 3
scope = [{ tag_key = "user_id", tag_value = "tensorzero::each" }, { api_key_public_id = "tensorzero::each" }]

[object_storage]
type = "s3_compatible"
endpoint = "http://minio:9000"
bucket_name = "b"
region = "us-east-1"
allow_http = true
"#;
    std::fs::write(dir.path().join("c.toml"), text).unwrap();
    let loaded = LoadedConfig::from_files(dir.path().join("c.toml").to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.models["all"].providers.len(), 12);
    assert_eq!(loaded.config.functions["chat"].variants().len(), 5);
    assert_eq!(loaded.config.rate_limiting.rules.len(), 2);
    // What loads but does nothing yet is said: batch inference, deprecated keys, ...
    assert!(loaded.warnings.len() >= 2, "{:#?}", loaded.warnings);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("batch inference is not supported")),
        "{:#?}",
        loaded.warnings
    );
}

#[test]
fn wrong_types_inside_tagged_tables_point_at_the_key() {
    let text = "[functions.f]\ntype = \"chat\"\n\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"openai::gpt\"\ntemperature = \"hot\"\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(
        e.contains("c.toml:7:1: `functions.f.variants.v.temperature`")
            && e.contains("expected f64"),
        "{e}"
    );

    let text = "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = 5\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(
        e.contains("c.toml:5:1: `models.m.providers.p.model_name`"),
        "{e}"
    );

    let text = "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\ntimeouts = { non_streaming = { total_ms = \"soon\" } }\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(
        e.contains("`models.m.providers.p.timeouts.non_streaming.total_ms`"),
        "{e}"
    );

    let text = "[functions.f]\ntype = \"chat\"\ntools = \"weather\"\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(e.contains("c.toml:3:1: `functions.f.tools`"), "{e}");
}

#[test]
fn provider_type_api_base_is_checked() {
    let e = load(&[(
        "tensorzero.toml",
        "[provider_types.openai.defaults]\napi_base = \"localhost:3030\"\n\n[provider_types.azure.defaults]\napi_base = \"https://x\"\n",
    )])
    .unwrap_err();
    assert!(
        e.contains("`provider_types.openai.defaults.api_base`"),
        "{e}"
    );
    assert!(e.contains("is not an http(s) URL"), "{e}");
    assert!(
        e.contains("`provider_types.azure.defaults.api_base`"),
        "{e}"
    );
    assert!(
        e.contains("set the address of each `azure` provider"),
        "{e}"
    );
}

const FUNCTION: &str = "[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"x\"\n";

#[test]
fn absurd_durations_are_refused_at_load_naming_the_toml_path() {
    let cases = [
        (
            "retries = { num_retries = 1, max_delay_s = VALUE }",
            "functions.f.variants.v.retries.max_delay_s",
        ),
        (
            "[functions.f.variants.b]\ntype = \"experimental_best_of_n\"\ncandidates = [\"v\"]\ntimeout_s = VALUE\nevaluator = { model = \"x\" }",
            "functions.f.variants.b.timeout_s",
        ),
        (
            "[functions.f.variants.m]\ntype = \"experimental_mixture_of_n\"\ncandidates = [\"v\"]\ntimeout_s = VALUE\nfuser = { model = \"x\" }",
            "functions.f.variants.m.timeout_s",
        ),
        ("weight = VALUE", "functions.f.variants.v.weight"),
    ];
    for (snippet, path) in cases {
        for value in ["inf", "-inf", "nan", "1e20", "-1.0"] {
            if snippet.starts_with("weight") && value == "1e20" {
                continue; // a large weight is only a large share
            }
            let text = format!("{MODEL}{FUNCTION}{}\n", snippet.replace("VALUE", value));
            let e = load(&[("c.toml", &text)]).expect_err(&format!("{path} = {value} loaded"));
            assert!(e.contains(&format!("`{path}`")), "{path} = {value}: {e}");
        }
    }
    let text = "[gateway]\nglobal_outbound_http_timeout_ms = 18446744073709551615\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(e.contains("gateway.global_outbound_http_timeout_ms"), "{e}");
    let text =
        "[gateway.metrics]\ntensorzero_inference_latency_overhead_seconds_buckets = [0.1, nan]\n";
    let e = load(&[("c.toml", text)]).unwrap_err();
    assert!(
        e.contains("tensorzero_inference_latency_overhead_seconds_buckets"),
        "{e}"
    );
}

mod properties {
    use proptest::prelude::*;

    /// A TOML value of any type, including the numbers that break naive code.
    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            Just("inf".to_owned()),
            Just("nan".to_owned()),
            Just("-inf".to_owned()),
            Just("1e300".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            "[ -~]{0,40}".prop_map(|s| format!("{s:?}")),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("[1, \"a\", true]".to_owned()),
            Just("\"env::NOPE\"".to_owned()),
            Just("\"dynamic::k\"".to_owned()),
            Just("\"http://[::1\"".to_owned()),
        ]
    }

    /// A key the configuration knows, at the table it belongs to.
    fn known_key() -> impl Strategy<Value = (&'static str, &'static str)> {
        prop::sample::select(vec![
            ("[gateway]", "global_outbound_http_timeout_ms"),
            ("[gateway]", "base_path"),
            ("[gateway]", "bind_address"),
            ("[gateway]", "debug"),
            ("[gateway.limits]", "max_request_body_bytes"),
            ("[gateway.limits]", "max_rate_limit_buckets"),
            ("[gateway.limits]", "idle_timeout_ms"),
            ("[gateway.auth.shield]", "client_ip_header"),
            ("[gateway.auth.shield]", "burst"),
            ("[gateway.relay]", "gateway_url"),
            ("[models.x]", "timeouts"),
            ("[models.x.providers.a]", "api_base"),
            ("[models.x.providers.a]", "api_key_location"),
            ("[models.x.providers.a]", "timeouts"),
            ("[models.x.providers.a]", "extra_body"),
            ("[models.x.providers.a]", "extra_headers"),
            ("[functions.f.variants.v]", "weight"),
            ("[functions.f.variants.v]", "retries"),
            ("[functions.f.variants.v]", "max_tokens"),
            ("[functions.f.variants.v]", "temperature"),
            ("[functions.f.variants.v]", "timeouts"),
            ("[functions.f.variants.v]", "extra_body"),
            ("[rate_limiting]", "default_max_tokens"),
            ("[[rate_limiting.rules]]", "tokens_per_minute"),
            ("[[rate_limiting.rules]]", "priority"),
            ("[[rate_limiting.rules]]", "scope"),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any text: the loader answers Ok or a located error, never a panic.
        #[test]
        fn the_loader_never_panics_on_arbitrary_text(text in "(\\PC|\n){0,300}") {
            let _ = super::load(&[("c.toml", &text)]);
        }

        /// Valid configs with one known key set to an arbitrary value: loaded or refused, never
        /// a panic, and a refusal names where.
        #[test]
        fn the_loader_never_panics_on_odd_values(
            (table, key) in known_key(),
            value in toml_value(),
        ) {
            let text = format!(
                "{}{}{table}\n{key} = {value}\n",
                super::MODEL,
                super::FUNCTION
            );
            if let Err(e) = super::load(&[("c.toml", &text)]) {
                prop_assert!(e.contains("c.toml"), "{e}");
            }
        }
    }
}
