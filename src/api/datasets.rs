//! `/v1/datasets/...`: create datapoints (by hand or from stored inferences), list, get,
//! edit (copy-on-write) and delete (soft) them, as TensorZero's dataset API does.

use std::collections::HashSet;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{AppState, json_response, parse_json, read_body};
use crate::body::Body;
use crate::error::Error;
use crate::inference::DynamicToolParams;
use crate::inference::functions::FunctionInfo;
use crate::inference::schema::JsonSchema;
use std::sync::Arc;

use crate::inference::stored::{self, FunctionTools};
use crate::model_call::{ToolChoice, ToolDef};
use crate::observability::datasets::{self, Datapoint, DatapointKind, ListDatapoints};
use crate::observability::files::Files;
use crate::observability::reads::{self, Catalog, ListInferences, OutputSource};
use crate::observability::rows::InferenceKind;

/// What a dataset route does.
enum Action {
    Create,
    Update,
    UpdateMetadata,
    Delete,
    DeleteDataset,
    FromInferences,
    List,
    Get,
}

/// Whether `path` is a dataset route (so the router hands it here).
pub fn is_dataset_path(path: &str) -> bool {
    path.starts_with("/v1/datasets/")
}

/// Handles every `/v1/datasets/...` route; `None` for a path or method it does not serve.
pub async fn route<B>(
    state: &AppState,
    path: &str,
    method: &Method,
    req: Request<B>,
) -> Option<Result<Response<Body>, Error>>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let rest = path.strip_prefix("/v1/datasets/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let (dataset, action) = match (segments.as_slice(), method) {
        (["get_datapoints"], &Method::POST) => (None, Action::Get),
        ([d, "datapoints"], &Method::POST) => (Some(*d), Action::Create),
        ([d, "datapoints"], &Method::PATCH) => (Some(*d), Action::Update),
        ([d, "datapoints"], &Method::DELETE) => (Some(*d), Action::Delete),
        ([d, "datapoints", "metadata"], &Method::PATCH) => (Some(*d), Action::UpdateMetadata),
        ([d, "from_inferences"], &Method::POST) => (Some(*d), Action::FromInferences),
        ([d, "list_datapoints"], &Method::POST) => (Some(*d), Action::List),
        ([d, "get_datapoints"], &Method::POST) => (Some(*d), Action::Get),
        ([d], &Method::DELETE) => (Some(*d), Action::DeleteDataset),
        _ => return None,
    };
    let dataset = dataset.map(percent_decode);
    Some(handle(state, dataset, action, req).await)
}

