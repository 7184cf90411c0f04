//! Datasets: datapoints in `tensorzero.chat_datapoints` and `tensorzero.json_datapoints`.
//! There is no dataset table: a dataset is the datapoints that name it. Writes are upserts;
//! edits are copy-on-write (the old row is staled, a new one takes a new id); deletes are soft
//! (`staled_at`). Readers skip staled rows, except reads by id.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use serde_json::{Map, Value, json};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::reads::{self, Catalog, InferenceFilter, OutputSource, ReadError};

/// The most datapoints one call may create, edit, read or delete.
pub const MAX_DATAPOINTS: usize = 10_000;

/// A datapoint to write.
#[derive(Clone, Debug)]
pub struct Datapoint {
    /// Its id (v7).
    pub id: Uuid,
    /// Its dataset.
    pub dataset_name: String,
    /// Its function.
    pub function_name: String,
    /// The episode it came from.
    pub episode_id: Option<Uuid>,
    /// StoredInput.
    pub input: Value,
    /// Chat: ContentBlockChatOutput array; json: `{raw, parsed}`; `None`: no output.
    pub output: Option<Value>,
    /// Chat or json, with the columns only that kind has.
    pub kind: DatapointKind,
    /// Tags.
    pub tags: Value,
    /// Made or edited through the API (not copied from an inference).
    pub is_custom: bool,
    /// The inference it was copied from.
    pub source_inference_id: Option<Uuid>,
    /// Its name.
    pub name: Option<String>,
}

/// What only one kind of datapoint has.
#[derive(Clone, Debug)]
pub enum DatapointKind {
    /// A chat function's, with the tool columns (encoded as in `chat_inference_data`).
    Chat {
        /// Tools supplied with the request.
        dynamic_tools: Value,
        /// Provider tools.
        dynamic_provider_tools: Value,
        /// `{"tools", "choice"}` or NULL.
        allowed_tools: Option<Value>,
        /// ToolChoice or NULL.
        tool_choice: Option<Value>,
        /// Parallel tool calls.
        parallel_tool_calls: Option<bool>,
    },
    /// A json function's, with its output schema.
    Json {
        /// The schema.
        output_schema: Value,
    },
}

fn unavailable(e: impl std::fmt::Display) -> ReadError {
    ReadError::Unavailable(e.to_string())
}

/// The dataset names TensorZero refuses.
pub fn check_dataset_name(name: &str) -> Result<(), String> {
    if name == "builder" || name.starts_with("tensorzero::") || name.is_empty() {
        return Err(format!(
            "Invalid dataset name: {name}. Datasets cannot be named \"builder\" or begin with \"tensorzero::\""
        ));
    }
    Ok(())
}

