//! Reading stored inferences back: `get_inferences` (by id) and `list_inferences` (filters,
//! ordering, cursor pagination), over both chat and json tables, as TensorZero's Postgres
//! reads do: the metadata and data halves joined on `(id, created_at)`, metric filters as
//! `EXISTS` over any feedback row, tag filters by JSONB containment.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::config::functions::{MetricConfig, MetricLevel, MetricType};

/// The most inferences one list call returns.
pub const MAX_LIMIT: u64 = 10_000;

/// Where each inference's `output` comes from.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputSource {
    /// The stored output.
    #[default]
    Inference,
    /// The latest demonstration (inferences without one are left out); the stored output
    /// moves to `dispreferred_outputs`.
    Demonstration,
    /// No output.
    None,
}

/// A filter of `list_inferences`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InferenceFilter {
    /// Any feedback of a float metric compares so.
    FloatMetric {
        /// The metric.
        metric_name: String,
        /// The value compared with.
        value: f64,
        /// `<`, `<=`, `=`, `>`, `>=`, `!=`.
        comparison_operator: String,
    },
    /// Any feedback of a boolean metric has this value.
    BooleanMetric {
        /// The metric.
        metric_name: String,
        /// The value.
        value: bool,
    },
    /// Whether the inference has a demonstration.
    DemonstrationFeedback {
        /// Has one (or not).
        has_demonstration: bool,
    },
    /// A tag equals (or not) a value.
    Tag {
        /// The tag.
        key: String,
        /// Its value.
        value: String,
        /// `=` or `!=`.
        comparison_operator: String,
    },
    /// The inference's time compares so.
    Time {
        /// The time (RFC 3339).
        time: DateTime<Utc>,
        /// `<`, `<=`, `=`, `>`, `>=`, `!=`.
        comparison_operator: String,
    },
    /// All of them.
    And {
        /// The filters.
        children: Vec<InferenceFilter>,
    },
    /// Any of them.
    Or {
        /// The filters.
        children: Vec<InferenceFilter>,
    },
    /// Not this one.
    Not {
        /// The filter.
        child: Box<InferenceFilter>,
    },
}

/// One `order_by` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct OrderBy {
    /// `timestamp`, `metric` or `search_relevance`.
    pub by: String,
    /// The metric, for `metric`.
    pub name: Option<String>,
    /// `ascending` or `descending` (default descending).
    #[serde(default)]
    pub direction: Option<String>,
}

/// `POST /v1/inferences/list_inferences` (unknown keys are ignored, as TensorZero does).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListInferences {
    /// Only this function's.
    pub function_name: Option<String>,
    /// Only this variant's.
    pub variant_name: Option<String>,
    /// Only this episode's.
    pub episode_id: Option<Uuid>,
    /// Where outputs come from.
    #[serde(default)]
    pub output_source: OutputSource,
    /// How many (default 20).
    pub limit: Option<u64>,
    /// How many to skip (not with a cursor).
    pub offset: Option<u64>,
    /// Ids before this one (older).
    pub before: Option<Uuid>,
    /// Ids after this one (newer).
    pub after: Option<Uuid>,
    /// The filter.
    #[serde(alias = "filter")]
    pub filters: Option<InferenceFilter>,
    /// The order.
    pub order_by: Option<Vec<OrderBy>>,
    /// Text searched for in inputs and outputs.
    pub search_query_experimental: Option<String>,
}

/// Why a read was refused.
#[derive(Debug)]
pub enum ReadError {
    /// The request is wrong (400).
    Invalid(String),
    /// The function does not exist (404).
    UnknownFunction(String),
    /// Postgres did not answer (503).
    Unavailable(String),
}

/// What reads need of the configuration.
pub struct Catalog<'a> {
    /// `[metrics]`.
    pub metrics: &'a BTreeMap<String, MetricConfig>,
    /// Whether a function exists, and whether it is a json function.
    pub function_is_json: &'a (dyn Fn(&str) -> Option<bool> + Sync),
}

/// SQL being built with its parameters.
struct Query {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// Parameters bound before this query's own (their numbers come first).
    base: usize,
    /// The column time filters compare (`created_at` for inferences, `updated_at` for
    /// datapoints).
    time_column: &'static str,
    /// Whether metric and demonstration filters apply (not to datapoints).
    feedback_filters: bool,
}

impl Query {
    fn new() -> Self {
        Self {
            params: Vec::new(),
            base: 0,
            time_column: "i.created_at",
            feedback_filters: true,
        }
    }

    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.base + self.params.len())
    }
}

