//! `[clickhouse]` and `[postgres]`: options for the stores whose connections come from
//! `TENSORZERO_CLICKHOUSE_URL` and `TENSORZERO_POSTGRES_URL`.

use serde::Deserialize;

/// `[clickhouse]` (TensorZero rejects unknown keys here, and so does switchyard).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// Leave ClickHouse migrations to an operator.
    #[serde(default)]
    pub disable_automatic_migrations: bool,
}

/// `[postgres]`. Unknown keys are ignored, as TensorZero ignores them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PostgresConfig {
    /// The largest number of connections in the pool (default 20).
    pub connection_pool_size: Option<u32>,
    /// Drop monthly partitions of inference metadata older than this many days.
    pub inference_metadata_retention_days: Option<u32>,
    /// Drop daily partitions of inference data older than this many days.
    #[serde(alias = "inference_retention_days")]
    pub inference_data_retention_days: Option<u32>,
    /// Deprecated and ignored: whether Postgres is used depends on `TENSORZERO_POSTGRES_URL`.
    pub enabled: Option<bool>,
}