/// `%XX` escapes in a path segment, decoded (a dataset name may hold any character).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle<B>(
    state: &AppState,
    dataset: Option<String>,
    action: Action,
    req: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(d) = &dataset {
        datasets::check_dataset_name(d).map_err(Error::InvalidRequest)?;
    }
    let (_, bytes) = read_body(req, state.body_limit).await?;
    let Some(store) = state.engine.store() else {
        return Err(Error::InvalidRequest(
            "Datasets require observability to be enabled: set TENSORZERO_POSTGRES_URL (and keep `gateway.observability.enabled` from being `false`)".into(),
        ));
    };
    let pool = store.pool();
    let is_json = |name: &str| state.engine.function(name).map(|f| f.is_json());
    let catalog = Catalog {
        metrics: &state.feedback.metrics,
        function_is_json: &is_json,
    };
    let dataset_name = dataset.unwrap_or_default();
    let body = match action {
        Action::Create => {
            let request: Datapoints = parse_json(&bytes)?;
            if request.datapoints.is_empty() {
                return Err(Error::InvalidRequest(
                    "At least one datapoint must be provided".into(),
                ));
            }
            bound(request.datapoints.len())?;
            let mut new = Vec::with_capacity(request.datapoints.len());
            for d in request.datapoints {
                new.push(new_datapoint(state, &dataset_name, d)?);
            }
            datasets::write(pool, &new, &[]).await?;
            json!({"ids": new.iter().map(|d| d.id).collect::<Vec<_>>()})
        }
        Action::FromInferences => {
            let request: FromInferences = parse_json(&bytes)?;
            let (ids, source) = match request {
                FromInferences::InferenceIds {
                    inference_ids,
                    output_source,
                } => (inference_ids, output_source.unwrap_or_default()),
                FromInferences::InferenceQuery(mut query) => {
                    let source = query.output_source;
                    query.limit = Some(query.limit.unwrap_or(reads::MAX_LIMIT));
                    query.output_source = OutputSource::Inference;
                    let found = reads::list_inferences(pool, &catalog, &query).await?;
                    let ids = found
                        .iter()
                        .filter_map(|i| i["inference_id"].as_str()?.parse().ok())
                        .collect();
                    (ids, source)
                }
            };
            bound(ids.len())?;
            let new =
                datasets::from_inferences(pool, &catalog, &dataset_name, &ids, source).await?;
            json!({ "ids": new })
        }
        Action::List => {
            let request: ListDatapoints = parse_json(&bytes)?;
            let found = datasets::list(pool, &catalog, &dataset_name, &request).await?;
            json!({ "datapoints": found })
        }
        Action::Get => {
            let request: Ids = parse_json(&bytes)?;
            bound(request.ids.len())?;
            let dataset = (!dataset_name.is_empty()).then_some(dataset_name.as_str());
            json!({ "datapoints": datasets::get(pool, dataset, &request.ids).await? })
        }
        Action::Delete => {
            let request: Ids = parse_json(&bytes)?;
            if request.ids.is_empty() {
                return Err(Error::InvalidRequest("ids must be a non-empty list".into()));
            }
            bound(request.ids.len())?;
            let n = datasets::delete(pool, &dataset_name, Some(&request.ids)).await?;
            json!({ "num_deleted_datapoints": n })
        }
        Action::DeleteDataset => {
            let n = datasets::delete(pool, &dataset_name, None).await?;
            json!({ "num_deleted_datapoints": n })
        }
        Action::UpdateMetadata => {
            let request: Metadata = parse_json(&bytes)?;
            bound(request.datapoints.len())?;
            let names: Vec<(Uuid, Option<String>)> = request
                .datapoints
                .iter()
                .map(|d| (d.id, d.name.clone()))
                .collect();
            datasets::rename(pool, &dataset_name, &names).await?;
            json!({"ids": names.iter().map(|(id, _)| *id).collect::<Vec<_>>()})
        }
        Action::Update => {
            let request: Updates = parse_json(&bytes)?;
            if request.datapoints.is_empty() {
                return Err(Error::InvalidRequest(
                    "At least one datapoint must be provided".into(),
                ));
            }
            bound(request.datapoints.len())?;
            let mut seen = HashSet::new();
            let mut ids = Vec::with_capacity(request.datapoints.len());
            for u in &request.datapoints {
                let id = update_id(u)?;
                if !seen.insert(id) {
                    return Err(Error::InvalidRequest(format!(
                        "Duplicate datapoint id provided: {id}"
                    )));
                }
                ids.push(id);
            }
            let existing = datasets::live(pool, &dataset_name, &ids).await?;
            let mut new = Vec::with_capacity(ids.len());
            for (update, id) in request.datapoints.into_iter().zip(&ids) {
                let Some(old) = existing.iter().find(|d| d.id == *id) else {
                    return Err(Error::NotFound(format!(
                        "Datapoint not found for dataset: {dataset_name} and id: {id}"
                    )));
                };
                new.push(edited(state, old.clone(), update)?);
            }
            datasets::write(pool, &new, &ids).await?;
            json!({"ids": new.iter().map(|d| d.id).collect::<Vec<_>>()})
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn bound(n: usize) -> Result<(), Error> {
    if n > datasets::MAX_DATAPOINTS {
        return Err(Error::InvalidRequest(format!(
            "{n} datapoints is more than the {} one call may handle; split the call",
            datasets::MAX_DATAPOINTS
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Datapoints {
    datapoints: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Updates {
    datapoints: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Ids {
    #[serde(default)]
    ids: Vec<Uuid>,
}

#[derive(Deserialize)]
struct Metadata {
    datapoints: Vec<MetadataUpdate>,
}

#[derive(Deserialize)]
struct MetadataUpdate {
    id: Uuid,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromInferences {
    InferenceIds {
        inference_ids: Vec<Uuid>,
        output_source: Option<OutputSource>,
    },
    InferenceQuery(Box<ListInferences>),
}

fn update_id(update: &Map<String, Value>) -> Result<Uuid, Error> {
    update
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidRequest("every datapoint update needs its `id`".into()))
}

/// The kind of function `name` is, or the conversion error TensorZero gives.
fn function_of<'a>(
    state: &'a AppState,
    name: &str,
    json: bool,
) -> Result<&'a FunctionInfo, String> {
    let f = state
        .engine
        .function(name)
        .filter(|_| name != crate::inference::DEFAULT_FUNCTION_NAME)
        .ok_or_else(|| format!("Unknown function: {name}"))?;
    if f.is_json() != json {
        return Err(format!(
            "function `{name}` is a {} function",
            if f.is_json() { "json" } else { "chat" }
        ));
    }
    Ok(f)
}

/// A client-form input as StoredInput (its inline files kept in object storage, when on).
fn stored_input(input: Value, files: &Arc<Files>) -> Result<Value, String> {
    let wire: crate::native_wire::InputBody =
        serde_json::from_value(input).map_err(|e| format!("invalid `input`: {e}"))?;
    let input = super::inference::input_from_wire(wire).map_err(|e| e.to_string())?;
    input.for_each_file(|file| files.keep(file));
    Ok(stored::stored_input(&input, files))
}

/// A client-form chat output (text and tool-call blocks) in the stored form.
fn chat_output(output: &Value, function: &FunctionInfo) -> Result<Value, String> {
    let blocks = output
        .as_array()
        .ok_or("`output` must be a list of content blocks")?;
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => out.push(json!({"type": "text", "text": block.get("text").and_then(Value::as_str).ok_or("a text block needs `text`")?})),
            Some("tool_call") => {
                let name = block
                    .get("name")
                    .or_else(|| block.get("raw_name"))
                    .and_then(Value::as_str)
                    .ok_or("a tool_call block needs `name`")?;
                let raw_arguments = match block.get("raw_arguments").or_else(|| block.get("arguments")) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => "{}".into(),
                };
                let arguments: Option<Value> = serde_json::from_str(&raw_arguments).ok();
                let known = function.tools.iter().find(|t| t.def.name == name);
                let valid = known.is_some_and(|t| arguments.as_ref().is_some_and(|a| t.schema.validate(a).is_ok()));
                out.push(json!({
                    "type": "tool_call",
                    "id": block.get("id").and_then(Value::as_str).map_or_else(|| Uuid::now_v7().to_string(), str::to_owned),
                    "raw_name": name,
                    "raw_arguments": raw_arguments,
                    "name": known.map(|_| name),
                    "arguments": if valid { arguments } else { None },
                }));
            }
            Some("thought") => out.push(block.clone()),
            _ => return Err(format!("invalid output block: {block}")),
        }
    }
    Ok(Value::Array(out))
}

/// A json output `{"raw": ...}` as `{raw, parsed}` (parsed null unless it follows `schema`).
fn json_output(output: &Value, schema: &Value) -> Result<Value, String> {
    let raw = match output.get("raw") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err("a json datapoint's `output` is `{\"raw\": \"...\"}`".into()),
    };
    let parsed = serde_json::from_str::<Value>(&raw).ok().filter(|v| {
        JsonSchema::compile(schema.clone())
            .map(|s| s.validate(v).is_ok())
            .unwrap_or(false)
    });
    Ok(json!({"raw": raw, "parsed": parsed}))
}

/// The request's tool settings (client form) as the columns store them.
fn tool_kind(
    function: &FunctionInfo,
    fields: &Map<String, Value>,
) -> Result<DatapointKind, String> {
    let additional_tools: Vec<ToolDef> = match fields.get("additional_tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| format!("invalid `additional_tools`: {e}"))?,
    };
    let tool_choice: Option<ToolChoice> = match fields.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v.clone()).map_err(|e| format!("invalid `tool_choice`: {e}"))?,
        ),
    };
    let allowed_tools: Option<Vec<String>> = match fields.get("allowed_tools") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("invalid `allowed_tools`: {e}"))?,
        ),
    };
    let params = DynamicToolParams {
        allowed_tools,
        additional_tools,
        tool_choice,
        parallel_tool_calls: fields.get("parallel_tool_calls").and_then(Value::as_bool),
    };
    let InferenceKind::Chat {
        dynamic_tools,
        dynamic_provider_tools,
        allowed_tools,
        tool_choice,
        parallel_tool_calls,
    } = stored::tool_columns(Some(&FunctionTools::of(function)), &params)
    else {
        unreachable!("tool_columns makes chat columns")
    };
    let dynamic_provider_tools = match fields.get("provider_tools") {
        Some(Value::Array(tools)) => Value::Array(tools.clone()),
        _ => dynamic_provider_tools,
    };
    Ok(DatapointKind::Chat {
        dynamic_tools,
        dynamic_provider_tools,
        allowed_tools,
        tool_choice,
        parallel_tool_calls,
    })
}