/// A datapoint filter (tags and times, compared with `updated_at`) as SQL over alias `i`,
/// its parameters numbered after the `bound` ones already bound.
pub fn datapoint_filter_sql(
    filter: &InferenceFilter,
    catalog: &Catalog<'_>,
    bound: usize,
) -> Result<(String, Vec<Box<dyn ToSql + Sync + Send>>), ReadError> {
    let mut q = Query {
        base: bound,
        time_column: "i.updated_at",
        feedback_filters: false,
        ..Query::new()
    };
    let sql = filter_sql(filter, catalog, &mut q, 0)?;
    Ok((sql, q.params))
}

fn operator(op: &str) -> Result<&'static str, ReadError> {
    Ok(match op {
        "<" => "<",
        "<=" => "<=",
        "=" => "=",
        ">" => ">",
        ">=" => ">=",
        "!=" => "<>",
        other => {
            return Err(ReadError::Invalid(format!(
                "Invalid comparison operator `{other}`: use one of <, <=, =, >, >=, !="
            )));
        }
    })
}

/// Filters nest at most this deep (a request is data, not a program).
const MAX_FILTER_DEPTH: usize = 32;

fn metric<'a>(catalog: &'a Catalog<'_>, name: &str) -> Result<&'a MetricConfig, ReadError> {
    catalog
        .metrics
        .get(name)
        .ok_or_else(|| ReadError::Invalid(format!("Invalid metric name: {name}")))
}

fn target_column(m: &MetricConfig) -> &'static str {
    match m.level {
        MetricLevel::Inference => "i.id",
        MetricLevel::Episode => "i.episode_id",
    }
}

