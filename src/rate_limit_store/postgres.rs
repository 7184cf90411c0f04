//! Buckets in Postgres, shared by every replica that uses the same database: TensorZero 2026's
//! choice when `TENSORZERO_POSTGRES_URL` is set and `TENSORZERO_VALKEY_URL` is not.
//!
//! Decisions go through the process's [batcher](super::batcher), like Redis's: one statement
//! decides every job that has queued. It locks the batch's buckets in key order (so concurrent
//! batches from several replicas never deadlock), refills them on the server's clock, decides
//! the jobs one after the other in memory, and writes each bucket back once. A missing or
//! expired bucket is a full one. The table is switchyard's own (`switchyard_rate_limit_buckets`):
//! TensorZero's `resource_bucket` belongs to its migrations, and creating it outside them would
//! break them.

use std::sync::Arc;

use deadpool_postgres::Pool;
use switchyard_layers::rate_limit::{Charge, LimiterBackend, LimiterUnavailable, Verdict};

use super::batcher::{BatchStore, Batched, BoxFuture, Job, Outcome};

/// What `--run-postgres-migrations` creates; running it again changes nothing.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS switchyard_rate_limit_buckets (
    key TEXT PRIMARY KEY,
    balance DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Decides a batch of jobs. Job j is `kinds[j]` ('r': take every charge or none; 's': add
-- `-amount`, capped at capacity, never refused) over the next `sizes[j]` charges, each charge
-- a bucket key with its capacity, refill per second, amount and idle expiry. Returns, per job,
-- whether it was taken, and per charge the balance after (taken, settled) or before (refused).
CREATE OR REPLACE FUNCTION switchyard_rate_limit_decide(
    kinds TEXT[], sizes INT[], keys TEXT[], caps FLOAT8[], rates FLOAT8[], amounts FLOAT8[],
    ttls_ms BIGINT[]
) RETURNS TABLE (allowed BOOLEAN[], balances FLOAT8[]) LANGUAGE plpgsql AS $$
DECLARE
    now TIMESTAMPTZ := clock_timestamp();
    ukeys TEXT[];
    ubal FLOAT8[] := '{}';
    ucap FLOAT8[] := '{}';
    uttl BIGINT[] := '{}';
    udirty BOOLEAN[] := '{}';
    out_allowed BOOLEAN[] := '{}';
    out_bal FLOAT8[] := '{}';
    pos INT := 0;
    ok BOOLEAN;
    i INT;
    u INT;
    b FLOAT8;
    r RECORD;
BEGIN
    INSERT INTO switchyard_rate_limit_buckets (key, balance, updated_at, expires_at)
    SELECT DISTINCT ON (k) k, c, now, now FROM unnest(keys, caps) AS t(k, c) ORDER BY k
    ON CONFLICT (key) DO NOTHING;
    ukeys := ARRAY(SELECT DISTINCT k FROM unnest(keys) AS t(k) ORDER BY k);
    FOR r IN
        SELECT key, balance, updated_at, expires_at FROM switchyard_rate_limit_buckets
        WHERE key = ANY(ukeys) ORDER BY key FOR UPDATE
    LOOP
        u := array_position(ukeys, r.key);
        i := array_position(keys, r.key);
        IF r.expires_at <= now AND r.updated_at < now THEN
            b := caps[i];
        ELSE
            b := r.balance;
            IF now > r.updated_at AND b < caps[i] THEN
                b := least(caps[i], b + extract(epoch FROM now - r.updated_at) * rates[i]);
            END IF;
        END IF;
        ubal[u] := b;
        ucap[u] := caps[i];
        udirty[u] := FALSE;
    END LOOP;
    FOR j IN 1 .. coalesce(array_length(kinds, 1), 0) LOOP
        ok := TRUE;
        FOR c IN pos + 1 .. pos + sizes[j] LOOP
            IF ubal[array_position(ukeys, keys[c])] < amounts[c] THEN
                ok := FALSE;
            END IF;
        END LOOP;
        IF kinds[j] = 's' THEN
            ok := TRUE;
        END IF;
        FOR c IN pos + 1 .. pos + sizes[j] LOOP
            u := array_position(ukeys, keys[c]);
            IF kinds[j] = 's' THEN
                ubal[u] := least(ucap[u], ubal[u] - amounts[c]);
            ELSIF ok THEN
                ubal[u] := ubal[u] - amounts[c];
            END IF;
            IF ok THEN
                udirty[u] := TRUE;
                uttl[u] := ttls_ms[c];
            END IF;
            out_bal := out_bal || ubal[u];
        END LOOP;
        out_allowed := out_allowed || ok;
        pos := pos + sizes[j];
    END LOOP;
    FOR u IN 1 .. coalesce(array_length(ukeys, 1), 0) LOOP
        IF udirty[u] THEN
            UPDATE switchyard_rate_limit_buckets
            SET balance = ubal[u], updated_at = now,
                expires_at = now + uttl[u] * interval '1 millisecond'
            WHERE key = ukeys[u];
        END IF;
    END LOOP;
    -- Forget long-idle buckets now and then (an expired bucket and a missing one are the same).
    IF random() < 0.001 THEN
        DELETE FROM switchyard_rate_limit_buckets WHERE ctid IN (
            SELECT ctid FROM switchyard_rate_limit_buckets WHERE expires_at < now LIMIT 1000
        );
    END IF;
    RETURN QUERY SELECT out_allowed, out_bal;