/// Upserts `datapoints` (and stales `stale` first, for edits), in one transaction.
pub async fn write(pool: &Pool, datapoints: &[Datapoint], stale: &[Uuid]) -> Result<(), ReadError> {
    let mut client = pool.get().await.map_err(unavailable)?;
    let tx = client.transaction().await.map_err(unavailable)?;
    if !stale.is_empty() {
        for table in ["chat_datapoints", "json_datapoints"] {
            tx.execute(
                &format!("UPDATE tensorzero.{table} SET staled_at = NOW(), updated_at = NOW() WHERE id = ANY($1) AND staled_at IS NULL"),
                &[&stale],
            )
            .await
            .map_err(unavailable)?;
        }
    }
    for d in datapoints {
        match &d.kind {
            DatapointKind::Chat {
                dynamic_tools,
                dynamic_provider_tools,
                allowed_tools,
                tool_choice,
                parallel_tool_calls,
            } => {
                tx.execute(
                    "INSERT INTO tensorzero.chat_datapoints (id, dataset_name, function_name, episode_id, input, output, dynamic_tools,
                         dynamic_provider_tools, allowed_tools, tool_choice, parallel_tool_calls, tags, is_custom, source_inference_id,
                         name, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, tensorzero.uuid_v7_to_timestamp($1), NOW())
                     ON CONFLICT (id) DO UPDATE SET dataset_name = EXCLUDED.dataset_name, function_name = EXCLUDED.function_name,
                         episode_id = EXCLUDED.episode_id, input = EXCLUDED.input, output = EXCLUDED.output,
                         dynamic_tools = EXCLUDED.dynamic_tools, dynamic_provider_tools = EXCLUDED.dynamic_provider_tools,
                         allowed_tools = EXCLUDED.allowed_tools, tool_choice = EXCLUDED.tool_choice,
                         parallel_tool_calls = EXCLUDED.parallel_tool_calls, tags = EXCLUDED.tags, is_custom = EXCLUDED.is_custom,
                         source_inference_id = EXCLUDED.source_inference_id, name = EXCLUDED.name, updated_at = NOW()",
                    &[
                        &d.id,
                        &d.dataset_name,
                        &d.function_name,
                        &d.episode_id,
                        &d.input,
                        &d.output,
                        dynamic_tools,
                        dynamic_provider_tools,
                        allowed_tools,
                        tool_choice,
                        parallel_tool_calls,
                        &d.tags,
                        &d.is_custom,
                        &d.source_inference_id,
                        &d.name,
                    ],
                )
                .await
                .map_err(unavailable)?;
            }
            DatapointKind::Json { output_schema } => {
                tx.execute(
                    "INSERT INTO tensorzero.json_datapoints (id, dataset_name, function_name, episode_id, input, output, output_schema,
                         tags, is_custom, source_inference_id, name, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, tensorzero.uuid_v7_to_timestamp($1), NOW())
                     ON CONFLICT (id) DO UPDATE SET dataset_name = EXCLUDED.dataset_name, function_name = EXCLUDED.function_name,
                         episode_id = EXCLUDED.episode_id, input = EXCLUDED.input, output = EXCLUDED.output,
                         output_schema = EXCLUDED.output_schema, tags = EXCLUDED.tags, is_custom = EXCLUDED.is_custom,
                         source_inference_id = EXCLUDED.source_inference_id, name = EXCLUDED.name, updated_at = NOW()",
                    &[
                        &d.id,
                        &d.dataset_name,
                        &d.function_name,
                        &d.episode_id,
                        &d.input,
                        &d.output,
                        output_schema,
                        &d.tags,
                        &d.is_custom,
                        &d.source_inference_id,
                        &d.name,
                    ],
                )
                .await
                .map_err(unavailable)?;
            }
        }
    }
    tx.commit().await.map_err(unavailable)
}

/// Both tables' rows in one shape.
const UNION: &str = "(SELECT 'chat' AS kind, id, dataset_name, function_name, episode_id, input, output, dynamic_tools,
        dynamic_provider_tools, allowed_tools, tool_choice, parallel_tool_calls, NULL::jsonb AS output_schema, tags, is_custom,
        source_inference_id, name, staled_at, created_at, updated_at FROM tensorzero.chat_datapoints
    UNION ALL
    SELECT 'json', id, dataset_name, function_name, episode_id, input, output, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb,
        NULL::boolean, output_schema, tags, is_custom, source_inference_id, name, staled_at, created_at, updated_at
    FROM tensorzero.json_datapoints) i";

/// Datapoints by id (staled ones too), in `dataset` when given.
pub async fn get(
    pool: &Pool,
    dataset: Option<&str>,
    ids: &[Uuid],
) -> Result<Vec<Value>, ReadError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await.map_err(unavailable)?;
    let ids = ids.to_vec();
    let rows = match dataset {
        Some(d) => client
            .query(
                &format!("SELECT * FROM {UNION} WHERE i.id = ANY($1) AND i.dataset_name = $2 ORDER BY i.id DESC"),
                &[&ids, &d],
            )
            .await,
        None => client
            .query(&format!("SELECT * FROM {UNION} WHERE i.id = ANY($1) ORDER BY i.id DESC"), &[&ids])
            .await,
    }
    .map_err(unavailable)?;
    Ok(rows.iter().map(wire).collect())
}

