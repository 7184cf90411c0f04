//! The observability store's layout in a real Postgres: `--run-postgres-migrations` creates
//! TensorZero's tables (schema `tensorzero`) with their partitions when they are absent, records
//! it in switchyard's own bookkeeping, leaves a layout TensorZero's migrator created alone, and
//! keeps partitions ahead of time and within retention.

use std::process::{Command, Output};

use switchyard::api_keys::PostgresKeyStore;
use switchyard::observability::partitions::{self, Retention};

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
