//! Configurations of today, as TensorZero 2026.4 users write them: the files under
//! `tests/configs_2026/` together use every key and value of the reference's tables
//! (`../shared/reference/tensorzero-2026.md`), and each loads with `--validate-config`; each
//! deliberate mistake below gets the error TensorZero gives for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs_2026")
}

/// `switchyard --config-file FILE --validate-config` with only `env` set (besides PATH), run
/// from the file's directory (where `path::` key files are found, as in a container whose
/// working directory holds the configuration).
fn validate(file: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(["--config-file", file.to_str().unwrap(), "--validate-config"])
        .current_dir(file.parent().unwrap())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_valid(o: &Output, what: &str) {
    assert!(
        o.status.success() && text(o).contains("configuration is valid"),
        "{what} did not load:\n{}",
        text(o)
    );
}

/// The central gateway: auth (Postgres) and rate limits in Valkey, so both stores run.
#[tokio::test]
async fn the_organisation_gateway_loads() {
    let pg = crate::pg::Postgres::start();
    let redis = crate::redis::Redis::start().await;
    let (pg_url, redis_url) = (pg.url(), redis.url());
    // As an operator does before turning auth on: the tables the API keys live in.
    let migrated = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--run-postgres-migrations"])
        .env_clear()
        .env("TENSORZERO_POSTGRES_URL", &pg_url)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated));
    let o = validate(
        &configs().join("org_gateway/tensorzero.toml"),
        &[
            ("TENSORZERO_POSTGRES_URL", &pg_url),
            ("TENSORZERO_VALKEY_URL", &redis_url),
            ("OPENAI_API_KEY", "sk-test"),
            ("S3_ENDPOINT", "https://s3.internal"),
        ],
    );
    assert_valid(&o, "org_gateway");
    let out = text(&o);
    for expected in [
        "auth:          on",
        "rate limits:   4 rule(s)",
        // What the gateway does not do yet is said, never silently dropped.
        "`gateway.cache`",
        "`gateway.export.otlp.traces.include_content`",
        // Object storage without credentials in the environment: served, said.
        "`s3_compatible` has no credentials",
    ] {
        assert!(out.contains(expected), "{expected}:\n{out}");
    }
}