/// The live datapoints with these ids in `dataset`, to edit.
pub async fn live(pool: &Pool, dataset: &str, ids: &[Uuid]) -> Result<Vec<Datapoint>, ReadError> {
    let client = pool.get().await.map_err(unavailable)?;
    let ids = ids.to_vec();
    let rows = client
        .query(
            &format!("SELECT * FROM {UNION} WHERE i.id = ANY($1) AND i.dataset_name = $2 AND i.staled_at IS NULL"),
            &[&ids, &dataset],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|row| Datapoint {
            id: row.get("id"),
            dataset_name: row.get("dataset_name"),
            function_name: row.get("function_name"),
            episode_id: row.get("episode_id"),
            input: row.get("input"),
            output: row.get("output"),
            kind: if row.get::<_, &str>("kind") == "json" {
                DatapointKind::Json {
                    output_schema: row
                        .get::<_, Option<Value>>("output_schema")
                        .unwrap_or(Value::Null),
                }
            } else {
                DatapointKind::Chat {
                    dynamic_tools: row
                        .get::<_, Option<Value>>("dynamic_tools")
                        .unwrap_or(json!([])),
                    dynamic_provider_tools: row
                        .get::<_, Option<Value>>("dynamic_provider_tools")
                        .unwrap_or(json!([])),
                    allowed_tools: row.get("allowed_tools"),
                    tool_choice: row.get("tool_choice"),
                    parallel_tool_calls: row.get("parallel_tool_calls"),
                }
            },
            tags: row.get::<_, Option<Value>>("tags").unwrap_or(json!({})),
            is_custom: row.get("is_custom"),
            source_inference_id: row.get("source_inference_id"),
            name: row.get("name"),
        })
        .collect())
}

/// `list_datapoints`' request.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ListDatapoints {
    /// Only this function's.
    pub function_name: Option<String>,
    /// How many (default 20).
    pub limit: Option<u64>,
    /// Deprecated name of `limit`.
    pub page_size: Option<u64>,
    /// How many to skip.
    pub offset: Option<u64>,
    /// Tag and time filters (time compares `updated_at`).
    pub filter: Option<InferenceFilter>,
    /// `timestamp` (updated_at) or `search_relevance`.
    pub order_by: Option<Vec<reads::OrderBy>>,
    /// Text searched for in inputs and outputs.
    pub search_query_experimental: Option<String>,
}

/// The live datapoints of `dataset`, newest edit first.
pub async fn list(
    pool: &Pool,
    catalog: &Catalog<'_>,
    dataset: &str,
    request: &ListDatapoints,
) -> Result<Vec<Value>, ReadError> {
    let limit = request.limit.or(request.page_size).unwrap_or(20);
    if limit > MAX_DATAPOINTS as u64 {
        return Err(ReadError::Invalid(format!(
            "`limit` {limit} is more than the {MAX_DATAPOINTS} one call may return; page with `offset`"
        )));
    }
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(dataset.to_owned())];
    let mut conditions = vec![
        "i.dataset_name = $1".to_owned(),
        "i.staled_at IS NULL".to_owned(),
    ];
    if let Some(f) = &request.function_name {
        params.push(Box::new(f.clone()));
        conditions.push(format!("i.function_name = ${}", params.len()));
    }
    if let Some(filter) = &request.filter {
        let (sql, more) = reads::datapoint_filter_sql(filter, catalog, params.len())?;
        params.extend(more);
        conditions.push(sql);
    }
    if let Some(text) = &request.search_query_experimental {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        params.push(Box::new(format!("%{escaped}%")));
        let n = params.len();
        conditions.push(format!(
            "(i.input::text ILIKE ${n} OR i.output::text ILIKE ${n})"
        ));
    }
    let mut order = Vec::new();
    for o in request.order_by.iter().flatten() {
        let direction = match o.direction.as_deref() {
            None | Some("descending") => "DESC",
            Some("ascending") => "ASC",
            Some(other) => {
                return Err(ReadError::Invalid(format!(
                    "Invalid order direction `{other}`: use \"ascending\" or \"descending\""
                )));
            }
        };
        match o.by.as_str() {
            "timestamp" => order.push(format!("i.updated_at {direction}")),
            "search_relevance" => order.push(format!("i.id {direction}")),
            other => {
                return Err(ReadError::Invalid(format!(
                    "Invalid order `by` `{other}` for datapoints: use \"timestamp\" or \"search_relevance\""
                )));
            }
        }
    }
    if order.is_empty() {
        order.push("i.updated_at DESC".into());
    }
    order.push("i.id DESC".into());
    params.push(Box::new(limit as i64));
    let mut sql = format!(
        "SELECT * FROM {UNION} WHERE {} ORDER BY {} LIMIT ${}",
        conditions.join(" AND "),
        order.join(", "),
        params.len()
    );
    if let Some(offset) = request.offset.filter(|o| *o > 0) {
        params.push(Box::new(offset.min(i64::MAX as u64) as i64));
        sql.push_str(&format!(" OFFSET ${}", params.len()));
    }
    let client = pool.get().await.map_err(unavailable)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &refs).await.map_err(unavailable)?;
    Ok(rows.iter().map(wire).collect())
}

