//! `POST /feedback`: a metric value, a comment or a demonstration about an inference or an
//! episode, checked the way the TensorZero Gateway checks it (same statuses, same messages)
//! and written by the observability store after the response (as TensorZero defers it).

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AppState, json_response, parse_json, read_body};
use crate::body::Body;
use crate::config::functions::{MetricConfig, MetricLevel, MetricType};
use crate::error::Error;
use crate::inference::schema::JsonSchema;
use crate::observability::rows::FeedbackRow;
use crate::observability::{Row, targets};

/// What `/feedback` needs of the configuration.
#[derive(Clone, Debug, Default)]
pub struct FeedbackSettings {
    /// `[metrics]`.
    pub metrics: BTreeMap<String, MetricConfig>,
    /// `gateway.unstable_disable_feedback_target_validation`: skip the existence check (not for
    /// demonstrations, which need the inference).
    pub skip_target_check: bool,
}

/// The request (TensorZero refuses unknown keys here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    inference_id: Option<Uuid>,
    episode_id: Option<Uuid>,
    metric_name: String,
    value: Value,
    // Clients send `null` for what they leave unset.
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default)]
    dryrun: Option<bool>,
}

/// What the metric is and where it points.
enum Kind {
    Comment,
    Demonstration,
    Metric(MetricConfig),
}

/// Handles `POST /feedback`.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (_, bytes) = read_body(req, state.body_limit).await?;
    let body: FeedbackBody = parse_json(&bytes)?;
    let body_tags = body.tags.clone().unwrap_or_default();
    let Some(store) = state.engine.store() else {
        return Err(Error::InvalidRequest(
            "Feedback requires observability to be enabled (`gateway.observability.enabled` must not be `false`).".into(),
        ));
    };
    if body.inference_id.is_some() && body.episode_id.is_some() {
        return Err(Error::InvalidRequest(
            "Both episode_id and inference_id cannot be provided".into(),
        ));
    }
    let kind = match body.metric_name.as_str() {
        "comment" => Kind::Comment,
        "demonstration" => Kind::Demonstration,
        name => match state.feedback.metrics.get(name) {
            Some(metric) => Kind::Metric(metric.clone()),
            None => return Err(Error::NotFound(format!("Unknown metric: {name}"))),
        },
    };
    // The target, by the metric's level (a comment takes either id).
    let (target, episode_level) = match (&kind, body.inference_id, body.episode_id) {
        (Kind::Comment, Some(id), None) => (id, false),
        (Kind::Comment, None, Some(id)) => (id, true),
        (Kind::Comment, _, _) => {
            return Err(Error::InvalidRequest(
                "Exactly one of inference_id or episode_id must be provided".into(),
            ));
        }
        (Kind::Demonstration, Some(id), _) => (id, false),
        (Kind::Metric(m), Some(id), _) if m.level == MetricLevel::Inference => (id, false),
        (Kind::Metric(m), _, Some(id)) if m.level == MetricLevel::Episode => (id, true),
        (Kind::Metric(m), _, _) if m.level == MetricLevel::Episode => {
            return Err(Error::InvalidRequest(
                "Correct ID was not provided for feedback level \"episode\".".into(),
            ));
        }
        _ => {
            return Err(Error::InvalidRequest(
                "Correct ID was not provided for feedback level \"inference\".".into(),
            ));
        }
    };
    if target.get_version_num() != 7 {
        return Err(Error::InvalidRequest(format!(
            "Failed to parse UUID as v7: {target}"
        )));
    }
    if body.internal != Some(true)
        && let Some(key) = body_tags.keys().find(|k| k.starts_with("tensorzero::"))
    {
        return Err(Error::InvalidRequest(format!(
            "Tag name cannot start with 'tensorzero::': {key}"
        )));
    }
    check_evaluation_tags(&body_tags)?;
    let tags = Value::Object(
        body_tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    let id = Uuid::now_v7();
    let unavailable = |e: String| {
        tracing::warn!(error = %e, "feedback: the observability store did not answer");
        Error::StoreUnavailable(
            "the observability store (Postgres) is not available to check the feedback's target; retry shortly".into(),
        )
    };
    let pool = store.pool();
    let row = match kind {
        Kind::Comment => {
            let Value::String(value) = body.value else {
                return Err(Error::InvalidRequest(
                    "Feedback value for a comment must be a string".into(),
                ));
            };
            ensure_target(state, pool, target, episode_level, unavailable).await?;
            FeedbackRow::Comment {
                id,
                target_id: target,
                target_type: if episode_level {
                    "episode"
                } else {
                    "inference"
                },
                value,
                tags,
                snapshot_hash: None,
            }
        }
        Kind::Metric(metric) => {
            let name = body.metric_name.clone();
            let row = match metric.metric_type {
                MetricType::Boolean => {
                    let Value::Bool(value) = body.value else {
                        return Err(Error::InvalidRequest(format!(
                            "Feedback value for metric `{name}` must be a boolean"
                        )));
                    };
                    FeedbackRow::Boolean {
                        id,
                        target_id: target,
                        metric_name: name,
                        value,
                        tags,
                        snapshot_hash: None,
                    }
                }
                MetricType::Float => {
                    let Some(value) = body.value.as_f64() else {
                        return Err(Error::InvalidRequest(format!(
                            "Feedback value for metric `{name}` must be a number"
                        )));
                    };
                    FeedbackRow::Float {
                        id,
                        target_id: target,
                        metric_name: name,
                        value,
                        tags,
                        snapshot_hash: None,
                    }
                }
            };
            ensure_target(state, pool, target, episode_level, unavailable).await?;
            row
        }
        Kind::Demonstration => {
            let stored = targets::inference(pool, target)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| {
                    Error::InvalidRequest(format!("Inference ID: {target} does not exist"))
                })?;
            let value = demonstration(state, &stored, body.value)?;
            FeedbackRow::Demonstration {
                id,
                inference_id: target,
                value,
                tags,
                snapshot_hash: None,
            }
        }
    };
    if body.dryrun != Some(true) {
        store.enqueue(Row::Feedback(Box::new(row)));
    }
    Ok(json_response(StatusCode::OK, &json!({ "feedback_id": id })))
}

