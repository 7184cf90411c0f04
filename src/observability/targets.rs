//! What feedback needs to read back: whether its target (an inference or an episode) exists,
//! and for a demonstration, what the inference offered (its function, tools, output schema).

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

/// How often the target is looked for while it may still be on its way to the database.
const POLL: Duration = Duration::from_millis(100);
/// How long after its id's timestamp a target may take to appear (TensorZero waits as long).
const ARRIVAL_WINDOW: Duration = Duration::from_secs(6);
/// The shortest wait, whatever the id's timestamp says.
const MIN_WAIT: Duration = Duration::from_secs(1);

/// An inference as a demonstration is checked against.
#[derive(Debug)]
pub struct StoredTarget {
    /// Its function.
    pub function_name: String,
    /// Json function: its output schema; chat: `None`.
    pub output_schema: Option<Value>,
    /// Chat: the tools the request supplied (Tool objects).
    pub dynamic_tools: Vec<Value>,
    /// Chat: the names of the tools it allowed (`None`: no tool config).
    pub allowed_tools: Option<Vec<String>>,
}

/// The time a UUIDv7 was made.
fn timestamp_of(id: Uuid) -> Option<std::time::SystemTime> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(std::time::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// How long to keep looking for a target made at `id`'s time: until `ARRIVAL_WINDOW` after
/// it, at least `MIN_WAIT`, and never more than `ARRIVAL_WINDOW` (an id can claim any time, a
/// far future one too: it must not hold the request).
fn wait_for(id: Uuid) -> Duration {
    let until_window_ends = timestamp_of(id)
        .and_then(|t| {
            (t + ARRIVAL_WINDOW)
                .duration_since(std::time::SystemTime::now())
                .ok()
        })
        .unwrap_or_default();
    until_window_ends.clamp(MIN_WAIT, ARRIVAL_WINDOW)
}

/// Whether the inference (`episode = false`) or episode `id` exists, polling while it may
/// still be queued for writing. `Err` when Postgres cannot answer.
pub async fn target_exists(pool: &Pool, id: Uuid, episode: bool) -> Result<bool, String> {
    let sql = if episode {
        "SELECT EXISTS (SELECT 1 FROM tensorzero.chat_inferences WHERE episode_id = $1)
             OR EXISTS (SELECT 1 FROM tensorzero.json_inferences WHERE episode_id = $1)"
    } else {
        "SELECT EXISTS (SELECT 1 FROM tensorzero.chat_inferences WHERE id = $1)
             OR EXISTS (SELECT 1 FROM tensorzero.json_inferences WHERE id = $1)"
    };
    let deadline = tokio::time::Instant::now() + wait_for(id);
    loop {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let found: bool = client
            .query_one(sql, &[&id])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        drop(client);
        if found {
            return Ok(true);
        }
        if tokio::time::Instant::now() + POLL > deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The inference `id` with what a demonstration of it is checked against (polling as
/// [`target_exists`] does); `None` when it does not exist.
pub async fn inference(pool: &Pool, id: Uuid) -> Result<Option<StoredTarget>, String> {
    let deadline = tokio::time::Instant::now() + wait_for(id);
    loop {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let chat = client
            .query_opt(
                "SELECT i.function_name, d.dynamic_tools, d.allowed_tools FROM tensorzero.chat_inferences i
                 LEFT JOIN tensorzero.chat_inference_data d ON d.id = i.id AND d.created_at = i.created_at
                 WHERE i.id = $1",
                &[&id],
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(row) = chat {
            let tools: Option<Value> = row.get(1);
            let allowed: Option<Value> = row.get(2);
            return Ok(Some(StoredTarget {
                function_name: row.get(0),
                output_schema: None,
                dynamic_tools: tools
                    .and_then(|t| t.as_array().cloned())
                    .unwrap_or_default(),
                allowed_tools: allowed.and_then(|a| {
                    a.get("tools").and_then(Value::as_array).map(|names| {
                        names
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect()
                    })
                }),
            }));
        }
        let json = client
            .query_opt(
                "SELECT i.function_name, d.output_schema FROM tensorzero.json_inferences i
                 LEFT JOIN tensorzero.json_inference_data d ON d.id = i.id AND d.created_at = i.created_at
                 WHERE i.id = $1",
                &[&id],
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(row) = json {
            let schema: Option<Value> = row.get(1);
            return Ok(Some(StoredTarget {
                function_name: row.get(0),
                output_schema: Some(schema.unwrap_or(Value::Object(Default::default()))),
                dynamic_tools: Vec::new(),
                allowed_tools: None,
            }));
        }
        drop(client);
        if tokio::time::Instant::now() + POLL > deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_target_is_awaited_for_its_window_an_old_one_briefly() {
        let fresh = wait_for(Uuid::now_v7());
        assert!(
            fresh > Duration::from_secs(5) && fresh <= ARRIVAL_WINDOW,
            "{fresh:?}"
        );
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_700_000_000,
            0,
        ));
        assert_eq!(wait_for(old), MIN_WAIT);
        let far = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            4_000_000_000,
            0,
        ));
        assert_eq!(
            wait_for(far),
            ARRIVAL_WINDOW,
            "a future id cannot hold a request longer"
        );
    }
}
