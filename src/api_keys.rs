//! API keys in Postgres: the TensorZero Gateway's `tensorzero_auth_api_key` table, so keys
//! made by either gateway work with both.
//!
//! Only the SHA-256 of a key's secret part is stored; the public id is stored in the clear and
//! is what lookups, logs and listings use.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use switchyard_layers::auth::{ApiKey, Expiry, KeyRecord, KeyStore, StoreUnavailable};

/// How long a lookup may take before the request gets a 503.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections in the pool unless `postgres.connection_pool_size` says otherwise (TensorZero's
/// default).
pub const DEFAULT_POOL_SIZE: usize = 20;
/// Keeps concurrent migrations (several replicas starting at once) from racing.
const MIGRATION_LOCK: i64 = 0x5377_6974_6368_7961; // "Switchya"

/// The schema, written so that running it again (or after the TensorZero Gateway's own
/// migrations) changes nothing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tensorzero_auth_api_key (
    id BIGSERIAL PRIMARY KEY,
    organization TEXT NOT NULL,
    workspace TEXT NOT NULL,
    description TEXT,
    public_id CHAR(12) NOT NULL UNIQUE,
    hash VARCHAR(255) NOT NULL,
    disabled_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE tensorzero_auth_api_key ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ;
";

/// One row of `--list-api-keys`.
#[derive(Debug)]
pub struct KeyInfo {
    /// The public id.
    pub public_id: String,
    /// The description, if any.
    pub description: Option<String>,
    /// When it was made.
    pub created_at: Option<DateTime<Utc>>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// The key table, through a connection pool.
#[derive(Clone, Debug)]
pub struct PostgresKeyStore {
    pool: Pool,
}

/// How timestamps appear in messages and listings.
pub fn display_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn db_error(e: impl std::fmt::Display) -> String {
    format!("Database error: {e}")
}

impl PostgresKeyStore {
    /// A pool for `url` (`postgres://user:pass@host:port/db`); TLS is used when the server
    /// offers it, or required with `sslmode=require`. Nothing connects until first use.
    pub fn connect(url: &str) -> Result<Self, String> {
        Self::connect_with_pool_size(url, DEFAULT_POOL_SIZE)
    }

