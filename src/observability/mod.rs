//! The observability store: inferences, model calls and feedback written to Postgres in
//! TensorZero 2026.4's own layout (schema `tensorzero`), so that TensorZero's UI and tools read
//! what switchyard writes and switchyard reads what TensorZero wrote.
//!
//! - [`migrations`]: `--run-postgres-migrations` creates the layout when it is absent.
//! - [`partitions`]: the coming days' and months' partitions, and retention, kept by the
//!   gateway itself (at start-up and daily) so nothing depends on `pg_cron`.
//! - [`rows`]: the rows and the JSON shapes of their columns.
//! - [`files`]: `[object_storage]`, where input files' bytes go.
//! - [`recorder`]: what an inference's model calls did, gathered while it runs.
//! - [`writer`]: the bounded queue and the background writer.
//!
//! Whether the store is on follows TensorZero's rules ([`resolve`]).

pub mod datasets;
pub mod dicl;
pub mod files;
pub mod migrations;
pub mod partitions;
pub mod reads;
pub mod recorder;
pub mod rows;
pub mod targets;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

pub use migrations::{Layout, migrate};
pub use recorder::Recorder;
pub use writer::{Row, Writer};

use crate::config::gateway::{ObservabilityBackend, ObservabilityConfig};
use crate::config::stores::PostgresConfig;

/// Where inferences and feedback go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Nowhere: writes are no-ops, `/feedback` answers 400.
    Disabled,
    /// Postgres at `TENSORZERO_POSTGRES_URL`.
    Postgres,
}

/// TensorZero's choice of store: `enabled = false` turns it off; `backend = "auto"` takes
/// ClickHouse when `TENSORZERO_CLICKHOUSE_URL` is set, else Postgres when
/// `TENSORZERO_POSTGRES_URL` is; `enabled = true` requires the chosen one. switchyard has no
/// ClickHouse store: choosing it is an error when required, else a warning.
pub fn resolve(
    config: &ObservabilityConfig,
    postgres: bool,
    clickhouse: bool,
) -> Result<Backend, String> {
    const NO_CLICKHOUSE: &str = "switchyard stores observability data in Postgres only, not ClickHouse: unset TENSORZERO_CLICKHOUSE_URL (with `backend = \"auto\"`) or set `gateway.observability.backend = \"postgres\"`";
    let required = config.enabled == Some(true);
    if config.enabled == Some(false) {
        return Ok(Backend::Disabled);
    }
    let backend = config.backend.unwrap_or(ObservabilityBackend::Auto);
    let chosen = match backend {
        ObservabilityBackend::Auto if clickhouse => None,
        ObservabilityBackend::Auto if postgres => Some(Backend::Postgres),
        ObservabilityBackend::Auto => {
            if required {
                return Err("Observability is enabled but no backend is available: set TENSORZERO_POSTGRES_URL (switchyard stores inferences in Postgres), or set `gateway.observability.enabled = false`".into());
            }
            tracing::warn!(
                "observability: no store is configured (TENSORZERO_POSTGRES_URL is not set): inferences and feedback are not stored"
            );
            return Ok(Backend::Disabled);
        }
        ObservabilityBackend::Clickhouse => None,
        ObservabilityBackend::Postgres if postgres => Some(Backend::Postgres),
        ObservabilityBackend::Postgres => {
            if required {
                return Err("A Postgres connection is required when the primary datastore is Postgres and observability is enabled: set TENSORZERO_POSTGRES_URL".into());
            }
            tracing::warn!(
                "observability: `backend = \"postgres\"` but TENSORZERO_POSTGRES_URL is not set: inferences and feedback are not stored"
            );
            return Ok(Backend::Disabled);
        }
    };
    match chosen {
        Some(b) => Ok(b),
        None if required => Err(NO_CLICKHOUSE.into()),
        None => {
            tracing::warn!(
                "observability: {NO_CLICKHOUSE}; inferences and feedback are not stored"
            );
            Ok(Backend::Disabled)
        }
    }
}

/// The running store: its writer and what keeps its partitions.
#[derive(Debug)]
pub struct Store {
    /// The writer (and its pool).
    pub writer: Arc<Writer>,
    maintenance: tokio::task::JoinHandle<()>,
}

impl Store {
    /// Checks that the layout is there, syncs retention as TensorZero does, and starts the
    /// writer and the daily partition upkeep.
    pub async fn start(
        pool: Pool,
        config: &ObservabilityConfig,
        postgres: Option<&PostgresConfig>,
        metrics: Arc<crate::metrics::GatewayMetrics>,
    ) -> Result<Self, String> {
        if !migrations::layout_exists(&pool).await? {
            return Err("the observability tables are missing from TENSORZERO_POSTGRES_URL's database: run `switchyard --run-postgres-migrations` (or TensorZero's `gateway --run-postgres-migrations`) once, or set `gateway.observability.enabled = false`".into());
        }
        let retention = partitions::Retention {
            metadata_days: postgres.and_then(|p| p.inference_metadata_retention_days),
            data_days: postgres.and_then(|p| p.inference_data_retention_days),
        };
        sync_retention(&pool, &retention).await?;
        let maintenance = tokio::spawn(keep_partitions(pool.clone(), retention));
        let writer = Writer::start(pool, writer::Settings::from_config(config), metrics);
        Ok(Self {
            writer,
            maintenance,
        })
    }

    /// Writes what is queued (within `within`) and stops.
    pub async fn close(&self, within: Duration) {
        self.maintenance.abort();
        self.writer.close(within).await;
    }
}

/// `tensorzero.retention_config` as TensorZero's gateways leave it at start-up: the legacy
/// key removed, each key set from `[postgres]` or deleted when unset (the last gateway to
/// start wins, in either gateway).
async fn sync_retention(pool: &Pool, retention: &partitions::Retention) -> Result<(), String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    let db = |e: tokio_postgres::Error| format!("syncing tensorzero.retention_config: {e}");
    client
        .execute(
            "DELETE FROM tensorzero.retention_config WHERE key = 'inference_retention_days'",
            &[],
        )
        .await
        .map_err(db)?;
    for (key, days) in [
        ("inference_metadata_retention_days", retention.metadata_days),
        ("inference_data_retention_days", retention.data_days),
    ] {
        match days {
            Some(days) => client
                .execute(
                    "INSERT INTO tensorzero.retention_config (key, value, updated_at) VALUES ($1, $2, NOW())
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = NOW()",
                    &[&key, &days.to_string()],
                )
                .await
                .map_err(db)?,
            None => client
                .execute(
                    "DELETE FROM tensorzero.retention_config WHERE key = $1",
                    &[&key],
                )
                .await
                .map_err(db)?,
        };
    }
    Ok(())
}

/// Creates the coming partitions and applies retention now and then every day (every
/// gateway tries; the advisory lock lets one at a time do it).
async fn keep_partitions(pool: Pool, retention: partitions::Retention) {
    const DAILY: Duration = Duration::from_secs(24 * 60 * 60);
    loop {
        match partitions::maintain(&pool, &retention).await {
            Ok(done) if !done.created.is_empty() || !done.dropped.is_empty() => tracing::info!(
                created = done.created.len(),
                dropped = done.dropped.len(),
                "observability: partitions maintained"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "observability: partition upkeep failed; retrying in a minute");
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            }
        }
        tokio::time::sleep(DAILY).await;
    }
}
