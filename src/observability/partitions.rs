//! Partitions of the observability tables, kept ahead of time: the inference metadata tables by
//! month (this month and the next three), their payload tables by day (today and the next
//! seven), as TensorZero's own migrations and `pg_cron` job name and size them. Without them,
//! rows land in the default partitions, and a partition can no longer be created for a range
//! the default already holds rows of. Retention drops whole partitions past their age.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use deadpool_postgres::Pool;

/// Tables partitioned by month.
pub const MONTHLY: [&str; 3] = ["chat_inferences", "json_inferences", "model_inferences"];
/// Tables partitioned by day.
pub const DAILY: [&str; 3] = [
    "chat_inference_data",
    "json_inference_data",
    "model_inference_data",
];

/// Months ahead of this one, and days ahead of today, that always have partitions.
const MONTHS_AHEAD: u32 = 3;
const DAYS_AHEAD: i64 = 7;

/// Keeps concurrent gateways from maintaining partitions at once (a session lock, tried).
const LOCK: i64 = 0x5377_6974_5061_7274; // "SwitPart"

/// `[postgres]` retention: partitions older than this many days are dropped (`None`: kept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `inference_metadata_retention_days`: monthly partitions, dropped once the whole month
    /// is older.
    pub metadata_days: Option<u32>,
    /// `inference_data_retention_days`: daily partitions.
    pub data_days: Option<u32>,
}

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Partitions created.
    pub created: Vec<String>,
    /// Partitions dropped by retention.
    pub dropped: Vec<String>,
    /// Partitions that could not be created (e.g. the default partition already holds rows
    /// of their range), with why.
    pub failed: Vec<(String, String)>,
}

/// The first day of the month `months` after `day`'s.
fn month_start(day: NaiveDate, months: u32) -> NaiveDate {
    let index = day.year() * 12 + day.month0() as i32 + months as i32;
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
        .expect("the first of a month exists")
}

/// The partitions that should exist on `today`: `(table, partition name, from, to)`.
pub fn wanted(today: NaiveDate) -> Vec<(&'static str, String, NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    for table in MONTHLY {
        for m in 0..=MONTHS_AHEAD {
            let from = month_start(today, m);
            let to = month_start(today, m + 1);
            out.push((table, format!("{table}_{}", from.format("%Y_%m")), from, to));
        }
    }
    for table in DAILY {
        for d in 0..=DAYS_AHEAD {
            let from = today + Duration::days(d);
            out.push((
                table,
                format!("{table}_{}", from.format("%Y_%m_%d")),
                from,
                from + Duration::days(1),
            ));
        }
    }
    out
}

/// The partition's end date, from its name (`<table>_YYYY_MM` or `<table>_YYYY_MM_DD`).
fn partition_end(table: &str, name: &str) -> Option<NaiveDate> {
    let suffix = name.strip_prefix(table)?.strip_prefix('_')?;
    let parts: Vec<&str> = suffix.split('_').collect();
    match parts.as_slice() {
        [y, m] => {
            let start = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?;
            Some(month_start(start, 1))
        }
        [y, m, d] => Some(
            NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?
                + Duration::days(1),
        ),
        _ => None,
    }
}

fn db(e: tokio_postgres::Error) -> String {
    format!("Database error: {e}")
}

/// Creates the coming partitions and applies retention, unless another gateway is doing it
/// right now. Creating an existing partition is a no-op, so TensorZero's `pg_cron` job and this
/// never conflict (they use the same names and ranges).
pub async fn maintain(pool: &Pool, retention: &Retention) -> Result<Maintained, String> {
    let client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to Postgres: {e}"))?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(db)?
        .get(0);
    if !locked {
        return Ok(Maintained::default());
    }
    let result = maintain_locked(&client, retention).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    result
}

async fn maintain_locked(
    client: &tokio_postgres::Client,
    retention: &Retention,
) -> Result<Maintained, String> {
    let mut done = Maintained::default();
    let today = Utc::now().date_naive();
    for (table, name, from, to) in wanted(today) {
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('tensorzero.' || $1) IS NOT NULL",
                &[&name],
            )
            .await
            .map_err(db)?
            .get(0);
        if exists {
            continue;
        }
        // Names and dates come from this code, never from input.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS tensorzero.{name} PARTITION OF tensorzero.{table} FOR VALUES FROM ('{from}') TO ('{to}')"
        );
        match client.batch_execute(&ddl).await {
            Ok(()) => done.created.push(name),
            Err(e) => done.failed.push((name, db(e))),
        }
    }
    for (tables, days) in [
        (&MONTHLY[..], retention.metadata_days),
        (&DAILY[..], retention.data_days),
    ] {
        let Some(days) = days else { continue };
        let cutoff = today - Duration::days(i64::from(days));
        for table in tables {
            let rows = client
                .query(
                    "SELECT c.relname FROM pg_inherits i
                     JOIN pg_class c ON c.oid = i.inhrelid
                     JOIN pg_class p ON p.oid = i.inhparent
                     JOIN pg_namespace n ON n.oid = p.relnamespace
                     WHERE n.nspname = 'tensorzero' AND p.relname = $1",
                    &[table],
                )
                .await
                .map_err(db)?;
            for row in rows {
                let name: String = row.get(0);
                if partition_end(table, &name).is_some_and(|end| end <= cutoff) {
                    client
                        .batch_execute(&format!("DROP TABLE IF EXISTS tensorzero.{name}"))
                        .await
                        .map_err(db)?;
                    done.dropped.push(name);
                }
            }
        }
    }
    for (name, why) in &done.failed {
        tracing::warn!(partition = %name, error = %why, "could not create an observability partition");
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_the_coming_months_and_days() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let wanted = wanted(today);
        let names: Vec<&str> = wanted.iter().map(|(_, n, _, _)| n.as_str()).collect();
        for expected in [
            "chat_inferences_2026_11",
            "chat_inferences_2027_02",
            "model_inference_data_2026_11_30",
            "model_inference_data_2026_12_07",
        ] {
            assert!(names.contains(&expected), "{expected}: {names:?}");
        }
        assert!(!names.contains(&"chat_inferences_2027_03"));
        assert_eq!(wanted.len(), 3 * 4 + 3 * 8);
        let (_, _, from, to) = &wanted[3];
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2027-02-01".into(), "2027-03-01".into())
        );
    }

    #[test]
    fn partition_ends_come_from_their_names() {
        assert_eq!(
            partition_end("chat_inferences", "chat_inferences_2026_12"),
            NaiveDate::from_ymd_opt(2027, 1, 1)
        );
        assert_eq!(
            partition_end("chat_inference_data", "chat_inference_data_2026_02_28"),
            NaiveDate::from_ymd_opt(2026, 3, 1)
        );
        assert_eq!(
            partition_end("chat_inferences", "chat_inferences_default"),
            None
        );
        assert_eq!(
            partition_end("chat_inferences", "chat_inference_data_2026_01_01"),
            None
        );
    }
}
