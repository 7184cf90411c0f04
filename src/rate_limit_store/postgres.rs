//! Buckets in Postgres, shared by every replica that uses the same database: TensorZero 2026's
//! choice when `TENSORZERO_POSTGRES_URL` is set and `TENSORZERO_VALKEY_URL` is not.
//!
//! Each decision is one statement: a function that locks the request's buckets in key order
//! (so concurrent decisions never deadlock), refills them on the server's clock, and takes every
//! charge or none. A missing or expired bucket is a full one. The table is switchyard's own
//! (`switchyard_rate_limit_buckets`): TensorZero's `resource_bucket` belongs to its migrations,
//! and creating it outside them would break them.

use deadpool_postgres::Pool;
use switchyard_layers::rate_limit::{Charge, LimiterBackend, LimiterUnavailable, Verdict};

/// What `--run-postgres-migrations` creates; running it again changes nothing.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS switchyard_rate_limit_buckets (
    key TEXT PRIMARY KEY,
    balance DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Locks (creating where missing) the buckets named by `keys`, in key order, and returns each
-- one's balance refilled to now; a missing or expired bucket is full.
CREATE OR REPLACE FUNCTION switchyard_rate_limit_refilled(
    keys TEXT[], caps FLOAT8[], rates FLOAT8[], now TIMESTAMPTZ
) RETURNS FLOAT8[] LANGUAGE plpgsql AS $$
DECLARE
    balances FLOAT8[] := '{}';
    row_balance FLOAT8;
    row_updated TIMESTAMPTZ;
    row_expires TIMESTAMPTZ;
    b FLOAT8;
BEGIN
    INSERT INTO switchyard_rate_limit_buckets (key, balance, updated_at, expires_at)
    SELECT k, c, now, now FROM unnest(keys, caps) AS t(k, c) ORDER BY k
    ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM switchyard_rate_limit_buckets WHERE key = ANY(keys) ORDER BY key FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        SELECT balance, updated_at, expires_at INTO row_balance, row_updated, row_expires
        FROM switchyard_rate_limit_buckets WHERE key = keys[i];
        IF row_expires <= now AND row_updated < now THEN
            b := caps[i];
        ELSE
            b := row_balance;
            IF now > row_updated AND b < caps[i] THEN
                b := least(caps[i], b + extract(epoch FROM now - row_updated) * rates[i]);
            END IF;
        END IF;
        balances := balances || b;
    END LOOP;
    RETURN balances;
END $$;

-- Takes every amount, or none if a bucket is short. Returns whether it took them, and the
-- balances after (taken) or before (refused).
CREATE OR REPLACE FUNCTION switchyard_rate_limit_reserve(
    keys TEXT[], caps FLOAT8[], rates FLOAT8[], amounts FLOAT8[], ttls_ms BIGINT[]
) RETURNS TABLE (allowed BOOLEAN, balances FLOAT8[]) LANGUAGE plpgsql AS $$
DECLARE
    now TIMESTAMPTZ := clock_timestamp();
    current FLOAT8[];
    ok BOOLEAN := TRUE;
BEGIN
    current := switchyard_rate_limit_refilled(keys, caps, rates, now);
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        IF current[i] < amounts[i] THEN
            ok := FALSE;
        END IF;
    END LOOP;
    IF ok THEN
        FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
            current[i] := current[i] - amounts[i];
            UPDATE switchyard_rate_limit_buckets
            SET balance = current[i], updated_at = now,
                expires_at = now + ttls_ms[i] * interval '1 millisecond'
            WHERE key = keys[i];
        END LOOP;
    END IF;
    -- Forget long-idle buckets now and then (an expired bucket and a missing one are the same).
    IF random() < 0.001 THEN
        DELETE FROM switchyard_rate_limit_buckets WHERE ctid IN (
            SELECT ctid FROM switchyard_rate_limit_buckets WHERE expires_at < now LIMIT 1000
        );
    END IF;
    RETURN QUERY SELECT ok, current;
END $$;

