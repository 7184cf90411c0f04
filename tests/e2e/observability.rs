//! The observability store's layout in a real Postgres: `--run-postgres-migrations` creates
//! TensorZero's tables (schema `tensorzero`) with their partitions when they are absent, records
//! it in switchyard's own bookkeeping, leaves a layout TensorZero's migrator created alone, and
//! keeps partitions ahead of time and within retention.

use std::process::{Command, Output};

use switchyard::api_keys::PostgresKeyStore;
use switchyard::observability::partitions::{self, Retention};

use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::Harness;
use crate::pg::Postgres;

fn migrate(pg: &Postgres) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--run-postgres-migrations")
        .env_clear()
        .env("TENSORZERO_POSTGRES_URL", pg.url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn client(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn exists(c: &tokio_postgres::Client, relation: &str) -> bool {
    c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn migrations_create_the_layout_once_with_partitions_ahead() {
    let pg = Postgres::start();
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("observability tables: Created"),
        "{}",
        text(&o)
    );
    let c = client(&pg).await;
    for table in [
        "tensorzero.chat_inferences",
        "tensorzero.chat_inference_data",
        "tensorzero.json_inferences",
        "tensorzero.json_inference_data",
        "tensorzero.model_inferences",
        "tensorzero.model_inference_data",
        "tensorzero.boolean_metric_feedback",
        "tensorzero.float_metric_feedback",
        "tensorzero.comment_feedback",
        "tensorzero.demonstration_feedback",
        "tensorzero.inference_evaluation_human_feedback",
        "tensorzero.chat_datapoints",
        "tensorzero.json_datapoints",
        "tensorzero.config_snapshots",
        "tensorzero.deployment_id",
        "tensorzero.retention_config",
        "tensorzero.chat_inferences_default",
        "public.variant_by_episode",
    ] {
        assert!(exists(&c, table).await, "{table} is missing");
    }
    // The columns as TensorZero reads them (a sample of the metadata table).
    let columns: Vec<(String, String, String)> = c
        .query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns
             WHERE table_schema = 'tensorzero' AND table_name = 'model_inferences' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let find = |name: &str| columns.iter().find(|(n, _, _)| n == name).cloned().unwrap();
    assert_eq!(find("cost").1, "numeric");
    assert_eq!(find("inference_id").2, "NO");
    assert_eq!(find("input_tokens").1, "integer");
    assert_eq!(find("created_at").1, "timestamp with time zone");

    // Partitions for this month and the next three, today and the next seven days.
    let today = chrono::Utc::now().date_naive();
    for name in partitions::wanted(today).iter().map(|(_, n, _, _)| n) {
        assert!(exists(&c, &format!("tensorzero.{name}")).await, "{name}");
    }
    // A row whose created_at comes from its UUIDv7 lands in today's partition, not the default.
    let id = uuid::Uuid::now_v7();
    c.execute(
        "INSERT INTO tensorzero.chat_inferences (id, function_name, variant_name, episode_id, created_at)
         VALUES ($1, 'f', 'v', $1, tensorzero.uuid_v7_to_timestamp($1))",
        &[&id],
    )
    .await
    .unwrap();
    let partition: String = c
        .query_one(
            "SELECT tableoid::regclass::text FROM tensorzero.chat_inferences WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        partition,
        format!("tensorzero.chat_inferences_{}", today.format("%Y_%m"))
    );

    // Again: nothing to do, and the bookkeeping is switchyard's own.
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("observability tables: AlreadySwitchyards"),
        "{}",
        text(&o)
    );
    let recorded: i64 = c
        .query_one("SELECT count(*) FROM switchyard_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
    assert!(
        !exists(&c, "public._sqlx_migrations").await,
        "TensorZero's bookkeeping is never touched"
    );
}

#[tokio::test]
async fn a_layout_tensorzero_created_is_used_as_it_is() {
    let pg = Postgres::start();
    // What TensorZero's migrator leaves: its bookkeeping, and (in part) its tables.
    pg.sql(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
         INSERT INTO _sqlx_migrations VALUES (20260213142997, 'split inference data tables', now(), true, '\\x00', 1);
         CREATE SCHEMA tensorzero;
         CREATE TABLE tensorzero.chat_inferences (id UUID NOT NULL, created_at TIMESTAMPTZ NOT NULL,
             PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);",
    )
    .await;
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("observability tables: TensorZeros"),
        "{}",
        text(&o)
    );
    let c = client(&pg).await;
    assert!(
        !exists(&c, "tensorzero.json_inferences").await,
        "switchyard created nothing"
    );
    let ours: i64 = c
        .query_one("SELECT count(*) FROM switchyard_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ours, 0);
    // It still keeps the partitions of the tables that are there ahead of time.
    let today = chrono::Utc::now().date_naive();
    assert!(
        exists(
            &c,
            &format!("tensorzero.chat_inferences_{}", today.format("%Y_%m"))
        )
        .await
    );
}

#[tokio::test]
async fn retention_drops_partitions_past_their_age() {
    let pg = Postgres::start();
    assert!(migrate(&pg).status.success());
    pg.sql(
        "CREATE TABLE tensorzero.chat_inference_data_2020_01_01 PARTITION OF tensorzero.chat_inference_data
             FOR VALUES FROM ('2020-01-01') TO ('2020-01-02');
         CREATE TABLE tensorzero.model_inferences_2020_01 PARTITION OF tensorzero.model_inferences
             FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');",
    )
    .await;
    let store = PostgresKeyStore::connect(&pg.url()).unwrap();
    let done = partitions::maintain(
        store.pool(),
        &Retention {
            metadata_days: Some(365),
            data_days: Some(30),
        },
    )
    .await
    .unwrap();
    assert!(done.created.is_empty(), "{done:?}");
    assert_eq!(
        {
            let mut d = done.dropped.clone();
            d.sort();
            d
        },
        ["chat_inference_data_2020_01_01", "model_inferences_2020_01"]
    );
    let c = client(&pg).await;
    let today = chrono::Utc::now().date_naive();
    assert!(
        exists(
            &c,
            &format!(
                "tensorzero.chat_inference_data_{}",
                today.format("%Y_%m_%d")
            )
        )
        .await
    );
}

const STORE_CONFIG: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"
cost = [
  { pointer = "/usage/prompt_tokens", cost_per_million = 2.0 },
  { pointer = "/usage/completion_tokens", cost_per_million = 8.0 },
]

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

[models.choose1]
routing = ["mock"]
[models.choose1.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "choose-1"
api_key_location = "none"

[tools.get_weather]
description = "Weather"
parameters = "weather.json"

[metrics.task_success]
type = "boolean"
level = "inference"
optimize = "max"

[metrics.rating]
type = "float"
level = "episode"
optimize = "max"

[functions.weather]
type = "chat"
tools = ["get_weather"]
[functions.weather.variants.only]
type = "chat_completion"
model = "tool"
temperature = 0.25

[functions.extract]
type = "json"
output_schema = "answer.json"
[functions.extract.variants.only]
type = "chat_completion"
model = "json"

[functions.best]
type = "chat"
[functions.best.variants.bon]
type = "experimental_best_of_n_sampling"
candidates = ["a", "b"]
[functions.best.variants.bon.evaluator]
model = "choose1"
[functions.best.variants.a]
type = "chat_completion"
model = "mock"
weight = 0
[functions.best.variants.b]
type = "chat_completion"
model = "mock"
weight = 0
"#;

const WEATHER_SCHEMA: &str =
    r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;
const ANSWER_SCHEMA: &str =
    r#"{"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"]}"#;

/// A migrated Postgres and an in-process gateway storing into it.
async fn storing_gateway(toml: &str) -> (Postgres, Harness) {
    let pg = Postgres::start();
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    let env = switchyard::Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Default::default()
    };
    let gw = Harness::start_with_env(
        MockProvider::start().await.unwrap(),
        toml,
        &[
            ("weather.json", WEATHER_SCHEMA),
            ("answer.json", ANSWER_SCHEMA),
        ],
        &env,
    )
    .await;
    (pg, gw)
}

/// Polls until `sql` counts at least `n` rows (async writes land shortly after the answer).
async fn wait_count(c: &tokio_postgres::Client, sql: &str, n: i64) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count: i64 = c.query_one(sql, &[]).await.unwrap().get(0);
        if count >= n || std::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_inference_writes_its_rows_in_tensorzeros_layout() {
    let (pg, gw) = storing_gateway(STORE_CONFIG).await;
    let c = client(&pg).await;

    // A model_name call (the default function), with tags.
    let r = gw
        .post(
            "/inference",
            &json!({"model_name": "mock", "input": {"system": "Be brief.", "messages": [{"role": "user", "content": "hello"}]}, "tags": {"team": "search"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let plain: Value = r.json();
    let id: uuid::Uuid = plain["inference_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        wait_count(
            &c,
            &format!(
                "SELECT count(*) FROM tensorzero.model_inferences WHERE inference_id = '{id}'"
            ),
            1
        )
        .await,
        1
    );
    let row = c
        .query_one(
            "SELECT i.function_name, i.variant_name, i.episode_id::text, i.tags, d.input, d.output, d.inference_params,
                    i.created_at = d.created_at, i.created_at = tensorzero.uuid_v7_to_timestamp(i.id), i.ttft_ms IS NULL,
                    d.allowed_tools IS NULL, d.tool_choice IS NULL, d.dynamic_tools
             FROM tensorzero.chat_inferences i JOIN tensorzero.chat_inference_data d ON d.id = i.id AND d.created_at = i.created_at
             WHERE i.id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "tensorzero::default");
    assert_eq!(row.get::<_, String>(1), "mock");
    assert_eq!(
        row.get::<_, String>(2),
        plain["episode_id"].as_str().unwrap()
    );
    assert_eq!(row.get::<_, Value>(3), json!({"team": "search"}));
    assert_eq!(
        row.get::<_, Value>(4),
        json!({"system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]})
    );
    assert_eq!(
        row.get::<_, Value>(5),
        json!([{"type": "text", "text": "mock reply to: hello"}])
    );
    assert_eq!(row.get::<_, Value>(6), json!({"chat_completion": {}}));
    assert!(row.get::<_, bool>(7), "both halves share created_at");
    assert!(row.get::<_, bool>(8), "created_at comes from the UUIDv7");
    assert!(
        row.get::<_, bool>(9),
        "no ttft for a non-streamed inference"
    );
    assert!(row.get::<_, bool>(10) && row.get::<_, bool>(11));
    assert_eq!(row.get::<_, Value>(12), json!([]));
    let model = c
        .query_one(
            "SELECT m.model_name, m.model_provider_name, m.input_tokens, m.output_tokens, m.finish_reason, m.cost::text,
                    m.cached, m.response_time_ms IS NOT NULL, d.raw_request, d.raw_response, d.system, d.input_messages, d.output,
                    m.id > m.inference_id
             FROM tensorzero.model_inferences m JOIN tensorzero.model_inference_data d ON d.id = m.id AND d.created_at = m.created_at
             WHERE m.inference_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(model.get::<_, String>(0), "mock");
    assert_eq!(model.get::<_, String>(1), "mock");
    assert_eq!(
        model.get::<_, Option<i32>>(2),
        plain["usage"]["input_tokens"].as_i64().map(|n| n as i32)
    );
    assert_eq!(model.get::<_, Option<i32>>(3), Some(4));
    assert_eq!(model.get::<_, Option<String>>(4).as_deref(), Some("stop"));
    assert!(
        model.get::<_, Option<String>>(5).is_some(),
        "the cost is stored"
    );
    assert!(!model.get::<_, bool>(6));
    assert!(model.get::<_, bool>(7));
    let raw_request: Value = serde_json::from_str(&model.get::<_, String>(8)).unwrap();
    assert_eq!(
        raw_request["model"], "mock-model",
        "the body sent to the provider"
    );
    let raw_response: Value = serde_json::from_str(&model.get::<_, String>(9)).unwrap();
    assert_eq!(
        raw_response["id"], "chatcmpl-mock",
        "the provider's own answer"
    );
    assert_eq!(
        model.get::<_, Option<String>>(10).as_deref(),
        Some("Be brief.")
    );
    assert_eq!(
        model.get::<_, Value>(11),
        json!([{"role": "user", "content": [{"type": "text", "text": "hello"}]}])
    );
    assert_eq!(
        model.get::<_, Value>(12),
        json!([{"type": "text", "text": "mock reply to: hello"}])
    );
    assert!(
        model.get::<_, bool>(13),
        "model inference ids are made after the inference's"
    );

    // A chat function with a tool: the tool columns and the checked tool call.
    let r = gw
        .post(
            "/inference",
            &json!({"function_name": "weather", "input": {"messages": [{"role": "user", "content": "Paris?"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id: uuid::Uuid = r.json()["inference_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        wait_count(
            &c,
            &format!("SELECT count(*) FROM tensorzero.chat_inference_data WHERE id = '{id}'"),
            1
        )
        .await,
        1
    );
    let row = c
        .query_one(
            "SELECT i.variant_name, d.output, d.allowed_tools, d.tool_choice, d.inference_params FROM tensorzero.chat_inferences i
             JOIN tensorzero.chat_inference_data d ON d.id = i.id AND d.created_at = i.created_at WHERE i.id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "only");
    assert_eq!(
        row.get::<_, Value>(1),
        json!([{"type": "tool_call", "id": "call_mock_1", "raw_name": "get_weather", "raw_arguments": "{\"city\":\"Paris\"}", "name": "get_weather", "arguments": {"city": "Paris"}}])
    );
    assert_eq!(
        row.get::<_, Value>(2),
        json!({"tools": ["get_weather"], "choice": "function_default"})
    );
    assert_eq!(row.get::<_, Value>(3), json!("auto"));
    assert_eq!(
        row.get::<_, Value>(4),
        json!({"chat_completion": {"temperature": 0.25}})
    );

    // A json function: {raw, parsed}, the output schema, no tool columns.
    let r = gw
        .post(
            "/inference",
            &json!({"function_name": "extract", "input": {"messages": [{"role": "user", "content": "six times seven"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id: uuid::Uuid = r.json()["inference_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        wait_count(
            &c,
            &format!("SELECT count(*) FROM tensorzero.json_inference_data WHERE id = '{id}'"),
            1
        )
        .await,
        1
    );
    let row = c
        .query_one(
            "SELECT d.output, d.output_schema, d.auxiliary_content, d.inference_params FROM tensorzero.json_inferences i
             JOIN tensorzero.json_inference_data d ON d.id = i.id AND d.created_at = i.created_at WHERE i.id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Value>(0),
        json!({"raw": "{\"answer\":42}", "parsed": {"answer": 42}})
    );
    assert_eq!(row.get::<_, Value>(1)["required"], json!(["answer"]));
    assert_eq!(row.get::<_, Value>(2), json!([]));
    assert_eq!(
        row.get::<_, Value>(3),
        json!({"chat_completion": {"json_mode": "strict"}})
    );

    // Streamed through the OpenAI route: ttft, the output assembled from chunks, the raw
    // events joined by newlines.
    let r = gw
        .post(
            "/openai/v1/chat/completions",
            &json!({"model": "tensorzero::model_name::mock", "stream": true, "messages": [{"role": "user", "content": "stream me"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json_events();
    let id: uuid::Uuid = events[0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        wait_count(
            &c,
            &format!(
                "SELECT count(*) FROM tensorzero.model_inferences WHERE inference_id = '{id}'"
            ),
            1
        )
        .await,
        1
    );
    let row = c
        .query_one(
            "SELECT i.ttft_ms IS NOT NULL, i.processing_time_ms >= i.ttft_ms, d.output, m.ttft_ms IS NOT NULL, md.raw_response
             FROM tensorzero.chat_inferences i
             JOIN tensorzero.chat_inference_data d ON d.id = i.id AND d.created_at = i.created_at
             JOIN tensorzero.model_inferences m ON m.inference_id = i.id
             JOIN tensorzero.model_inference_data md ON md.id = m.id AND md.created_at = m.created_at
             WHERE i.id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    assert_eq!(
        row.get::<_, Value>(2),
        json!([{"type": "text", "text": "mock reply to: stream me"}])
    );
    assert!(row.get::<_, bool>(3));
    let raw = row.get::<_, String>(4);
    assert!(raw.lines().count() > 2, "{raw}");
    assert!(
        raw.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{raw}"
    );

    // Best-of-n: one model row per candidate plus the evaluator's.
    let r = gw
        .post(
            "/inference",
            &json!({"function_name": "best", "variant_name": "bon", "input": {"messages": [{"role": "user", "content": "pick"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id: uuid::Uuid = r.json()["inference_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        wait_count(
            &c,
            &format!(
                "SELECT count(*) FROM tensorzero.model_inferences WHERE inference_id = '{id}'"
            ),
            3
        )
        .await,
        3
    );
    let tags: Value = c
        .query_one(
            "SELECT tags FROM tensorzero.chat_inferences WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tags, json!({"tensorzero::variant_pinned": "bon"}));

    // dryrun: answered, never stored.
    let r = gw
        .post(
            "/inference",
            &json!({"model_name": "mock", "dryrun": true, "input": {"messages": [{"role": "user", "content": "dry"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id: uuid::Uuid = r.json()["inference_id"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM tensorzero.chat_inferences WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a dryrun writes nothing");
    let written = crate::harness::metric(
        &gw.url(""),
        "switchyard_observability_rows_written_total{table=\"chat_inferences\"}",
    )
    .await;
    assert!(written >= 4.0, "{written}");
}

/// A UUIDv7 of a day long gone: a target that cannot be on its way any more (the target check
/// then waits only its minimum second).
fn old_v7() -> uuid::Uuid {
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        1_750_000_000,
        0,
    ))
}

#[tokio::test]
async fn feedback_is_checked_and_stored_as_tensorzero_does() {
    let (pg, gw) = storing_gateway(STORE_CONFIG).await;
    let c = client(&pg).await;
    let r = gw
        .post(
            "/inference",
            &json!({"function_name": "weather", "input": {"messages": [{"role": "user", "content": "Paris?"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let inference = r.json();
    let inference_id = inference["inference_id"].as_str().unwrap().to_owned();
    let episode_id = inference["episode_id"].as_str().unwrap().to_owned();

    // Sent at once: the target check waits for the inference's rows, which are still queued.
    let ok = |r: &crate::harness::Reply| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["feedback_id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()
    };
    let boolean = ok(&gw
        .post(
            "/feedback",
            &json!({"inference_id": inference_id, "metric_name": "task_success", "value": true, "tags": {"user": "u-42"}}),
        )
        .await);
    let float = ok(&gw
        .post(
            "/feedback",
            &json!({"episode_id": episode_id, "metric_name": "rating", "value": 4.5}),
        )
        .await);
    let comment = ok(&gw
        .post(
            "/feedback",
            &json!({"episode_id": episode_id, "metric_name": "comment", "value": "good call"}),
        )
        .await);
    let demo = ok(&gw
        .post(
            "/feedback",
            &json!({"inference_id": inference_id, "metric_name": "demonstration",
                    "value": [{"type": "tool_call", "id": "d1", "name": "get_weather", "arguments": {"city": "Lyon"}}]}),
        )
        .await);
    let dry = ok(&gw
        .post(
            "/feedback",
            &json!({"inference_id": inference_id, "metric_name": "task_success", "value": false, "dryrun": true}),
        )
        .await);
    assert_eq!(boolean.get_version_num(), 7);

    assert_eq!(
        wait_count(
            &c,
            "SELECT count(*) FROM tensorzero.demonstration_feedback",
            1
        )
        .await,
        1
    );
    let row = c
        .query_one(
            "SELECT target_id::text, metric_name, value, tags FROM tensorzero.boolean_metric_feedback WHERE id = $1",
            &[&boolean],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), inference_id);
    assert_eq!(row.get::<_, String>(1), "task_success");
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, Value>(3), json!({"user": "u-42"}));
    let row = c
        .query_one(
            "SELECT target_id::text, value FROM tensorzero.float_metric_feedback WHERE id = $1",
            &[&float],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), episode_id);
    assert_eq!(row.get::<_, f64>(1), 4.5);
    let row = c
        .query_one(
            "SELECT target_type, value FROM tensorzero.comment_feedback WHERE id = $1",
            &[&comment],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "episode");
    assert_eq!(row.get::<_, String>(1), "good call");
    let value: Value = c
        .query_one(
            "SELECT value FROM tensorzero.demonstration_feedback WHERE id = $1",
            &[&demo],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        value,
        json!([{"type": "tool_call", "id": "d1", "raw_name": "get_weather", "raw_arguments": "{\"city\":\"Lyon\"}", "name": "get_weather", "arguments": {"city": "Lyon"}}])
    );
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM tensorzero.boolean_metric_feedback WHERE id = $1",
            &[&dry],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a dryrun feedback is not stored");

    // A json function's demonstration is checked against its output schema.
    let r = gw
        .post(
            "/inference",
            &json!({"function_name": "extract", "input": {"messages": [{"role": "user", "content": "x"}]}}),
        )
        .await;
    let json_id = r.json()["inference_id"].as_str().unwrap().to_owned();
    let demo = ok(&gw
        .post(
            "/feedback",
            &json!({"inference_id": json_id, "metric_name": "demonstration", "value": {"answer": 7}}),
        )
        .await);
    assert_eq!(
        wait_count(
            &c,
            &format!("SELECT count(*) FROM tensorzero.demonstration_feedback WHERE id = '{demo}'"),
            1
        )
        .await,
        1
    );
    let r = gw
        .post(
            "/feedback",
            &json!({"inference_id": json_id, "metric_name": "demonstration", "value": {"answer": "seven"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.error()
            .starts_with("Demonstration does not fit function output schema"),
        "{}",
        r.error()
    );

    // The refusals, with TensorZero's statuses and messages.
    let old = old_v7();
    let refused = [
        (
            json!({"inference_id": inference_id, "metric_name": "nope", "value": true}),
            404,
            "Unknown metric: nope".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "episode_id": episode_id, "metric_name": "task_success", "value": true}),
            400,
            "Both episode_id and inference_id cannot be provided".to_owned(),
        ),
        (
            json!({"episode_id": episode_id, "metric_name": "task_success", "value": true}),
            400,
            "Correct ID was not provided for feedback level \"inference\".".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "rating", "value": 1.0}),
            400,
            "Correct ID was not provided for feedback level \"episode\".".to_owned(),
        ),
        (
            json!({"metric_name": "comment", "value": "x"}),
            400,
            "Exactly one of inference_id or episode_id must be provided".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "task_success", "value": 1}),
            400,
            "Feedback value for metric `task_success` must be a boolean".to_owned(),
        ),
        (
            json!({"episode_id": episode_id, "metric_name": "rating", "value": "high"}),
            400,
            "Feedback value for metric `rating` must be a number".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "comment", "value": 3}),
            400,
            "Feedback value for a comment must be a string".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "task_success", "value": true, "tags": {"tensorzero::x": "y"}}),
            400,
            "Tag name cannot start with 'tensorzero::': tensorzero::x".to_owned(),
        ),
        (
            json!({"inference_id": "6f1d1a3c-2b0e-4c1e-9d7a-3c6d2f1e0a9b", "metric_name": "task_success", "value": true}),
            400,
            "Failed to parse UUID as v7: 6f1d1a3c-2b0e-4c1e-9d7a-3c6d2f1e0a9b".to_owned(),
        ),
        (
            json!({"inference_id": old, "metric_name": "task_success", "value": true}),
            400,
            format!("Inference ID: {old} does not exist"),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "demonstration", "value": [{"type": "tool_call", "name": "launch", "arguments": {}}]}),
            400,
            "Demonstration contains invalid tool name".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "demonstration", "value": [{"type": "tool_call", "name": "get_weather", "arguments": {"town": 1}}]}),
            400,
            "Demonstration contains invalid tool call arguments".to_owned(),
        ),
        (
            json!({"inference_id": inference_id, "metric_name": "demonstration", "value": 5}),
            400,
            "Demonstration must be a string or an array of content blocks".to_owned(),
        ),
    ];
    for (body, status, message) in refused {
        let r = gw.post("/feedback", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.error(), message, "{body}");
    }
    let r = gw
        .post("/feedback", &json!({"inference_id": inference_id, "metric_name": "task_success", "value": true, "extra": 1}))
        .await;
    assert_eq!(r.status, 400, "unknown keys are refused: {}", r.text());
}

#[tokio::test]
async fn feedback_without_a_store_says_how_to_get_one() {
    let gw = Harness::start(
        r#"
[metrics.task_success]
type = "boolean"
level = "inference"
optimize = "max"
"#,
    )
    .await;
    let r = gw
        .post(
            "/feedback",
            &json!({"inference_id": uuid::Uuid::now_v7(), "metric_name": "task_success", "value": true}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.error(),
        "Feedback requires observability to be enabled (`gateway.observability.enabled` must not be `false`)."
    );
}

#[tokio::test]
async fn queued_rows_are_written_on_sigterm() {
    let pg = Postgres::start();
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tensorzero.toml");
    // Batches that would wait a minute: only the shutdown flush can write them in time.
    std::fs::write(
        &config,
        format!(
            r#"
[gateway.observability]
async_writes = false
[gateway.observability.batch_writes]
enabled = true
flush_interval_ms = 60000
max_rows = 100000

[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{}"
model_name = "mock-model"
api_key_location = "none"
"#,
            mock.api_base()
        ),
    )
    .unwrap();
    let mut gw = crate::harness::GatewayProcess::start(
        &config,
        &[],
        &[("TENSORZERO_POSTGRES_URL", &pg.url())],
        dir.path().join("gateway.log"),
    )
    .await;
    for i in 0..25 {
        let r = gw
            .infer(&json!({"model_name": "mock", "input": {"messages": [{"role": "user", "content": format!("n{i}")}]}}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let c = client(&pg).await;
    let before: i64 = c
        .query_one("SELECT count(*) FROM tensorzero.chat_inferences", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, 0, "the batch is still waiting");
    gw.signal("TERM");
    assert!(gw.wait_exit(std::time::Duration::from_secs(20)).await);
    for table in [
        "chat_inferences",
        "chat_inference_data",
        "model_inferences",
        "model_inference_data",
    ] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM tensorzero.{table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 25, "{table}: nothing is lost on a clean shutdown");
    }
}

#[tokio::test]
async fn a_dead_postgres_fails_no_inference_and_writes_resume_when_it_is_back() {
    let (pg, gw) = storing_gateway(&STORE_CONFIG.replace(
        "[metrics.task_success]",
        "[gateway.observability.batch_writes]\nwrite_queue_capacity = 5\n\n[metrics.task_success]",
    ))
    .await;
    let body = |i: usize| json!({"model_name": "mock", "input": {"messages": [{"role": "user", "content": format!("n{i}")}]}});
    assert_eq!(gw.post("/inference", &body(0)).await.status, 200);
    pg.stop();
    for i in 1..=40 {
        let r = gw.post("/inference", &body(i)).await;
        assert_eq!(
            r.status,
            200,
            "the store's outage is not the client's: {}",
            r.text()
        );
    }
    let base = gw.url("");
    let dropped_full = crate::harness::metric(
        &base,
        "switchyard_observability_rows_dropped_total{reason=\"queue_full\"}",
    )
    .await;
    assert!(
        dropped_full > 0.0,
        "a full queue drops rows rather than waiting"
    );
    // The writer gives up on the batch it holds after its retries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::harness::metric(&base, "switchyard_observability_write_errors_total").await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "write errors are counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    pg.restart();
    // Rows held while it was down are written once it is back (within the writer's retries),
    // and new ones are written as usual.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let r = gw.post("/inference", &body(99)).await;
    assert_eq!(r.status, 200);
    let id = r.json()["inference_id"].as_str().unwrap().to_owned();
    let c = client(&pg).await;
    assert_eq!(
        wait_count(
            &c,
            &format!("SELECT count(*) FROM tensorzero.chat_inferences WHERE id = '{id}'"),
            1
        )
        .await,
        1,
        "writes resume"
    );
    let written = crate::harness::metric(
        &base,
        "switchyard_observability_rows_written_total{table=\"chat_inferences\"}",
    )
    .await;
    let dropped = crate::harness::metric(
        &base,
        "switchyard_observability_rows_dropped_total{reason=\"queue_full\"}",
    )
    .await
        + crate::harness::metric(
            &base,
            "switchyard_observability_rows_dropped_total{reason=\"write_failed\"}",
        )
        .await;
    assert!(
        written >= 2.0 && dropped > 0.0,
        "written {written}, dropped {dropped}"
    );
}

#[tokio::test]
async fn the_edge_stores_its_rows_with_the_relay_as_provider_and_the_relay_its_own() {
    let (pg, relay) = storing_gateway(STORE_CONFIG).await;
    let env = switchyard::Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Default::default()
    };
    let edge_config = format!(
        "[gateway.relay]\ngateway_url = \"{}\"\n\n{STORE_CONFIG}",
        relay.url("")
    );
    let edge = Harness::start_with_env(
        MockProvider::start().await.unwrap(),
        &edge_config,
        &[
            ("weather.json", WEATHER_SCHEMA),
            ("answer.json", ANSWER_SCHEMA),
        ],
        &env,
    )
    .await;
    let c = client(&pg).await;
    for stream in [false, true] {
        let r = edge
            .post(
                "/inference",
                &json!({"function_name": "weather", "stream": stream, "input": {"messages": [{"role": "user", "content": "Paris?"}]}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let id = if stream {
            r.json_events()[0]["inference_id"]
                .as_str()
                .unwrap()
                .to_owned()
        } else {
            r.json()["inference_id"].as_str().unwrap().to_owned()
        };
        assert_eq!(
            wait_count(
                &c,
                &format!(
                    "SELECT count(*) FROM tensorzero.model_inferences WHERE inference_id = '{id}'"
                ),
                1
            )
            .await,
            1
        );
        let row = c
            .query_one(
                &format!(
                    "SELECT i.function_name, m.model_provider_name, d.raw_request, d.raw_response
                     FROM tensorzero.chat_inferences i JOIN tensorzero.model_inferences m ON m.inference_id = i.id
                     JOIN tensorzero.model_inference_data d ON d.id = m.id AND d.created_at = m.created_at
                     WHERE i.id = '{id}'"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "weather");
        assert_eq!(row.get::<_, String>(1), "tensorzero::relay");
        let sent: Value = serde_json::from_str(&row.get::<_, String>(2)).unwrap();
        assert_eq!(sent["model_name"], "tool", "the body POSTed to the relay");
        let answer = row.get::<_, String>(3);
        assert!(
            answer
                .lines()
                .all(|l| serde_json::from_str::<Value>(l).is_ok())
                && answer.contains("get_weather"),
            "the relay's answer (its chunks, one per line, when streamed): {answer}"
        );
    }
    // The relay stored its own inferences: default function, the edge's model as the variant,
    // its provider's exchange.
    let relay_rows: i64 = wait_count(
        &c,
        "SELECT count(*) FROM tensorzero.chat_inferences i JOIN tensorzero.model_inferences m ON m.inference_id = i.id
         WHERE i.function_name = 'tensorzero::default' AND i.variant_name = 'tool' AND m.model_provider_name = 'mock'",
        2,
    )
    .await;
    assert_eq!(relay_rows, 2);
}

#[tokio::test]
async fn stored_inferences_are_read_back_with_filters_order_and_cursors() {
    let (pg, gw) = storing_gateway(STORE_CONFIG).await;
    let c = client(&pg).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = gw
            .post(
                "/inference",
                &json!({"function_name": "weather", "tags": {"n": i.to_string(), "team": if i % 2 == 0 { "even" } else { "odd" }},
                        "input": {"messages": [{"role": "user", "content": format!("city {i}")}]}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["inference_id"].as_str().unwrap().to_owned());
    }
    let r = gw
        .post(
            "/inference",
            &json!({"function_name": "extract", "input": {"messages": [{"role": "user", "content": "json please"}]}}),
        )
        .await;
    let json_id = r.json()["inference_id"].as_str().unwrap().to_owned();
    assert_eq!(
        wait_count(&c, "SELECT count(*) FROM tensorzero.chat_inference_data", 5).await,
        5
    );
    wait_count(&c, "SELECT count(*) FROM tensorzero.json_inference_data", 1).await;
    // Feedback on two of them, a demonstration on one.
    for (i, value) in [(1, true), (3, false)] {
        let r = gw
            .post(
                "/feedback",
                &json!({"inference_id": ids[i], "metric_name": "task_success", "value": value}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = gw
        .post("/feedback", &json!({"inference_id": ids[2], "metric_name": "demonstration", "value": "It is sunny."}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    wait_count(
        &c,
        "SELECT count(*) FROM tensorzero.boolean_metric_feedback",
        2,
    )
    .await;
    wait_count(
        &c,
        "SELECT count(*) FROM tensorzero.demonstration_feedback",
        1,
    )
    .await;

    // get_inferences: newest first, unknown ids left out, both kinds.
    let r = gw
        .post(
            "/v1/inferences/get_inferences",
            &json!({"ids": [ids[0], json_id, old_v7()]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json()["inferences"].as_array().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["inference_id"], json_id.as_str());
    assert_eq!(got[0]["type"], "json");
    assert_eq!(
        got[0]["output"],
        json!({"raw": "{\"answer\":42}", "parsed": {"answer": 42}})
    );
    assert_eq!(got[0]["output_schema"]["required"], json!(["answer"]));
    let chat = &got[1];
    assert_eq!(chat["type"], "chat");
    assert_eq!(chat["function_name"], "weather");
    assert_eq!(chat["variant_name"], "only");
    assert_eq!(
        chat["input"],
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "city 0"}]}]})
    );
    assert_eq!(chat["output"][0]["name"], "get_weather");
    assert_eq!(chat["tool_choice"], "auto");
    assert!(
        chat.get("allowed_tools").is_none(),
        "function_default tools are not echoed"
    );
    assert_eq!(chat["tags"], json!({"n": "0", "team": "even"}));
    assert_eq!(chat["dispreferred_outputs"], json!([]));
    assert!(chat["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(chat["processing_time_ms"].as_i64().is_some());
    let r = gw
        .post(
            "/v1/inferences/get_inferences",
            &json!({"ids": [ids[0]], "function_name": "nope"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "Unknown function: nope");

    // list_inferences: by function, newest first, limit; then pages with cursors.
    let list = |body: Value| {
        let gw = &gw;
        async move {
            let r = gw.post("/v1/inferences/list_inferences", &body).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            r.json()["inferences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["inference_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let newest: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(list(json!({"function_name": "weather"})).await, newest);
    assert_eq!(
        list(json!({"function_name": "weather", "limit": 2})).await,
        newest[..2]
    );
    assert_eq!(
        list(json!({"function_name": "weather", "limit": 2, "before": newest[1]})).await,
        newest[2..4]
    );
    assert_eq!(
        list(json!({"function_name": "weather", "limit": 2, "after": newest[3]})).await,
        newest[1..3],
        "an `after` page holds the next newer ones, shown newest first"
    );
    assert_eq!(
        list(json!({"function_name": "weather", "offset": 3})).await,
        newest[3..]
    );
    assert_eq!(
        list(json!({})).await.len(),
        6,
        "both kinds without a function"
    );
    // Filters: tags, metrics, demonstrations, time, and/or/not.
    assert_eq!(
        list(json!({"function_name": "weather", "filters": {"type": "tag", "key": "team", "value": "odd", "comparison_operator": "="}})).await,
        vec![ids[3].clone(), ids[1].clone()]
    );
    assert_eq!(
        list(json!({"function_name": "weather", "filter": {"type": "boolean_metric", "metric_name": "task_success", "value": true}})).await,
        vec![ids[1].clone()]
    );
    assert_eq!(
        list(json!({"function_name": "weather", "filters": {"type": "demonstration_feedback", "has_demonstration": true}})).await,
        vec![ids[2].clone()]
    );
    assert_eq!(
        list(json!({"function_name": "weather", "filters": {"type": "and", "children": [
            {"type": "tag", "key": "team", "value": "even", "comparison_operator": "="},
            {"type": "not", "child": {"type": "tag", "key": "n", "value": "4", "comparison_operator": "="}}]}})).await,
        vec![ids[2].clone(), ids[0].clone()]
    );
    assert_eq!(
        list(json!({"function_name": "weather", "filters": {"type": "time", "time": "2020-01-01T00:00:00Z", "comparison_operator": "<"}})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(json!({"function_name": "weather", "search_query_experimental": "city 3"})).await,
        vec![ids[3].clone()]
    );
    // Ordered by the metric: true before false, then those without feedback.
    let by_metric = list(json!({"function_name": "weather", "order_by": [{"by": "metric", "name": "task_success", "direction": "descending"}]})).await;
    assert_eq!(by_metric[..2], [ids[1].clone(), ids[3].clone()]);
    // The demonstration as the output, the stored one as dispreferred.
    let r = gw
        .post(
            "/v1/inferences/list_inferences",
            &json!({"function_name": "weather", "output_source": "demonstration"}),
        )
        .await;
    let listed = r.json()["inferences"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["output"],
        json!([{"type": "text", "text": "It is sunny."}])
    );
    assert_eq!(
        listed[0]["dispreferred_outputs"][0][0]["name"],
        "get_weather"
    );

    // The refusals.
    for (body, status, message) in [
        (
            json!({"before": ids[0], "after": ids[1]}),
            400,
            "Cannot specify both 'before' and 'after' parameters",
        ),
        (
            json!({"before": ids[0], "offset": 2}),
            400,
            "Cannot use 'offset' with cursor pagination ('before' or 'after')",
        ),
        (
            json!({"filters": {"type": "float_metric", "metric_name": "nope", "value": 1.0, "comparison_operator": ">"}}),
            400,
            "Invalid metric name: nope",
        ),
        (
            json!({"filters": {"type": "float_metric", "metric_name": "task_success", "value": 1.0, "comparison_operator": ">"}}),
            400,
            "Metric `task_success` is not a float metric",
        ),
        (
            json!({"function_name": "nope"}),
            404,
            "Unknown function: nope",
        ),
        (
            json!({"order_by": [{"by": "metric", "name": "task_success"}]}),
            400,
            "Ordering by metric requires `function_name`",
        ),
    ] {
        let r = gw.post("/v1/inferences/list_inferences", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.error(), message, "{body}");
    }
}

/// `METHOD path` with a JSON body.
async fn call(
    gw: &Harness,
    method: http::Method,
    path: &str,
    body: &Value,
) -> crate::harness::Reply {
    crate::harness::send(
        method,
        &gw.url(path),
        bytes::Bytes::from(body.to_string()),
        &[("content-type", "application/json")],
    )
    .await
}

#[tokio::test]
async fn datasets_are_created_listed_edited_and_deleted() {
    use http::Method;
    let (pg, gw) = storing_gateway(STORE_CONFIG).await;
    let c = client(&pg).await;
    // By hand: one chat datapoint with a tool call output, one json datapoint.
    let r = call(&gw, Method::POST, "/v1/datasets/golden/datapoints", &json!({"datapoints": [
        {"type": "chat", "function_name": "weather", "input": {"messages": [{"role": "user", "content": "Nice?"}]},
         "output": [{"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Nice"}}], "tags": {"src": "hand"}, "name": "nice"},
        {"type": "json", "function_name": "extract", "input": {"messages": [{"role": "user", "content": "x"}]}, "output": {"raw": "{\"answer\":1}"}}
    ]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let created: Vec<String> = serde_json::from_value(r.json()["ids"].clone()).unwrap();
    assert_eq!(created.len(), 2);
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/golden/list_datapoints",
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json()["datapoints"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    let chat = listed.iter().find(|d| d["type"] == "chat").unwrap();
    assert_eq!(chat["dataset_name"], "golden");
    assert_eq!(chat["is_custom"], true);
    assert_eq!(chat["name"], "nice");
    assert_eq!(
        chat["input"],
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "Nice?"}]}]})
    );
    assert_eq!(chat["output"][0]["arguments"], json!({"city": "Nice"}));
    assert_eq!(chat["output"][0]["raw_arguments"], "{\"city\":\"Nice\"}");
    assert_eq!(chat["tool_choice"], "auto");
    assert!(chat["updated_at"].as_str().unwrap().ends_with('Z'));
    let json_dp = listed.iter().find(|d| d["type"] == "json").unwrap();
    assert_eq!(
        json_dp["output"],
        json!({"raw": "{\"answer\":1}", "parsed": {"answer": 1}})
    );
    assert_eq!(json_dp["output_schema"]["required"], json!(["answer"]));

    // From stored inferences, with their demonstrations as outputs.
    let r = gw
        .post("/inference", &json!({"function_name": "weather", "tags": {"k": "v"}, "input": {"messages": [{"role": "user", "content": "Rome?"}]}}))
        .await;
    let inference_id = r.json()["inference_id"].as_str().unwrap().to_owned();
    wait_count(
        &c,
        &format!("SELECT count(*) FROM tensorzero.chat_inference_data WHERE id = '{inference_id}'"),
        1,
    )
    .await;
    let r = call(&gw, Method::POST, "/v1/datasets/golden/from_inferences",
        &json!({"type": "inference_ids", "inference_ids": [inference_id], "output_source": "demonstration"})).await;
    assert_eq!(r.status, 400, "no demonstration yet: {}", r.text());
    assert_eq!(r.error(), format!("Inference {inference_id} not found"));
    let r = gw.post("/feedback", &json!({"inference_id": inference_id, "metric_name": "demonstration", "value": "Sunny in Rome."})).await;
    assert_eq!(r.status, 200);
    wait_count(
        &c,
        "SELECT count(*) FROM tensorzero.demonstration_feedback",
        1,
    )
    .await;
    let r = call(&gw, Method::POST, "/v1/datasets/golden/from_inferences",
        &json!({"type": "inference_ids", "inference_ids": [inference_id], "output_source": "demonstration"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let from_inference = r.json()["ids"][0].as_str().unwrap().to_owned();
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/golden/get_datapoints",
        &json!({"ids": [from_inference]}),
    )
    .await;
    let dp = r.json()["datapoints"][0].clone();
    assert_eq!(dp["source_inference_id"], inference_id.as_str());
    assert_eq!(dp["is_custom"], false);
    assert_eq!(dp["tags"], json!({"k": "v"}));
    assert_eq!(
        dp["output"],
        json!([{"type": "text", "text": "Sunny in Rome."}])
    );
    // By query: every weather inference, no outputs.
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/inputs_only/from_inferences",
        &json!({"type": "inference_query", "function_name": "weather", "output_source": "none"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ids"].as_array().unwrap().len(), 1);

    // An edit is copy-on-write: a new id; the old row is staled but still readable by id.
    let old = created[0].clone();
    let r = call(&gw, Method::PATCH, "/v1/datasets/golden/datapoints",
        &json!({"datapoints": [{"type": "chat", "id": old, "output": [{"type": "text", "text": "edited"}], "name": null}]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_id = r.json()["ids"][0].as_str().unwrap().to_owned();
    assert_ne!(new_id, old);
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/get_datapoints",
        &json!({"ids": [old, new_id]}),
    )
    .await;
    let both = r.json()["datapoints"].as_array().unwrap().clone();
    let old_row = both.iter().find(|d| d["id"] == old.as_str()).unwrap();
    let new_row = both.iter().find(|d| d["id"] == new_id.as_str()).unwrap();
    assert!(old_row["staled_at"].is_string());
    assert_eq!(
        new_row["output"],
        json!([{"type": "text", "text": "edited"}])
    );
    assert!(new_row.get("name").is_none());
    assert_eq!(
        new_row["tags"],
        json!({"src": "hand"}),
        "fields not in the update are kept"
    );
    for (body, status, message) in [
        (
            json!({"datapoints": [{"type": "chat", "id": old}]}),
            404,
            format!("Datapoint not found for dataset: golden and id: {old}"),
        ),
        (
            json!({"datapoints": [{"type": "chat", "id": new_id}, {"type": "chat", "id": new_id}]}),
            400,
            format!("Duplicate datapoint id provided: {new_id}"),
        ),
        (
            json!({"datapoints": [{"type": "chat", "id": created[1]}]}),
            400,
            format!(
                "Datapoint {} is a JSON datapoint but a chat update was provided",
                created[1]
            ),
        ),
        (
            json!({"datapoints": []}),
            400,
            "At least one datapoint must be provided".to_owned(),
        ),
    ] {
        let r = call(&gw, Method::PATCH, "/v1/datasets/golden/datapoints", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.error(), message);
    }
    // Metadata edits keep the id.
    let r = call(
        &gw,
        Method::PATCH,
        "/v1/datasets/golden/datapoints/metadata",
        &json!({"datapoints": [{"id": new_id, "name": "renamed"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ids"], json!([new_id]));

    // Soft deletes.
    let r = call(
        &gw,
        Method::DELETE,
        "/v1/datasets/golden/datapoints",
        &json!({"ids": [new_id]}),
    )
    .await;
    assert_eq!(r.json(), json!({"num_deleted_datapoints": 1}));
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/golden/list_datapoints",
        &json!({"function_name": "weather"}),
    )
    .await;
    assert_eq!(
        r.json()["datapoints"].as_array().unwrap().len(),
        1,
        "only the one from the inference is left"
    );
    let r = call(&gw, Method::DELETE, "/v1/datasets/golden", &json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"num_deleted_datapoints": 2}));
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/golden/list_datapoints",
        &json!({}),
    )
    .await;
    assert_eq!(r.json()["datapoints"], json!([]));
    let live: i64 = c
        .query_one("SELECT count(*) FROM tensorzero.chat_datapoints", &[])
        .await
        .unwrap()
        .get(0);
    assert!(live >= 3, "deletes are soft: the rows stay");

    // The refusals.
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/builder/list_datapoints",
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "Invalid dataset name: builder. Datasets cannot be named \"builder\" or begin with \"tensorzero::\""
    );
    let r = call(
        &gw,
        Method::POST,
        "/v1/datasets/golden/datapoints",
        &json!({"datapoints": []}),
    )
    .await;
    assert_eq!(r.error(), "At least one datapoint must be provided");
    let r = call(&gw, Method::POST, "/v1/datasets/golden/datapoints",
        &json!({"datapoints": [{"type": "chat", "function_name": "extract", "input": {"messages": []}}]})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error()
            .starts_with("Failed to convert chat datapoint to database insert:"),
        "{}",
        r.error()
    );
    let r = call(
        &gw,
        Method::DELETE,
        "/v1/datasets/golden/datapoints",
        &json!({"ids": []}),
    )
    .await;
    assert_eq!(r.error(), "ids must be a non-empty list");
}

const DICL_CONFIG: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[embedding_models.emb]
routing = ["mock"]
[embedding_models.emb.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "emb"
api_key_location = "none"

[functions.capitals]
type = "chat"
[functions.capitals.variants.dicl]
type = "experimental_dynamic_in_context_learning"
embedding_model = "emb"
model = "mock"
k = 2
[functions.capitals.variants.strict]
type = "experimental_dynamic_in_context_learning"
embedding_model = "emb"
model = "mock"
k = 2
max_distance = 0.000001
"#;

/// DICL end to end on `pg`: examples loaded with `--load-dicl-examples` (one per variant),
/// then inferences whose prompts hold the nearest ones.
async fn dicl_end_to_end(pg: Postgres) {
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tensorzero.toml");
    std::fs::write(&config, DICL_CONFIG.replace("{mock}", &mock.api_base())).unwrap();
    let examples = dir.path().join("examples.jsonl");
    std::fs::write(
        &examples,
        [
            r#"{"input": {"messages": [{"role": "user", "content": "Capital of France?"}]}, "output": "Paris"}"#,
            r#"{"input": {"messages": [{"role": "user", "content": "Capital of Italy?"}]}, "output": [{"type": "text", "text": "Rome"}]}"#,
            r#"{"input": {"messages": [{"role": "user", "content": "Capital of Spain?"}]}, "output": "Madrid"}"#,
            "",
        ]
        .join("\n"),
    )
    .unwrap();
    for variant in ["dicl", "strict"] {
        // Async: the mock answering its embedding calls runs on this test's runtime.
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([
                "--config-file",
                config.to_str().unwrap(),
                "--load-dicl-examples",
            ])
            .arg(&examples)
            .args(["--function-name", "capitals", "--variant-name", variant])
            .env_clear()
            .env("TENSORZERO_POSTGRES_URL", pg.url())
            .env("RUST_LOG", "warn")
            .output()
            .await
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("loaded 3 DICL examples"), "{}", text(&o));
    }
    let env = switchyard::Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Default::default()
    };
    let gw = Harness::start_with_env(mock, DICL_CONFIG, &[], &env).await;
    let c = client(&pg).await;
    let ask = |variant: &str| {
        json!({"function_name": "capitals", "variant_name": variant,
               "input": {"messages": [{"role": "user", "content": "Capital of Italy?"}]}})
    };
    let r = gw.post("/inference", &ask("dicl")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["inference_id"].as_str().unwrap().to_owned();
    let sent = crate::harness::last_request(&gw.mock).body;
    let messages = sent["messages"].as_array().unwrap().clone();
    // System instructions, two examples (user input, assistant output), then the input.
    assert_eq!(messages[0]["role"], "system");
    let italy =
        r#"{"messages":[{"content":[{"text":"Capital of Italy?","type":"text"}],"role":"user"}]}"#;
    assert_eq!(messages.len(), 6, "{messages:#?}");
    assert_eq!(
        messages[1]["content"], italy,
        "the nearest example (the same input) comes first"
    );
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], "Rome");
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(messages[5]["content"], italy, "the input itself, last");
    // The embedding call and the generation are both model rows, the embedding first.
    assert_eq!(
        wait_count(
            &c,
            &format!(
                "SELECT count(*) FROM tensorzero.model_inferences WHERE inference_id = '{id}'"
            ),
            2
        )
        .await,
        2
    );
    let first: String = c
        .query_one(
            &format!("SELECT model_name FROM tensorzero.model_inferences WHERE inference_id = '{id}' ORDER BY id LIMIT 1"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(first, "emb");
    // Its exchange is the embedding provider's: the body sent and the answer.
    let row = c
        .query_one(
            &format!(
                "SELECT d.raw_request, d.raw_response FROM tensorzero.model_inferences m
                 JOIN tensorzero.model_inference_data d ON d.id = m.id AND d.created_at = m.created_at
                 WHERE m.inference_id = '{id}' AND m.model_name = 'emb'"
            ),
            &[],
        )
        .await
        .unwrap();
    let sent: Value = serde_json::from_str(&row.get::<_, String>(0)).unwrap();
    assert!(
        sent["model"].is_string() && sent["input"].is_string(),
        "{sent}"
    );
    let answer: Value = serde_json::from_str(&row.get::<_, String>(1)).unwrap();
    assert!(answer["data"][0]["embedding"].is_array(), "{answer}");

    // max_distance keeps only the identical input's example.
    let r = gw.post("/inference", &ask("strict")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = crate::harness::last_request(&gw.mock).body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert_eq!(messages[2]["content"], "Rome");
}

#[tokio::test]
async fn dicl_ranks_examples_with_pgvector() {
    let pg = Postgres::start_with_pgvector();
    dicl_end_to_end(pg).await;
}

#[tokio::test]
async fn dicl_ranks_examples_in_the_gateway_without_pgvector() {
    let pg = Postgres::start();
    dicl_end_to_end(pg).await;
}

/// A function `ab` with three variants on the mock model, under an adaptive experiment whose
/// settings and metric level the test gives.
fn adaptive_config(metric_level: &str, experiment: &str) -> String {
    format!(
        r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{{mock}}"
model_name = "mock-model"
api_key_location = "none"

[metrics.solved]
type = "boolean"
level = "{metric_level}"
optimize = "max"

[functions.ab]
type = "chat"
[functions.ab.experimentation]
type = "adaptive"
metric = "solved"
candidate_variants = ["a", "b", "c"]
{experiment}
[functions.ab.variants.a]
type = "chat_completion"
model = "mock"
[functions.ab.variants.b]
type = "chat_completion"
model = "mock"
[functions.ab.variants.c]
type = "chat_completion"
model = "mock"
"#
    )
}

#[tokio::test]
async fn adaptive_experiments_move_traffic_to_the_variant_feedback_favours() {
    let config = adaptive_config(
        "inference",
        "min_samples_per_variant = 5\nupdate_period_s = 1\nmin_prob = 0.02",
    );
    let (pg, gw) = storing_gateway(&config).await;
    let c = client(&pg).await;
    let ask =
        json!({"function_name": "ab", "input": {"messages": [{"role": "user", "content": "go"}]}});
    // Simulated users: `b` solves 90% of tasks, `a` and `c` 20%. A deterministic sequence
    // stands in for chance.
    let mut counts = std::collections::BTreeMap::new();
    let mut served = 0u32;
    // Phase one: round-robin until each has 5 points, then learning.
    for round in 0..12 {
        for _ in 0..10 {
            let r = gw.post("/inference", &ask).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            let variant = v["variant_name"].as_str().unwrap().to_owned();
            *counts.entry((round, variant.clone())).or_insert(0u32) += 1;
            served += 1;
            let success = match variant.as_str() {
                "b" => served % 10 != 0,
                _ => served % 5 == 0,
            };
            let body = json!({"inference_id": v["inference_id"], "metric_name": "solved", "value": success});
            let r = gw.post("/feedback", &body).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        // Let the bandit see the new feedback.
        wait_count(
            &c,
            "SELECT count(*) FROM tensorzero.boolean_metric_feedback",
            i64::from(served),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    // The last rounds go (almost) all to `b`.
    let mut late = std::collections::BTreeMap::new();
    for _ in 0..50 {
        let r = gw.post("/inference", &ask).await;
        *late
            .entry(r.json()["variant_name"].as_str().unwrap().to_owned())
            .or_insert(0u32) += 1;
    }
    let b = late.get("b").copied().unwrap_or(0);
    assert!(
        b >= 40,
        "sampling converged to b: {late:?} (history {counts:?})"
    );
    // Early on, every candidate was tried.
    let early: std::collections::BTreeSet<&String> = counts
        .keys()
        .filter(|(r, _)| *r < 2)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(early.len(), 3, "{counts:?}");
}

#[tokio::test]
async fn an_episode_keeps_its_first_variant_in_an_adaptive_experiment() {
    let config = adaptive_config("episode", "update_period_s = 3600");
    let (pg, gw) = storing_gateway(&config).await;
    let c = client(&pg).await;
    let ask = |episode: Option<String>| {
        let mut body = json!({"function_name": "ab", "input": {"messages": [{"role": "user", "content": "go"}]}});
        if let Some(e) = episode {
            body["episode_id"] = json!(e);
        }
        body
    };
    let stored = |episode: String| {
        let c = &c;
        async move {
            let id = uuid::Uuid::parse_str(&episode).unwrap();
            c.query_opt(
                "SELECT variant_name FROM variant_by_episode WHERE function_name = 'ab' AND episode_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .map(|r| r.get::<_, String>(0))
        }
    };

    // A new episode: its draw is stored before the variant runs.
    let r = gw.post("/inference", &ask(None)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let episode = r.json()["episode_id"].as_str().unwrap().to_owned();
    let first = r.json()["variant_name"].as_str().unwrap().to_owned();
    assert_eq!(
        stored(episode.clone()).await.as_deref(),
        Some(first.as_str())
    );

    // Another replica (or an earlier probability) gave the episode another variant: the
    // stored one runs, whatever this gateway's own draw says.
    let other = if first == "a" { "b" } else { "a" };
    c.execute(
        "UPDATE variant_by_episode SET variant_name = $1 WHERE episode_id = $2",
        &[&other, &uuid::Uuid::parse_str(&episode).unwrap()],
    )
    .await
    .unwrap();
    for _ in 0..3 {
        let r = gw.post("/inference", &ask(Some(episode.clone()))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["variant_name"], other);
    }
    assert_eq!(stored(episode.clone()).await.as_deref(), Some(other));

    // A stored variant the configuration no longer offers is not used: the draw runs.
    c.execute(
        "UPDATE variant_by_episode SET variant_name = 'retired' WHERE episode_id = $1",
        &[&uuid::Uuid::parse_str(&episode).unwrap()],
    )
    .await
    .unwrap();
    let r = gw.post("/inference", &ask(Some(episode.clone()))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variant_name"], first.as_str());

    // A dryrun stores nothing, also no draw; it still follows a stored one.
    let mut dry = ask(None);
    dry["dryrun"] = json!(true);
    let r = gw.post("/inference", &dry).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        stored(r.json()["episode_id"].as_str().unwrap().to_owned()).await,
        None
    );
    c.execute(
        "UPDATE variant_by_episode SET variant_name = $1 WHERE episode_id = $2",
        &[&other, &uuid::Uuid::parse_str(&episode).unwrap()],
    )
    .await
    .unwrap();
    let mut dry = ask(Some(episode.clone()));
    dry["dryrun"] = json!(true);
    assert_eq!(
        gw.post("/inference", &dry).await.json()["variant_name"],
        other
    );

    // Each new episode gets a row, the variant it ran.
    let mut ran = Vec::new();
    for _ in 0..12 {
        let r = gw.post("/inference", &ask(None)).await;
        let v = r.json();
        let episode = v["episode_id"].as_str().unwrap().to_owned();
        assert_eq!(stored(episode).await.as_deref(), v["variant_name"].as_str());
        ran.push(v["variant_name"].as_str().unwrap().to_owned());
    }
    ran.sort();
    ran.dedup();
    assert!(
        ran.len() > 1,
        "the draws still spread over the candidates: {ran:?}"
    );

    // Without Postgres, inferences go on with their own draw (the lookup waits 500 ms at most).
    pg.stop();
    let r = gw.post("/inference", &ask(Some(episode.clone()))).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn start_up_follows_tensorzeros_enabled_rules_and_makes_coming_partitions() {
    let pg = Postgres::start();
    let o = migrate(&pg);
    assert!(o.status.success(), "{}", text(&o));
    let c = client(&pg).await;
    let mock = MockProvider::start().await.unwrap();
    let model = format!(
        "[models.mock]\nrouting = [\"mock\"]\n[models.mock.providers.mock]\ntype = \"openai\"\napi_base = \"{}\"\nmodel_name = \"mock-model\"\napi_key_location = \"none\"\n",
        mock.api_base()
    );
    let load = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tensorzero.toml");
        std::fs::write(&path, format!("{extra}\n{model}")).unwrap();
        let loaded = switchyard::config::LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
        (loaded, dir)
    };
    let with_pg = switchyard::Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Default::default()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));

    // Start-up refused: why, in the message.
    let refused = |extra: &'static str, env: switchyard::Environment| async move {
        let (loaded, _d) = load(extra);
        switchyard::start_with(&loaded, addr, &env)
            .await
            .err()
            .unwrap_or_else(|| panic!("started with {extra:?}"))
            .to_string()
    };
    let without_pg = switchyard::Environment::default;
    for (extra, env, why) in [
        // `enabled = true` without a store: TensorZero's reason.
        (
            "[gateway.observability]\nenabled = true",
            without_pg(),
            "Observability is enabled but no backend is available",
        ),
        (
            "[gateway.observability]\nenabled = true\nbackend = \"postgres\"",
            without_pg(),
            "A Postgres connection is required",
        ),
        // ClickHouse as the store, required (switchyard has none).
        (
            "[gateway.observability]\nenabled = true\nbackend = \"clickhouse\"",
            with_pg.clone(),
            "Postgres only, not ClickHouse",
        ),
        // Object storage in a directory that is not there: which, and what to do.
        (
            "[object_storage]\ntype = \"filesystem\"\npath = \"/nonexistent/switchyard-files\"",
            with_pg.clone(),
            "\"/nonexistent/switchyard-files\" is not a directory",
        ),
    ] {
        let e = refused(extra, env).await;
        assert!(e.contains(why), "{extra}: {e}");
    }

    // A missing future partition is made again at start-up.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y_%m_%d")
        .to_string();
    c.batch_execute(&format!(
        "DROP TABLE tensorzero.chat_inference_data_{tomorrow}"
    ))
    .await
    .unwrap();
    // `enabled = false` with Postgres: nothing is stored.
    let (loaded, _d) = load("[gateway.observability]\nenabled = false");
    let gw = switchyard::start_with(&loaded, addr, &with_pg)
        .await
        .unwrap();
    let url = format!("http://{}", gw.addr);
    let r = crate::harness::send(
        http::Method::POST,
        &format!("{url}/inference"),
        bytes::Bytes::from(json!({"model_name": "mock", "input": {"messages": [{"role": "user", "content": "x"}]}}).to_string()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200);
    drop(gw);
    // Unset: on, because Postgres is there; and its upkeep made tomorrow's partition again.
    let (loaded, _d) = load("");
    let gw = switchyard::start_with(&loaded, addr, &with_pg)
        .await
        .unwrap();
    let url = format!("http://{}", gw.addr);
    let r = crate::harness::send(
        http::Method::POST,
        &format!("{url}/inference"),
        bytes::Bytes::from(json!({"model_name": "mock", "input": {"messages": [{"role": "user", "content": "y"}]}}).to_string()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        wait_count(&c, "SELECT count(*) FROM tensorzero.chat_inferences", 1).await,
        1,
        "only the second gateway stored"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !exists(&c, &format!("tensorzero.chat_inference_data_{tomorrow}")).await {
        assert!(
            std::time::Instant::now() < deadline,
            "tomorrow's partition is made at start-up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
