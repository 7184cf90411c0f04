//! `--run-postgres-migrations`: the observability layout (TensorZero 2026.4's tables in schema
//! `tensorzero`), created when it is absent and recorded in switchyard's own bookkeeping.
//!
//! TensorZero's migrator owns the layout when it created it (its `_sqlx_migrations` records the
//! inference tables): switchyard then creates nothing and writes into it unchanged. When
//! switchyard created the layout, it says so in its own bookkeeping table
//! (`switchyard_migrations`) and never in TensorZero's. TensorZero's migrations create these
//! tables without `IF NOT EXISTS`, so a database where switchyard created them first cannot be
//! migrated by TensorZero afterwards: run TensorZero's migrations first when both gateways
//! share a database (the README says so).

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

/// The layout's DDL (switchyard migration 1).
const SCHEMA: &str = include_str!("schema.sql");

/// `tensorzero.dicl_examples`: with pgvector, as TensorZero makes it (`embedding vector`);
/// without it, the same table with `embedding real[]`, which the gateway ranks itself (see
/// `dicl`). TensorZero creates no such table without pgvector, so this one is switchyard's
/// own choice.
const DICL_EXAMPLES: &str = r#"
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE IF NOT EXISTS tensorzero.dicl_examples (
            id UUID PRIMARY KEY,
            function_name TEXT NOT NULL,
            variant_name TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            embedding vector NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
        );
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pgvector is not available (%): tensorzero.dicl_examples keeps embeddings as real[]', SQLERRM;
        CREATE TABLE IF NOT EXISTS tensorzero.dicl_examples (
            id UUID PRIMARY KEY,
            function_name TEXT NOT NULL,
            variant_name TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            embedding REAL[] NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
        );
    END;
    CREATE INDEX IF NOT EXISTS dicl_examples_function_variant
        ON tensorzero.dicl_examples (function_name, variant_name, namespace);
    CREATE INDEX IF NOT EXISTS dicl_examples_created_at ON tensorzero.dicl_examples (created_at);
END
$$;
"#;

/// switchyard's own migration bookkeeping (never TensorZero's tables).
const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS switchyard_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    checksum BYTEA NOT NULL
)";

/// The TensorZero core migration that gives the inference tables their final shape (split
/// metadata and data tables): when it is recorded, TensorZero owns the layout.
const TENSORZERO_LAYOUT_VERSION: i64 = 20260213142997;

/// Serializes concurrent migration runs (any value distinct from the other stores' locks).
const LOCK: i64 = 0x5377_6974_4f62_7376; // "SwitObsv"

/// Who made the layout a database has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// switchyard created it now.
    Created,
    /// switchyard created it before (recorded in `switchyard_migrations`).
    AlreadySwitchyards,
    /// TensorZero's migrations created it: switchyard uses it as it is.
    TensorZeros,
}

fn db(e: tokio_postgres::Error) -> String {
    format!("Database error: {e}")
}

/// Creates the observability layout unless it exists (safe to run any number of times;
/// concurrent runs serialize on an advisory lock), then the coming partitions.
pub async fn migrate(pool: &Pool) -> Result<Layout, String> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(BOOKKEEPING).await.map_err(db)?;
    let ours = tx
        .query_opt("SELECT 1 FROM switchyard_migrations WHERE version = 1", &[])
        .await
        .map_err(db)?
        .is_some();
    let theirs = tensorzero_owns_layout(&tx).await?;
    let layout = if ours {
        Layout::AlreadySwitchyards
    } else if theirs {
        Layout::TensorZeros
    } else {
        tx.batch_execute(SCHEMA).await.map_err(db)?;
        let checksum = Sha256::digest(SCHEMA.as_bytes()).to_vec();
        tx.execute(
            "INSERT INTO switchyard_migrations (version, description, checksum) VALUES (1, 'observability layout', $1)",
            &[&checksum],
        )
        .await
        .map_err(db)?;
        Layout::Created
    };
    if layout != Layout::TensorZeros {
        // Idempotent, so layouts switchyard made before DICL examples existed get the table.
        tx.batch_execute(DICL_EXAMPLES).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    super::partitions::maintain(pool, &super::partitions::Retention::default()).await?;
    Ok(layout)
}

/// Whether TensorZero's core migrations recorded the split inference tables.
async fn tensorzero_owns_layout(tx: &tokio_postgres::Transaction<'_>) -> Result<bool, String> {
    let has_table = tx
        .query_one("SELECT to_regclass('_sqlx_migrations') IS NOT NULL", &[])
        .await
        .map_err(db)?
        .get::<_, bool>(0);
    if !has_table {
        return Ok(false);
    }
    Ok(tx
        .query_opt(
            "SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND success",
            &[&TENSORZERO_LAYOUT_VERSION],
        )
        .await
        .map_err(db)?
        .is_some())
}

/// Whether the database has the layout (by either gateway's migrations).
pub async fn layout_exists(pool: &Pool) -> Result<bool, String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    Ok(client
        .query_one(
            "SELECT to_regclass('tensorzero.chat_inferences') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db)?
        .get::<_, bool>(0))
}