-- Adds `-amount` to each bucket (refunds are negative), capped at capacity; never refused.
CREATE OR REPLACE FUNCTION switchyard_rate_limit_settle(
    keys TEXT[], caps FLOAT8[], rates FLOAT8[], amounts FLOAT8[], ttls_ms BIGINT[]
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    now TIMESTAMPTZ := clock_timestamp();
    current FLOAT8[];
BEGIN
    current := switchyard_rate_limit_refilled(keys, caps, rates, now);
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        UPDATE switchyard_rate_limit_buckets
        SET balance = least(caps[i], current[i] - amounts[i]), updated_at = now,
            expires_at = now + ttls_ms[i] * interval '1 millisecond'
        WHERE key = keys[i];
    END LOOP;
END $$;
"#;

/// Buckets in Postgres, through the gateway's connection pool.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresBackend")
    }
}

/// The statement arguments for `charges`: keys, capacities, rates per second, amounts, idle
/// expiries.
type Arguments = (Vec<String>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<i64>);

fn arguments(charges: &[Charge]) -> Arguments {
    let mut out: Arguments = Default::default();
    for c in charges {
        let limit = &c.bucket.limit;
        out.0.push(c.bucket.key.clone());
        out.1.push(limit.capacity as f64);
        out.2.push(limit.rate_per_second());
        out.3.push(c.amount as f64);
        out.4
            .push(i64::try_from(super::idle_ttl_ms(limit)).unwrap_or(i64::MAX));
    }
    out
}

/// Creates the bucket table and its functions (safe to run any number of times; concurrent
/// runs serialize on an advisory lock).
pub async fn migrate(pool: &Pool) -> Result<(), String> {
    const LOCK: i64 = 0x5377_6974_5261_7465; // "SwitRate"
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| format!("Database error: {e}"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(|e| format!("Database error: {e}"))?;
    tx.batch_execute(SCHEMA)
        .await
        .map_err(|e| format!("Database error: {e}"))?;
    tx.commit()
        .await
        .map_err(|e| format!("Database error: {e}"))
}

impl PostgresBackend {
    /// Checks that the store's functions exist (start-up fails clearly if migrations have not
    /// run).
    pub async fn new(pool: Pool) -> Result<Self, String> {
        let backend = Self { pool };
        let client = backend.client().await.map_err(|e| e.to_string())?;
        let present: bool = client
            .query_one(
                "SELECT to_regproc('switchyard_rate_limit_reserve') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| format!("cannot check the rate-limit tables in Postgres: {e}"))?
            .get(0);
        if !present {
            return Err("the rate-limit tables are missing from Postgres; run `switchyard --run-postgres-migrations` first".into());
        }
        Ok(backend)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, LimiterUnavailable> {
        self.pool.get().await.map_err(|e| unavailable(&e))
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> LimiterUnavailable {
    LimiterUnavailable::Unreachable {
        detail: format!("Postgres did not answer a rate-limit decision: {e}"),
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl LimiterBackend for PostgresBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        Box::pin(async move {
            let (keys, caps, rates, amounts, ttls) = arguments(charges);
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT allowed, balances FROM switchyard_rate_limit_reserve($1, $2, $3, $4, $5)",
                    &[&keys, &caps, &rates, &amounts, &ttls],
                )
                .await
                .map_err(|e| unavailable(&e))?;
            let allowed: bool = row.get(0);
            let balances: Vec<f64> = row.get(1);
            Ok(if allowed {
                Verdict::Allowed { balances }
            } else {
                Verdict::Denied { balances }
            })
        })
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        Box::pin(async move {
            let (keys, caps, rates, amounts, ttls) = arguments(charges);
            let client = self.client().await?;
            client
                .execute(
                    "SELECT switchyard_rate_limit_settle($1, $2, $3, $4, $5)",
                    &[&keys, &caps, &rates, &amounts, &ttls],
                )
                .await
                .map(|_| ())
                .map_err(|e| unavailable(&e))
        })
    }
}