#[test]
fn every_provider_type_loads() {
    let dir = tempfile::tempdir().unwrap();
    let region_file = dir.path().join("region");
    std::fs::write(&region_file, "eu-west-1\n").unwrap();
    let region_file = region_file.to_str().unwrap().to_owned();
    let mut env: Vec<(&str, &str)> = [
        "OPENAI_API_KEY",
        "AZURE_API_KEY",
        "OPENROUTER_API_KEY",
        "BEDROCK_API_KEY",
        "GOOGLE_AI_STUDIO_API_KEY",
        "DEEPSEEK_API_KEY",
        "FIREWORKS_API_KEY",
        "GROQ_API_KEY",
        "HYPERBOLIC_API_KEY",
        "MISTRAL_API_KEY",
        "TOGETHER_API_KEY",
        "XAI_API_KEY",
        "SAGEMAKER_KEY_ID",
        "SAGEMAKER_SECRET",
        "TGI_API_KEY",
        "ANTHROPIC_API_KEY",
    ]
    .into_iter()
    .map(|k| (k, "test-key"))
    .collect();
    env.extend([
        ("AZURE_OPENAI_ENDPOINT", "https://acme.openai.azure.com"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("SAGEMAKER_REGION_FILE", region_file.as_str()),
        ("BEDROCK_REGION", "us-west-2"),
        (
            "BEDROCK_ENDPOINT",
            "https://bedrock-runtime.us-west-2.amazonaws.com",
        ),
    ]);
    let o = validate(&configs().join("every_provider/tensorzero.toml"), &env);
    assert_valid(&o, "every_provider");
    let out = text(&o);
    assert!(out.contains("models (8)"), "{out}");
    for deprecated in [
        "allow_auto_detect_region`: is deprecated",
        "beta_structured_outputs`: is deprecated",
        "parse_think_blocks`: is deprecated",
    ] {
        assert!(out.contains(deprecated), "{deprecated}:\n{out}");
    }
}

#[test]
fn a_team_edge_with_every_function_key_loads() {
    let o = validate(
        &configs().join("team_functions/tensorzero.toml"),
        &[
            (
                "TENSORZERO_RELAY_API_KEY",
                "sk-t0-aaaaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            ),
            ("OPENAI_API_KEY", "sk-test"),
        ],
    );
    assert_valid(&o, "team_functions");
    let out = text(&o);
    assert!(out.contains("relay:         on"), "{out}");
    for reported in [
        "`weight` (on variants",
        "timeout_s`: is deprecated",
        "`experimental_chain_of_thought` is deprecated",
        "`uniform` is deprecated",
        "`static_weights` is deprecated",
        "`track_and_stop` is deprecated",
        "`[evaluations]` is deprecated",
        "loaded, not used by the gateway",
    ] {
        assert!(out.contains(reported), "{reported}:\n{out}");
    }
}

/// A small valid configuration a mistake is added to.
const BASE: &str = r#"
[models.m]
routing = ["p"]
[models.m.providers.p]
type = "openai"
model_name = "x"
api_key_location = "none"

[functions.f]
type = "chat"
[functions.f.variants.a]
type = "chat_completion"
model = "m"
[functions.f.variants.b]
type = "chat_completion"
model = "m"
"#;

#[test]
fn each_mistake_gets_the_error_tensorzero_gives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.minijinja"), "hi").unwrap();
    let file = dir.path().join("tensorzero.toml");
    let cases: &[(&str, &str, &str)] = &[
        (
            "an unknown key where TensorZero denies them",
            "[gateway]\nbind_adress = \"0.0.0.0:3000\"\n",
            "unknown field `bind_adress`",
        ),
        (
            "`weight` beside [experimentation]",
            "[functions.g]\ntype = \"chat\"\n[functions.g.experimentation]\ntype = \"static\"\ncandidate_variants = [\"a\"]\n[functions.g.variants.a]\ntype = \"chat_completion\"\nmodel = \"m\"\nweight = 1.0\n",
            "weight",
        ),
        (
            "batch writes while async writes are on (the default)",
            "[gateway.observability.batch_writes]\nenabled = true\n",
            "async_writes",
        ),
        (
            "a zero batch size",
            "[gateway.observability]\nasync_writes = false\n[gateway.observability.batch_writes]\nenabled = true\nmax_rows = 0\n",
            "max_rows",
        ),
        (
            "`endpoint_id` on gcp_vertex_anthropic",
            "[models.v]\nrouting = [\"p\"]\n[models.v.providers.p]\ntype = \"gcp_vertex_anthropic\"\nendpoint_id = \"1\"\nlocation = \"us-east5\"\nproject_id = \"p\"\ncredential_location = \"dynamic::c\"\n",
            "model_id",
        ),
        (
            "the test-only `dummy` provider type",
            "[models.d]\nrouting = [\"p\"]\n[models.d.providers.p]\ntype = \"dummy\"\nmodel_name = \"x\"\n",
            "dummy",
        ),
        (
            "a timeout above the global outbound timeout",
            "[gateway]\nglobal_outbound_http_timeout_ms = 1000\n[models.t]\nrouting = [\"p\"]\ntimeouts = { non_streaming = { total_ms = 5000 } }\n[models.t.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n",
            "global_outbound_http_timeout_ms",
        ),
        (
            "`timeouts` on an embedding model",
            "[embedding_models.e]\nrouting = [\"p\"]\ntimeouts = { non_streaming = { total_ms = 5000 } }\n[embedding_models.e.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n",
            "unknown field `timeouts`",
        ),
        (
            "`tensorzero::total` for an API key scope",
            "[rate_limiting]\nbackend = \"memory\"\n[[rate_limiting.rules]]\nalways = true\nmodel_inferences_per_minute = 1\nscope = [{ api_key_public_id = \"tensorzero::total\" }]\n",
            "api_key_public_id",
        ),
        (
            "both `priority` and `always`",
            "[rate_limiting]\nbackend = \"memory\"\n[[rate_limiting.rules]]\nalways = true\npriority = 1\ntokens_per_minute = 1\n",
            "not both",
        ),
        (
            "a negative `default_cost`",
            "[rate_limiting]\nbackend = \"memory\"\ndefault_cost = -1.0\n",
            "default_cost",
        ),
        (
            "a cost limit that is not money",
            "[rate_limiting]\nbackend = \"memory\"\n[[rate_limiting.rules]]\nalways = true\ncost_per_day = \"ten\"\n",
            "a number of dollars",
        ),
        (
            "a namespace with the reserved prefix",
            "[models.n]\nrouting = [\"p\"]\nnamespace = \"tensorzero::x\"\n[models.n.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n",
            "tensorzero::",
        ),
        (
            "a reserved metric name",
            "[metrics.comment]\ntype = \"boolean\"\noptimize = \"max\"\nlevel = \"inference\"\n",
            "comment",
        ),
        (
            "an adaptive `delta` outside (0, 1)",
            "[metrics.good]\ntype = \"boolean\"\noptimize = \"max\"\nlevel = \"inference\"\n[functions.g]\ntype = \"chat\"\n[functions.g.experimentation]\ntype = \"adaptive\"\nmetric = \"good\"\ncandidate_variants = [\"a\"]\ndelta = 1.5\n[functions.g.variants.a]\ntype = \"chat_completion\"\nmodel = \"m\"\n",
            "delta",
        ),
        (
            "an adaptive `min_prob` the candidates cannot all get",
            "[metrics.good]\ntype = \"boolean\"\noptimize = \"max\"\nlevel = \"inference\"\n[functions.g]\ntype = \"chat\"\n[functions.g.experimentation]\ntype = \"adaptive\"\nmetric = \"good\"\ncandidate_variants = [\"a\", \"b\"]\nmin_prob = 0.6\n[functions.g.variants.a]\ntype = \"chat_completion\"\nmodel = \"m\"\n[functions.g.variants.b]\ntype = \"chat_completion\"\nmodel = \"m\"\n",
            "min_prob",
        ),
        (
            "a static experiment naming no variant of the function",
            "[functions.f.experimentation]\ntype = \"static\"\ncandidate_variants = [\"nope\"]\n",
            "nope",
        ),
        (
            "`tool_use` `none_of` without `tools`",
            "[functions.f.evaluators.e]\ntype = \"tool_use\"\nbehavior = \"none_of\"\n",
            "tools",
        ),
        (
            "`tool_use` `any` with `tools`",
            "[functions.f.evaluators.e]\ntype = \"tool_use\"\nbehavior = \"any\"\ntools = [\"x\"]\n",
            "tools",
        ),
        (
            "a `regex` evaluator that matches nothing",
            "[functions.f.evaluators.e]\ntype = \"regex\"\n",
            "must_match",
        ),
        (
            "`description` on an evaluator other than llm_judge",
            "[functions.f.evaluators.e]\ntype = \"exact_match\"\ndescription = \"x\"\n",
            "unknown field `description`",
        ),
        (
            "a judge variant without its instructions",
            "[functions.f.evaluators.j]\ntype = \"llm_judge\"\noutput_type = \"boolean\"\noptimize = \"max\"\n[functions.f.evaluators.j.variants.v]\ntype = \"chat_completion\"\nmodel = \"m\"\njson_mode = \"strict\"\n",
            "system_instructions",
        ),
        (
            "an evaluation name with `::`",
            "[evaluations.\"a::b\"]\ntype = \"inference\"\nfunction_name = \"f\"\n",
            "::",
        ),
        (
            "GEPA with both evaluator forms",
            "[optimizers.g]\ntype = \"gepa\"\nfunction_name = \"f\"\nevaluator_names = [\"e\"]\nevaluation_name = \"x\"\nanalysis_model = \"m\"\nmutation_model = \"m\"\n",
            "evaluation_name",
        ),
        (
            "one role's template in both forms",
            "[functions.t]\ntype = \"chat\"\n[functions.t.variants.v]\ntype = \"chat_completion\"\nmodel = \"m\"\nsystem_template = \"t.minijinja\"\ntemplates.system.path = \"t.minijinja\"\n",
            "set twice",
        ),
        (
            "a wrapper beside the role's template",
            "[functions.t]\ntype = \"chat\"\n[functions.t.variants.v]\ntype = \"chat_completion\"\nmodel = \"m\"\nuser_template = \"t.minijinja\"\ninput_wrappers.user = \"t.minijinja\"\n",
            "conflicts with",
        ),
        (
            "a mixture without a fuser",
            "[functions.f.variants.mix]\ntype = \"experimental_mixture_of_n\"\ncandidates = [\"a\"]\n",
            "fuser",
        ),
        (
            "`timeout_s` over a candidate with its own timeouts",
            "[functions.o]\ntype = \"chat\"\n[functions.o.variants.c]\ntype = \"chat_completion\"\nmodel = \"m\"\ntimeouts = { non_streaming = { total_ms = 1000 } }\n[functions.o.variants.best]\ntype = \"experimental_best_of_n_sampling\"\ncandidates = [\"c\"]\ntimeout_s = 5\nevaluator = { model = \"m\" }\n",
            "timeout_s",
        ),
        (
            "an unknown `json_mode`",
            "[functions.f.variants.j]\ntype = \"chat_completion\"\nmodel = \"m\"\njson_mode = \"maybe\"\n",
            "maybe",
        ),
        (
            "`include_encrypted_reasoning` without the Responses API",
            "[models.r]\nrouting = [\"p\"]\n[models.r.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\ninclude_encrypted_reasoning = true\n",
            "api_type",
        ),
        (
            "migrations turned off in both places",
            "[gateway.observability]\ndisable_automatic_migrations = true\n[clickhouse]\ndisable_automatic_migrations = true\n",
            "disable_automatic_migrations",
        ),
        (
            "an object storage endpoint from the request",
            "[object_storage]\ntype = \"s3_compatible\"\nbucket_name = \"b\"\nendpoint = \"dynamic::x\"\n",
            "endpoint",
        ),
        (
            "overhead buckets out of order",
            "[gateway.metrics]\ntensorzero_inference_latency_overhead_seconds_buckets = [0.1, 0.01]\n",
            "strictly increasing",
        ),
        (
            "an AWS provider without a region",
            "[models.aws]\nrouting = [\"p\"]\n[models.aws.providers.p]\ntype = \"aws_bedrock\"\nmodel_id = \"x\"\n",
            "region",
        ),
        (
            "rules without a store to keep them in",
            "[[rate_limiting.rules]]\nalways = true\nmodel_inferences_per_minute = 1\n",
            "TENSORZERO_VALKEY_URL",
        ),
    ];
    let mut failures = Vec::new();
    for (what, mistake, expected) in cases {
        std::fs::write(&file, format!("{BASE}\n{mistake}")).unwrap();
        let o = validate(&file, &[]);
        let out = text(&o);
        if o.status.success() || !out.contains(expected) {
            failures.push(format!(
                "{what}: expected an error naming `{expected}`, got:\n{out}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