END $$;
"#;

/// Creates the bucket table and its function (safe to run any number of times; concurrent
/// runs serialize on an advisory lock).
pub async fn migrate(pool: &Pool) -> Result<(), String> {
    const LOCK: i64 = 0x5377_6974_5261_7465; // "SwitRate"
    let db = |e: tokio_postgres::Error| format!("Database error: {e}");
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(SCHEMA).await.map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Buckets in Postgres, through the gateway's connection pool; cheap to clone (one batcher per
/// process, however many clones).
#[derive(Clone)]
pub struct PostgresBackend {
    batched: Batched,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresBackend")
    }
}

impl PostgresBackend {
    /// Checks that the store's function exists (start-up fails clearly if migrations have not
    /// run), and starts the batcher on the current runtime.
    pub async fn connect(pool: Pool) -> Result<Self, String> {
        let client = pool
            .get()
            .await
            .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
        let present: bool = client
            .query_one(
                "SELECT to_regproc('switchyard_rate_limit_decide') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| format!("cannot check the rate-limit tables in Postgres: {e}"))?
            .get(0);
        if !present {
            return Err("the rate-limit tables are missing from Postgres; run `switchyard --run-postgres-migrations` first".into());
        }
        Ok(Self {
            batched: Batched::start(PostgresStore { pool }, Arc::from("Postgres")),
        })
    }

    /// Sends the settlements that wait (at shutdown).
    pub async fn flush(&self) {
        self.batched.flush().await;
    }
}

impl LimiterBackend for PostgresBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        self.batched.reserve(charges)
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        self.batched.settle(charges)
    }
}

/// The batcher's side: one statement per batch.
struct PostgresStore {
    pool: Pool,
}

fn unavailable(e: &dyn std::fmt::Display) -> LimiterUnavailable {
    LimiterUnavailable::Unreachable {
        detail: format!("Postgres did not answer a rate-limit decision: {e}"),
    }
}

impl BatchStore for PostgresStore {
    fn decide<'a>(
        &'a mut self,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, LimiterUnavailable>> {
        Box::pin(async move {
            let mut kinds: Vec<&str> = Vec::with_capacity(jobs.len());
            let mut sizes: Vec<i32> = Vec::with_capacity(jobs.len());
            let (mut keys, mut caps, mut rates, mut amounts, mut ttls) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for job in jobs {
                kinds.push(if job.is_settlement() { "s" } else { "r" });
                sizes.push(i32::try_from(job.charges.len()).unwrap_or(i32::MAX));
                for c in &job.charges {
                    keys.push(c.key.as_str());
                    caps.push(c.capacity as f64);
                    rates.push(c.rate_per_second);
                    amounts.push(c.amount as f64);
                    ttls.push(i64::try_from(c.idle_ttl_ms).unwrap_or(i64::MAX));
                }
            }
            let client = self.pool.get().await.map_err(|e| unavailable(&e))?;
            let row = client
                .query_one(
                    "SELECT allowed, balances FROM switchyard_rate_limit_decide($1, $2, $3, $4, $5, $6, $7)",
                    &[&kinds, &sizes, &keys, &caps, &rates, &amounts, &ttls],
                )
                .await
                .map_err(|e| unavailable(&e))?;
            let allowed: Vec<bool> = row.get(0);
            let balances: Vec<f64> = row.get(1);
            if allowed.len() != jobs.len() || balances.len() != keys.len() {
                return Err(unavailable(&format!(
                    "it answered {} jobs of {} and {} balances of {}",
                    allowed.len(),
                    jobs.len(),
                    balances.len(),
                    keys.len()
                )));
            }
            let mut balances = balances.into_iter();
            Ok(jobs
                .iter()
                .zip(allowed)
                .map(|(job, taken)| {
                    let mine: Vec<f64> = balances.by_ref().take(job.charges.len()).collect();
                    match (job.is_settlement(), taken) {
                        (true, _) => Outcome::Settled,
                        (false, true) => Outcome::Reserved(Verdict::Allowed { balances: mine }),
                        (false, false) => Outcome::Reserved(Verdict::Denied { balances: mine }),
                    }
                })
                .collect())
        })
    }
}