    /// [`Self::connect`] with at most `pool_size` connections (`postgres.connection_pool_size`).
    pub fn connect_with_pool_size(url: &str, pool_size: usize) -> Result<Self, String> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("TENSORZERO_POSTGRES_URL is not a valid Postgres URL: {e}"))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::http_client::tls_config());
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(Duration::from_secs(2));
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot set up the Postgres pool: {e}"))?;
        Ok(Self { pool })
    }

    /// The pool (the gateway's one Postgres pool: rate-limit buckets use it too).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool.get().await.map_err(|e| {
            let detail = match &e {
                deadpool_postgres::PoolError::Backend(b) => crate::error::error_chain(b),
                other => other.to_string(),
            };
            format!("cannot connect to Postgres: {detail}")
        })
    }

    /// Checks that Postgres answers and the key table exists.
    pub async fn check(&self) -> Result<(), String> {
        let client = self.client().await?;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('tensorzero_auth_api_key') IS NOT NULL",
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        if exists {
            Ok(())
        } else {
            Err("the table `tensorzero_auth_api_key` does not exist; run `switchyard --run-postgres-migrations` first".into())
        }
    }

    /// Creates the key table if it is missing (safe to run any number of times, concurrently).
    pub async fn migrate(&self) -> Result<(), String> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_error)?;
        tx.batch_execute(SCHEMA).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Makes a new key (organization and workspace `default`, as the TensorZero Gateway does).
    pub async fn create(
        &self,
        description: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiKey, String> {
        let client = self.client().await?;
        // A clash of random 12-character public ids is astronomically rare; retry anyway.
        for _ in 0..3 {
            let key = ApiKey::generate();
            let inserted = client
                .execute(
                    "INSERT INTO tensorzero_auth_api_key (organization, workspace, description, public_id, hash, expires_at)
                     VALUES ('default', 'default', $1, $2, $3, $4) ON CONFLICT (public_id) DO NOTHING",
                    &[&description, &key.public_id(), &key.hash(), &expires_at],
                )
                .await
                .map_err(db_error)?;
            if inserted == 1 {
                return Ok(key);
            }
        }
        Err("could not find a free public id; try again".into())
    }

    /// Disables a key; says whether it was active, and errs if there is no such key.
    pub async fn disable(&self, public_id: &str) -> Result<bool, String> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE tensorzero_auth_api_key SET disabled_at = now(), updated_at = now()
                 WHERE public_id = $1 AND disabled_at IS NULL",
                &[&public_id],
            )
            .await
            .map_err(db_error)?;
        if changed == 1 {
            return Ok(true);
        }
        let exists = client
            .query_opt(
                "SELECT 1 FROM tensorzero_auth_api_key WHERE public_id = $1",
                &[&public_id],
            )
            .await
            .map_err(db_error)?
            .is_some();
        if exists {
            Ok(false)
        } else {
            Err(format!("no API key has the public id `{public_id}`"))
        }
    }

    /// Every key, oldest first (never a secret: the table holds none).
    pub async fn list(&self) -> Result<Vec<KeyInfo>, String> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT public_id, description, created_at, expires_at, disabled_at
                 FROM tensorzero_auth_api_key ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| KeyInfo {
                public_id: r.get(0),
                description: r.get(1),
                created_at: r.get(2),
                expires_at: r.get(3),
                disabled_at: r.get(4),
            })
            .collect())
    }

    async fn find(&self, public_id: &str) -> Result<KeyRecord, String> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT hash, disabled_at, expires_at FROM tensorzero_auth_api_key WHERE public_id = $1",
                &[&public_id],
            )
            .await
            .map_err(db_error)?;
        Ok(match row {
            None => KeyRecord::Missing,
            Some(row) => {
                let disabled_at: Option<DateTime<Utc>> = row.get(1);
                let expires_at: Option<DateTime<Utc>> = row.get(2);
                KeyRecord::Found {
                    hash: row.get(0),
                    disabled_at: disabled_at.as_ref().map(display_time),
                    expires_at: expires_at.map(|t| Expiry {
                        at: t.into(),
                        display: display_time(&t),
                    }),
                }
            }
        })
    }
}

impl KeyStore for PostgresKeyStore {
    fn lookup<'a>(
        &'a self,
        public_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<KeyRecord, StoreUnavailable>> + Send + 'a>> {
        Box::pin(async move {
            match tokio::time::timeout(LOOKUP_TIMEOUT, self.find(public_id)).await {
                Ok(result) => result.map_err(StoreUnavailable),
                Err(_) => Err(StoreUnavailable(format!(
                    "Postgres did not answer within {} s",
                    LOOKUP_TIMEOUT.as_secs()
                ))),
            }
        })
    }
}

/// Parses `--expiration`: RFC 3339 (`2026-12-20T23:00:00Z`) or the TensorZero docs' form
/// (`2026-12-20 23:00:00.000000 UTC`). A time in the past is refused.
pub fn parse_expiration(s: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            let naive = s.trim().trim_end_matches("UTC").trim();
            chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
                .map(|n| n.and_utc())
        })
        .map_err(|_| format!("`{s}` is not a time; write it like 2026-12-20T23:00:00Z"))?;
    if parsed <= Utc::now() {
        return Err(format!("the expiration `{s}` is in the past"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expirations_parse_in_both_forms_and_not_in_the_past() {
        assert!(parse_expiration("2099-12-20T23:00:00Z").is_ok());
        assert!(parse_expiration("2099-12-20 23:00:00.000000 UTC").is_ok());
        assert!(
            parse_expiration("2001-01-01T00:00:00Z")
                .unwrap_err()
                .contains("in the past")
        );
        assert!(
            parse_expiration("tomorrow")
                .unwrap_err()
                .contains("not a time")
        );
    }
}