fn filter_sql(
    filter: &InferenceFilter,
    catalog: &Catalog<'_>,
    q: &mut Query,
    depth: usize,
) -> Result<String, ReadError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(ReadError::Invalid(format!(
            "Filters nest deeper than {MAX_FILTER_DEPTH} levels"
        )));
    }
    let about_feedback = matches!(
        filter,
        InferenceFilter::FloatMetric { .. }
            | InferenceFilter::BooleanMetric { .. }
            | InferenceFilter::DemonstrationFeedback { .. }
    );
    if about_feedback && !q.feedback_filters {
        return Err(ReadError::Invalid(
            "Datapoint filters are `tag`, `time`, `and`, `or` and `not`; metric and demonstration filters apply to inferences".into(),
        ));
    }
    Ok(match filter {
        InferenceFilter::FloatMetric {
            metric_name,
            value,
            comparison_operator,
        } => {
            let m = metric(catalog, metric_name)?;
            if m.metric_type != MetricType::Float {
                return Err(ReadError::Invalid(format!(
                    "Metric `{metric_name}` is not a float metric"
                )));
            }
            let op = operator(comparison_operator)?;
            let target = target_column(m);
            let name = q.bind(metric_name.clone());
            let value = q.bind(*value);
            format!(
                "EXISTS (SELECT 1 FROM tensorzero.float_metric_feedback f WHERE f.target_id = {target} AND f.metric_name = {name} AND f.value {op} {value})"
            )
        }
        InferenceFilter::BooleanMetric { metric_name, value } => {
            let m = metric(catalog, metric_name)?;
            if m.metric_type != MetricType::Boolean {
                return Err(ReadError::Invalid(format!(
                    "Metric `{metric_name}` is not a boolean metric"
                )));
            }
            let target = target_column(m);
            let name = q.bind(metric_name.clone());
            let value = q.bind(*value);
            format!(
                "EXISTS (SELECT 1 FROM tensorzero.boolean_metric_feedback f WHERE f.target_id = {target} AND f.metric_name = {name} AND f.value = {value})"
            )
        }
        InferenceFilter::DemonstrationFeedback { has_demonstration } => format!(
            "{}EXISTS (SELECT 1 FROM tensorzero.demonstration_feedback f WHERE f.inference_id = i.id)",
            if *has_demonstration { "" } else { "NOT " }
        ),
        InferenceFilter::Tag {
            key,
            value,
            comparison_operator,
        } => {
            let tag = q.bind(json!({ key.clone(): value.clone() }));
            match comparison_operator.as_str() {
                "=" => format!("i.tags @> {tag}::jsonb"),
                "!=" => format!("NOT (i.tags @> {tag}::jsonb)"),
                other => {
                    return Err(ReadError::Invalid(format!(
                        "Invalid comparison operator `{other}` for a tag filter: use = or !="
                    )));
                }
            }
        }
        InferenceFilter::Time {
            time,
            comparison_operator,
        } => {
            let op = operator(comparison_operator)?;
            let time = q.bind(*time);
            format!("{} {op} {time}", q.time_column)
        }
        InferenceFilter::And { children } | InferenceFilter::Or { children } => {
            if children.is_empty() {
                return Ok(if matches!(filter, InferenceFilter::And { .. }) {
                    "TRUE".into()
                } else {
                    "FALSE".into()
                });
            }
            let joiner = if matches!(filter, InferenceFilter::And { .. }) {
                " AND "
            } else {
                " OR "
            };
            let parts = children
                .iter()
                .map(|c| filter_sql(c, catalog, q, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            format!("({})", parts.join(joiner))
        }
        InferenceFilter::Not { child } => {
            format!("NOT ({})", filter_sql(child, catalog, q, depth + 1)?)
        }
    })
}

/// Both kinds' rows in one shape (json rows have no tool columns; chat rows no schema).
fn union_sql(kinds: &[bool], output_source: OutputSource) -> String {
    let demonstration = |join_on: &str| {
        match output_source {
        OutputSource::Demonstration => format!(
            ", dm.value AS demonstration FROM {join_on}
             JOIN LATERAL (SELECT f.value FROM tensorzero.demonstration_feedback f WHERE f.inference_id = i.id ORDER BY f.created_at DESC, f.id DESC LIMIT 1) dm ON TRUE"
        ),
        _ => format!(", NULL::jsonb AS demonstration FROM {join_on}"),
    }
    };
    let parts: Vec<String> = kinds
        .iter()
        .map(|json| {
            if *json {
                format!(
                    "SELECT 'json' AS kind, i.id, i.function_name, i.variant_name, i.episode_id, i.tags, i.processing_time_ms, i.ttft_ms,
                            i.snapshot_hash, i.created_at, d.input, d.output, d.inference_params, d.extra_body,
                            NULL::jsonb AS dynamic_tools, NULL::jsonb AS dynamic_provider_tools, NULL::jsonb AS allowed_tools,
                            NULL::jsonb AS tool_choice, NULL::boolean AS parallel_tool_calls, d.output_schema{}",
                    demonstration("tensorzero.json_inferences i LEFT JOIN tensorzero.json_inference_data d ON d.id = i.id AND d.created_at = i.created_at")
                )
            } else {
                format!(
                    "SELECT 'chat' AS kind, i.id, i.function_name, i.variant_name, i.episode_id, i.tags, i.processing_time_ms, i.ttft_ms,
                            i.snapshot_hash, i.created_at, d.input, d.output, d.inference_params, d.extra_body,
                            d.dynamic_tools, d.dynamic_provider_tools, d.allowed_tools, d.tool_choice, d.parallel_tool_calls,
                            NULL::jsonb AS output_schema{}",
                    demonstration("tensorzero.chat_inferences i LEFT JOIN tensorzero.chat_inference_data d ON d.id = i.id AND d.created_at = i.created_at")
                )
            }
        })
        .collect();
    format!("({}) i", parts.join(" UNION ALL "))
}

/// Which tables a function's inferences are in.
fn kinds_of(function: Option<&str>, catalog: &Catalog<'_>) -> Result<Vec<bool>, ReadError> {
    match function {
        None => Ok(vec![false, true]),
        Some(crate::config::functions::DEFAULT_FUNCTION_NAME) => Ok(vec![false]),
        Some(name) => match (catalog.function_is_json)(name) {
            Some(json) => Ok(vec![json]),
            None => Err(ReadError::UnknownFunction(name.to_owned())),
        },
    }
}

/// `get_inferences`: these ids (unknown ones left out), newest first.
pub async fn get_inferences(
    pool: &Pool,
    catalog: &Catalog<'_>,
    ids: Vec<Uuid>,
    function_name: Option<&str>,
    output_source: OutputSource,
) -> Result<Vec<Value>, ReadError> {
    let kinds = kinds_of(function_name, catalog)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Query::new();
    let ids = q.bind(ids);
    let mut sql = format!(
        "SELECT * FROM {} WHERE i.id = ANY({ids})",
        union_sql(&kinds, output_source)
    );
    if let Some(f) = function_name {
        let f = q.bind(f.to_owned());
        sql.push_str(&format!(" AND i.function_name = {f}"));
    }
    sql.push_str(" ORDER BY i.id DESC");
    run(pool, &sql, &q, output_source).await
}

/// `list_inferences`.
pub async fn list_inferences(
    pool: &Pool,
    catalog: &Catalog<'_>,
    request: &ListInferences,
) -> Result<Vec<Value>, ReadError> {
    if request.before.is_some() && request.after.is_some() {
        return Err(ReadError::Invalid(
            "Cannot specify both 'before' and 'after' parameters".into(),
        ));
    }
    let cursor = request.before.or(request.after);
    if cursor.is_some() && request.offset.is_some_and(|o| o > 0) {
        return Err(ReadError::Invalid(
            "Cannot use 'offset' with cursor pagination ('before' or 'after')".into(),
        ));
    }
    let limit = request.limit.unwrap_or(20);
    if limit > MAX_LIMIT {
        return Err(ReadError::Invalid(format!(
            "`limit` {limit} is more than the {MAX_LIMIT} one call may return; page with `before`/`after`"
        )));
    }
    let kinds = kinds_of(request.function_name.as_deref(), catalog)?;
    let mut q = Query::new();
    let mut conditions = Vec::new();
    if let Some(f) = &request.function_name {
        conditions.push(format!("i.function_name = {}", q.bind(f.clone())));
    }
    if let Some(v) = &request.variant_name {
        conditions.push(format!("i.variant_name = {}", q.bind(v.clone())));
    }
    if let Some(e) = request.episode_id {
        conditions.push(format!("i.episode_id = {}", q.bind(e)));
    }
    if let Some(filter) = &request.filters {
        conditions.push(filter_sql(filter, catalog, &mut q, 0)?);
    }
    if let Some(text) = &request.search_query_experimental {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = q.bind(format!("%{escaped}%"));
        conditions.push(format!(
            "(i.input::text ILIKE {pattern} OR i.output::text ILIKE {pattern})"
        ));
    }
    if let Some(before) = request.before {
        conditions.push(format!("i.id < {}", q.bind(before)));
    }
    if let Some(after) = request.after {
        conditions.push(format!("i.id > {}", q.bind(after)));
    }
    // The order: the client's, else newest first; a cursor pages by id.
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
            "timestamp" => order.push(format!("i.created_at {direction}")),
            "metric" | "search_relevance" if cursor.is_some() => {
                return Err(ReadError::Invalid(
                    "Cannot order by metric or search relevance with cursor pagination ('before' or 'after')".into(),
                ));
            }
            "metric" => {
                let Some(name) = &o.name else {
                    return Err(ReadError::Invalid(
                        "Ordering by metric needs the metric's `name`".into(),
                    ));
                };
                if request.function_name.is_none() {
                    return Err(ReadError::Invalid(
                        "Ordering by metric requires `function_name`".into(),
                    ));
                }
                let m = metric(catalog, name)?;
                let (table, value) = match m.metric_type {
                    MetricType::Float => ("float_metric_feedback", "f.value"),
                    MetricType::Boolean => ("boolean_metric_feedback", "f.value::int"),
                };
                let target = target_column(m);
                let name = q.bind(name.clone());
                order.push(format!(
                    "(SELECT {value} FROM tensorzero.{table} f WHERE f.target_id = {target} AND f.metric_name = {name} ORDER BY f.created_at DESC LIMIT 1) {direction} NULLS LAST"
                ));
            }
            "search_relevance" => order.push(format!("i.id {direction}")),
            other => {
                return Err(ReadError::Invalid(format!(
                    "Invalid order `by` `{other}`: use \"timestamp\", \"metric\" or \"search_relevance\""
                )));
            }
        }
    }
    let ascending_page = request.after.is_some() && order.is_empty();
    if order.is_empty() {
        order.push(if ascending_page {
            "i.id ASC".into()
        } else {
            "i.id DESC".into()
        });
    } else {
        order.push("i.id DESC".into());
    }
    let mut sql = format!("SELECT * FROM {}", union_sql(&kinds, request.output_source));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    sql.push_str(&format!(" LIMIT {}", q.bind(limit as i64)));
    if let Some(offset) = request.offset.filter(|o| *o > 0) {
        sql.push_str(&format!(
            " OFFSET {}",
            q.bind(offset.min(i64::MAX as u64) as i64)
        ));
    }
    let mut rows = run(pool, &sql, &q, request.output_source).await?;
    if ascending_page {
        // `after` pages are read oldest first, then shown newest first like every page.
        rows.reverse();
    }
    Ok(rows)
}