/// Stales the live datapoints with `ids` in `dataset` (all of them when `ids` is `None`);
/// how many.
pub async fn delete(pool: &Pool, dataset: &str, ids: Option<&[Uuid]>) -> Result<u64, ReadError> {
    let client = pool.get().await.map_err(unavailable)?;
    let mut n = 0;
    for table in ["chat_datapoints", "json_datapoints"] {
        n += match ids {
            Some(ids) => client
                .execute(
                    &format!("UPDATE tensorzero.{table} SET staled_at = NOW(), updated_at = NOW() WHERE dataset_name = $1 AND id = ANY($2) AND staled_at IS NULL"),
                    &[&dataset, &ids.to_vec()],
                )
                .await,
            None => client
                .execute(
                    &format!("UPDATE tensorzero.{table} SET staled_at = NOW(), updated_at = NOW() WHERE dataset_name = $1 AND staled_at IS NULL"),
                    &[&dataset],
                )
                .await,
        }
        .map_err(unavailable)?;
    }
    Ok(n)
}

/// Renames datapoints in place (same ids); the ids that exist.
pub async fn rename(
    pool: &Pool,
    dataset: &str,
    names: &[(Uuid, Option<String>)],
) -> Result<(), ReadError> {
    let client = pool.get().await.map_err(unavailable)?;
    for (id, name) in names {
        for table in ["chat_datapoints", "json_datapoints"] {
            client
                .execute(
                    &format!("UPDATE tensorzero.{table} SET name = $3, updated_at = NOW() WHERE dataset_name = $1 AND id = $2"),
                    &[&dataset, id, name],
                )
                .await
                .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Copies inferences into `dataset`, newest first; fails naming the first inference that is
/// missing (or has no demonstration, when that is the output source), writing nothing.
pub async fn from_inferences(
    pool: &Pool,
    catalog: &Catalog<'_>,
    dataset: &str,
    ids: &[Uuid],
    output_source: OutputSource,
) -> Result<Vec<Uuid>, ReadError> {
    // Read with the stored output, then pick the output the source asks for.
    let wanted = match output_source {
        OutputSource::Demonstration => OutputSource::Demonstration,
        _ => OutputSource::Inference,
    };
    let found = reads::get_inferences(pool, catalog, ids.to_vec(), None, wanted).await?;
    for id in ids {
        if !found
            .iter()
            .any(|i| i["inference_id"].as_str() == Some(&id.to_string()))
        {
            return Err(ReadError::Invalid(format!("Inference {id} not found")));
        }
    }
    let rows = columns_of(pool, ids).await?;
    let mut datapoints = Vec::with_capacity(found.len());
    for inference in &found {
        let id: Uuid = inference["inference_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let Some(stored) = rows.iter().find(|r| r.0 == id) else {
            return Err(ReadError::Invalid(format!("Inference {id} not found")));
        };
        let function_name = inference["function_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if (catalog.function_is_json)(&function_name).is_none()
            && function_name != crate::config::functions::DEFAULT_FUNCTION_NAME
        {
            return Err(ReadError::UnknownFunction(function_name));
        }
        let Some(input) = inference.get("input").cloned() else {
            return Err(ReadError::Invalid(format!(
                "Inference {id} has no stored input"
            )));
        };
        let output = match output_source {
            OutputSource::None => None,
            _ => match inference.get("output").cloned() {
                Some(o) => Some(o),
                None => {
                    return Err(ReadError::Invalid(format!(
                        "Inference {id} has no stored output"
                    )));
                }
            },
        };
        datapoints.push(Datapoint {
            id: Uuid::now_v7(),
            dataset_name: dataset.to_owned(),
            function_name,
            episode_id: inference["episode_id"]
                .as_str()
                .and_then(|s| s.parse().ok()),
            input,
            output,
            kind: stored.1.clone(),
            tags: inference.get("tags").cloned().unwrap_or(json!({})),
            is_custom: false,
            source_inference_id: Some(id),
            name: None,
        });
    }
    write(pool, &datapoints, &[]).await?;
    Ok(datapoints.iter().map(|d| d.id).collect())
}

/// The kind columns of stored inferences (their tool columns or output schema), by id.
async fn columns_of(pool: &Pool, ids: &[Uuid]) -> Result<Vec<(Uuid, DatapointKind)>, ReadError> {
    let client = pool.get().await.map_err(unavailable)?;
    let ids = ids.to_vec();
    let mut out = Vec::new();
    for row in client
        .query(
            "SELECT id, dynamic_tools, dynamic_provider_tools, allowed_tools, tool_choice, parallel_tool_calls
             FROM tensorzero.chat_inference_data WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(unavailable)?
    {
        out.push((
            row.get(0),
            DatapointKind::Chat {
                dynamic_tools: row.get(1),
                dynamic_provider_tools: row.get(2),
                allowed_tools: row.get(3),
                tool_choice: row.get(4),
                parallel_tool_calls: row.get(5),
            },
        ));
    }
    for row in client
        .query(
            "SELECT id, output_schema FROM tensorzero.json_inference_data WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(unavailable)?
    {
        out.push((
            row.get(0),
            DatapointKind::Json {
                output_schema: row.get(1),
            },
        ));
    }
    Ok(out)
}

fn seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A datapoint as the API returns it.
fn wire(row: &tokio_postgres::Row) -> Value {
    let kind: &str = row.get("kind");
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    out.insert(
        "dataset_name".into(),
        json!(row.get::<_, String>("dataset_name")),
    );
    out.insert(
        "function_name".into(),
        json!(row.get::<_, String>("function_name")),
    );
    out.insert("id".into(), json!(row.get::<_, Uuid>("id")));
    out.insert(
        "episode_id".into(),
        json!(row.get::<_, Option<Uuid>>("episode_id")),
    );
    out.insert("input".into(), row.get::<_, Value>("input"));
    if let Some(output) = row.get::<_, Option<Value>>("output") {
        out.insert("output".into(), output);
    }
    if kind == "json" {
        out.insert(
            "output_schema".into(),
            row.get::<_, Option<Value>>("output_schema")
                .unwrap_or(Value::Null),
        );
    } else {
        reads::tool_fields(row, &mut out);
    }
    out.insert(
        "tags".into(),
        row.get::<_, Option<Value>>("tags").unwrap_or(json!({})),
    );
    out.insert("is_deleted".into(), json!(false));
    out.insert("is_custom".into(), json!(row.get::<_, bool>("is_custom")));
    if let Some(source) = row.get::<_, Option<Uuid>>("source_inference_id") {
        out.insert("source_inference_id".into(), json!(source));
    }
    if let Some(staled) = row.get::<_, Option<DateTime<Utc>>>("staled_at") {
        out.insert("staled_at".into(), json!(seconds(staled)));
    }
    out.insert("updated_at".into(), json!(seconds(row.get("updated_at"))));
    if let Some(name) = row.get::<_, Option<String>>("name") {
        out.insert("name".into(), json!(name));
    }
    Value::Object(out)
}