fn tags_of(fields: &Map<String, Value>) -> Result<Value, String> {
    match fields.get("tags") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::Object(tags)) if tags.values().all(Value::is_string) => {
            Ok(Value::Object(tags.clone()))
        }
        Some(_) => Err("`tags` must map names to strings".into()),
    }
}

/// A datapoint from a create request.
fn new_datapoint(
    state: &AppState,
    dataset: &str,
    mut fields: Map<String, Value>,
) -> Result<Datapoint, Error> {
    let json = match fields.get("type").and_then(Value::as_str) {
        Some("chat") => false,
        Some("json") => true,
        _ => {
            return Err(Error::InvalidRequest(
                "every datapoint needs `type`: \"chat\" or \"json\"".into(),
            ));
        }
    };
    let fail = |why: String| {
        Error::InvalidRequest(format!(
            "Failed to convert {} datapoint to database insert: {why}",
            if json { "json" } else { "chat" }
        ))
    };
    let function_name = fields
        .get("function_name")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("`function_name` is missing".into()))?
        .to_owned();
    let function = function_of(state, &function_name, json).map_err(fail)?;
    let input = stored_input(
        fields.remove("input").unwrap_or(Value::Null),
        state.engine.files(),
    )
    .map_err(fail)?;
    let (output, kind) = if json {
        let schema = fields
            .get("output_schema")
            .filter(|s| !s.is_null())
            .cloned()
            .or_else(|| {
                function
                    .output_schema
                    .as_ref()
                    .map(|s| s.document().clone())
            })
            .unwrap_or_else(|| json!({}));
        let output = match fields.get("output") {
            None | Some(Value::Null) => None,
            Some(o) => Some(json_output(o, &schema).map_err(fail)?),
        };
        (
            output,
            DatapointKind::Json {
                output_schema: schema,
            },
        )
    } else {
        let output = match fields.get("output") {
            None | Some(Value::Null) => None,
            Some(o) => Some(chat_output(o, function).map_err(fail)?),
        };
        (output, tool_kind(function, &fields).map_err(fail)?)
    };
    Ok(Datapoint {
        id: Uuid::now_v7(),
        dataset_name: dataset.to_owned(),
        function_name,
        episode_id: fields
            .get("episode_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        input,
        output,
        kind,
        tags: tags_of(&fields).map_err(fail)?,
        is_custom: true,
        source_inference_id: None,
        name: fields
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `old` with an update's fields applied, as a new datapoint (a new id, custom).
fn edited(
    state: &AppState,
    mut old: Datapoint,
    update: Map<String, Value>,
) -> Result<Datapoint, Error> {
    let id = old.id;
    let json = matches!(old.kind, DatapointKind::Json { .. });
    match update.get("type").and_then(Value::as_str) {
        Some("chat") if json => {
            return Err(Error::InvalidRequest(format!(
                "Datapoint {id} is a JSON datapoint but a chat update was provided"
            )));
        }
        Some("json") if !json => {
            return Err(Error::InvalidRequest(format!(
                "Datapoint {id} is a chat datapoint but a JSON update was provided"
            )));
        }
        _ => {}
    }
    let fail =
        |why: String| Error::InvalidRequest(format!("Invalid update of datapoint {id}: {why}"));
    let function = state
        .engine
        .function(&old.function_name)
        .ok_or_else(|| Error::UnknownFunction(old.function_name.clone()))?;
    if let Some(input) = update.get("input").filter(|v| !v.is_null()) {
        old.input = stored_input(input.clone(), state.engine.files()).map_err(fail)?;
    }
    if let Some(schema) = update.get("output_schema").filter(|v| !v.is_null())
        && let DatapointKind::Json { output_schema } = &mut old.kind
    {
        *output_schema = schema.clone();
    }
    if let Some(output) = update.get("output") {
        old.output = match (output, &old.kind) {
            (Value::Null, _) => None,
            (o, DatapointKind::Json { output_schema }) => {
                Some(json_output(o, output_schema).map_err(fail)?)
            }
            (o, DatapointKind::Chat { .. }) => Some(chat_output(o, function).map_err(fail)?),
        };
    }
    let tool_keys = [
        "allowed_tools",
        "additional_tools",
        "tool_choice",
        "parallel_tool_calls",
        "provider_tools",
    ];
    if !json && tool_keys.iter().any(|k| update.contains_key(*k)) {
        old.kind = tool_kind(function, &update).map_err(fail)?;
    }
    if update.contains_key("tags") {
        old.tags = tags_of(&update).map_err(fail)?;
    }
    if let Some(name) = update.get("name") {
        old.name = name.as_str().map(str::to_owned);
    }
    old.id = Uuid::now_v7();
    old.is_custom = true;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_in_paths_are_decoded() {
        assert_eq!(percent_decode("my%20set"), "my set");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