async fn run(
    pool: &Pool,
    sql: &str,
    q: &Query,
    output_source: OutputSource,
) -> Result<Vec<Value>, ReadError> {
    let client = pool
        .get()
        .await
        .map_err(|e| ReadError::Unavailable(e.to_string()))?;
    let params: Vec<&(dyn ToSql + Sync)> = q
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client
        .query(sql, &params)
        .await
        .map_err(|e| ReadError::Unavailable(e.to_string()))?;
    Ok(rows
        .iter()
        .map(|row| stored_inference(row, output_source))
        .collect())
}

/// A StoredInference as TensorZero's API returns it.
fn stored_inference(row: &tokio_postgres::Row, output_source: OutputSource) -> Value {
    let kind: &str = row.get("kind");
    let created_at: DateTime<Utc> = row.get("created_at");
    let id: Uuid = row.get("id");
    let episode_id: Uuid = row.get("episode_id");
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    out.insert(
        "function_name".into(),
        json!(row.get::<_, String>("function_name")),
    );
    out.insert(
        "variant_name".into(),
        json!(row.get::<_, String>("variant_name")),
    );
    if let Some(input) = row.get::<_, Option<Value>>("input") {
        out.insert("input".into(), input);
    }
    let stored_output = row.get::<_, Option<Value>>("output");
    let (output, dispreferred) = match output_source {
        OutputSource::Inference => (stored_output, Vec::new()),
        OutputSource::Demonstration => (
            row.get::<_, Option<Value>>("demonstration"),
            stored_output.into_iter().collect(),
        ),
        OutputSource::None => (None, Vec::new()),
    };
    if let Some(output) = output {
        out.insert("output".into(), output);
    }
    out.insert("dispreferred_outputs".into(), Value::Array(dispreferred));
    out.insert(
        "timestamp".into(),
        json!(created_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    out.insert("episode_id".into(), json!(episode_id));
    out.insert("inference_id".into(), json!(id));
    if kind == "json" {
        out.insert(
            "output_schema".into(),
            row.get::<_, Option<Value>>("output_schema")
                .unwrap_or(Value::Null),
        );
    } else {
        tool_fields(row, &mut out);
    }
    out.insert(
        "tags".into(),
        row.get::<_, Option<Value>>("tags").unwrap_or(json!({})),
    );
    if let Some(extra) = row
        .get::<_, Option<Value>>("extra_body")
        .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
    {
        out.insert("extra_body".into(), extra);
    }
    if let Some(params) = row.get::<_, Option<Value>>("inference_params") {
        out.insert("inference_params".into(), params);
    }
    out.insert(
        "processing_time_ms".into(),
        json!(row.get::<_, Option<i32>>("processing_time_ms")),
    );
    out.insert(
        "ttft_ms".into(),
        json!(row.get::<_, Option<i32>>("ttft_ms")),
    );
    if let Some(hash) = row.get::<_, Option<Vec<u8>>>("snapshot_hash") {
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        out.insert("snapshot_hash".into(), json!(hex));
    }
    Value::Object(out)
}

/// A chat row's tool columns (same names in the inference and datapoint tables) as the API's
/// flattened tool fields: `allowed_tools` only when the request restricted the tools,
/// `additional_tools` only when it supplied some, `tool_choice` whenever there was a tool
/// configuration.
pub(super) fn tool_fields(row: &tokio_postgres::Row, out: &mut Map<String, Value>) {
    let dynamic = row
        .get::<_, Option<Value>>("dynamic_tools")
        .unwrap_or(json!([]));
    if let Some(a) = row.get::<_, Option<Value>>("allowed_tools")
        && a.get("choice").and_then(Value::as_str) != Some("function_default")
    {
        out.insert(
            "allowed_tools".into(),
            a.get("tools").cloned().unwrap_or(json!([])),
        );
    }
    if dynamic.as_array().is_some_and(|d| !d.is_empty()) {
        out.insert("additional_tools".into(), dynamic);
    }
    if let Some(c) = row.get::<_, Option<Value>>("tool_choice") {
        out.insert("tool_choice".into(), c);
    }
    if let Some(p) = row.get::<_, Option<bool>>("parallel_tool_calls") {
        out.insert("parallel_tool_calls".into(), json!(p));
    }
    out.insert(
        "provider_tools".into(),
        row.get::<_, Option<Value>>("dynamic_provider_tools")
            .unwrap_or(json!([])),
    );
}