/// A human evaluation's tags come as a set of three.
fn check_evaluation_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    if tags.contains_key("tensorzero::datapoint_id")
        && tags.contains_key("tensorzero::human_feedback")
        && !tags.contains_key("tensorzero::evaluator_inference_id")
    {
        return Err(Error::InvalidRequest(
            "tensorzero::evaluator_inference_id is required when tensorzero::datapoint_id and tensorzero::human_feedback are provided".into(),
        ));
    }
    Ok(())
}

/// Fails unless the target exists (waiting while it may still be queued), unless the check is
/// turned off.
async fn ensure_target(
    state: &AppState,
    pool: &deadpool_postgres::Pool,
    target: Uuid,
    episode: bool,
    unavailable: impl Fn(String) -> Error,
) -> Result<(), Error> {
    if state.feedback.skip_target_check {
        return Ok(());
    }
    if targets::target_exists(pool, target, episode)
        .await
        .map_err(unavailable)?
    {
        return Ok(());
    }
    Err(Error::InvalidRequest(if episode {
        format!("Episode ID: {target} does not exist")
    } else {
        format!("Inference ID: {target} does not exist")
    }))
}

/// A demonstration checked against what the inference offered, in the stored form: chat, an
/// array of ContentBlockChatOutput (tool calls by a tool the inference allowed, with valid
/// arguments); json, `{raw, parsed}` valid against its output schema.
fn demonstration(
    state: &AppState,
    stored: &targets::StoredTarget,
    value: Value,
) -> Result<Value, Error> {
    let function = state
        .engine
        .function(&stored.function_name)
        .ok_or_else(|| Error::UnknownFunction(stored.function_name.clone()))?;
    if let Some(schema) = &stored.output_schema {
        let compiled = JsonSchema::compile(schema.clone()).map_err(|e| {
            Error::InvalidRequest(format!(
                "Demonstration does not fit function output schema: the stored schema is {e}"
            ))
        })?;
        compiled.validate(&value).map_err(|e| {
            Error::InvalidRequest(format!(
                "Demonstration does not fit function output schema: {e}"
            ))
        })?;
        return Ok(json!({"raw": value.to_string(), "parsed": value}));
    }
    let blocks = match value {
        Value::String(text) => return Ok(json!([{"type": "text", "text": text}])),
        Value::Array(blocks) => blocks,
        _ => {
            return Err(Error::InvalidRequest(
                "Demonstration must be a string or an array of content blocks".into(),
            ));
        }
    };
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => match block.get("text").and_then(Value::as_str) {
                Some(text) => out.push(json!({"type": "text", "text": text})),
                None => {
                    return Err(Error::InvalidRequest(format!(
                        "Invalid demonstration content block: a text block needs a string `text`: {block}"
                    )));
                }
            },
            Some("tool_call") => {
                let (Some(name), Some(arguments)) = (
                    block.get("name").and_then(Value::as_str),
                    block.get("arguments"),
                ) else {
                    return Err(Error::InvalidRequest(format!(
                        "Invalid demonstration content block: a tool_call block needs `name` and `arguments`: {block}"
                    )));
                };
                let allowed = stored
                    .allowed_tools
                    .as_ref()
                    .is_some_and(|names| names.iter().any(|n| n == name));
                let schema = function
                    .tools
                    .iter()
                    .find(|t| t.def.name == name)
                    .map(|t| t.def.parameters.clone())
                    .or_else(|| {
                        stored
                            .dynamic_tools
                            .iter()
                            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
                            .and_then(|t| t.get("parameters").cloned())
                    });
                let Some(schema) = schema.filter(|_| allowed) else {
                    return Err(Error::InvalidRequest(
                        "Demonstration contains invalid tool name".into(),
                    ));
                };
                // Arguments may come as an object or as its JSON text.
                let arguments = match arguments {
                    Value::String(text) => serde_json::from_str(text).map_err(|_| {
                        Error::InvalidRequest(
                            "Demonstration contains invalid tool call arguments".into(),
                        )
                    })?,
                    other => other.clone(),
                };
                let valid = JsonSchema::compile(schema)
                    .map(|s| s.validate(&arguments).is_ok())
                    .unwrap_or(false);
                if !valid {
                    return Err(Error::InvalidRequest(
                        "Demonstration contains invalid tool call arguments".into(),
                    ));
                }
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
                out.push(json!({
                    "type": "tool_call",
                    "id": id,
                    "raw_name": name,
                    "raw_arguments": arguments.to_string(),
                    "name": name,
                    "arguments": arguments,
                }));
            }
            _ => {
                return Err(Error::InvalidRequest(format!(
                    "Invalid demonstration content block: expected `type` \"text\" or \"tool_call\": {block}"
                )));
            }
        }
    }
    Ok(Value::Array(out))
}
