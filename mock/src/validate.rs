//! What each provider's real API refuses, refused the same way: required headers and fields,
//! field types, and unknown fields where the real API rejects them, each with that API's own
//! status and error shape. A gateway that sends a malformed request fails here, as it would in
//! production, instead of passing a test against a lenient mock.

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Body, anthropic_error, bedrock_error, json_response};

/// The Messages API's top-level fields (the Anthropic API reference).
const ANTHROPIC_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_format",
    "output_config",
];

/// Anthropic's refusal of a request: `invalid_request_error` (400), the message naming the
/// field as the API does (`max_tokens: Field required`).
fn anthropic_invalid(message: String) -> Option<Response<Body>> {
    Some(anthropic_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &message,
    ))
}

/// Checks a Messages request as the API does. On Vertex (`rawPredict`) the version is a body
/// field (`anthropic_version`) and the model is in the path; directly, the version is the
/// `anthropic-version` header and a key (`x-api-key`) is required.
pub fn anthropic(
    headers: &[(String, String)],
    body: &Value,
    vertex: bool,
) -> Option<Response<Body>> {
    let header = |name: &str| headers.iter().any(|(n, _)| n == name);
    if !vertex {
        if !header("x-api-key") && !header("authorization") {
            return Some(anthropic_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
            ));
        }
        if !header("anthropic-version") {
            return anthropic_invalid("anthropic-version: header is required".into());
        }
    }
    let Some(fields) = body.as_object() else {
        return anthropic_invalid("Input should be a valid dictionary or object".into());
    };
    for name in fields.keys() {
        let known =
            ANTHROPIC_FIELDS.contains(&name.as_str()) || (vertex && name == "anthropic_version");
        if !known || (vertex && name == "model") {
            return anthropic_invalid(format!("{name}: Extra inputs are not permitted"));
        }
    }
    let required: &[&str] = if vertex {
        &["anthropic_version", "messages", "max_tokens"]
    } else {
        &["model", "messages", "max_tokens"]
    };
    for name in required {
        if !fields.contains_key(*name) {
            return anthropic_invalid(format!("{name}: Field required"));
        }
    }
    if fields["max_tokens"].as_u64().is_none_or(|n| n < 1) {
        return anthropic_invalid(
            "max_tokens: Input should be a valid integer greater than or equal to 1".into(),
        );
    }
    let Some(messages) = fields["messages"].as_array() else {
        return anthropic_invalid("messages: Input should be a valid list".into());
    };
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m["role"].as_str(), Some("user" | "assistant")) {
            return anthropic_invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if let Some(extra) = m
            .as_object()
            .and_then(|o| o.keys().find(|k| !matches!(k.as_str(), "role" | "content")))
        {
            return anthropic_invalid(format!(
                "messages.{i}.{extra}: Extra inputs are not permitted"
            ));
        }
        if !(m["content"].is_string() || m["content"].is_array()) {
            return anthropic_invalid(format!(
                "messages.{i}.content: Input should be a valid list"
            ));
        }
    }
    for (name, check) in [
        ("temperature", Value::is_number as fn(&Value) -> bool),
        ("top_p", Value::is_number),
        ("top_k", Value::is_u64),
        ("stream", Value::is_boolean),
        ("stop_sequences", Value::is_array),
        ("tools", Value::is_array),
        ("tool_choice", Value::is_object),
    ] {
        if fields.get(name).is_some_and(|v| !check(v)) {
            return anthropic_invalid(format!("{name}: Input has the wrong type"));
        }
    }
    if let Some(system) = fields.get("system") {
        if !(system.is_string() || system.is_array()) {
            return anthropic_invalid("system: Input should be a valid string".into());
        }
    }
    None
}

/// `generateContent`'s top-level fields (the Gemini API reference; `labels` on Vertex).
const GEMINI_FIELDS: &[&str] = &[
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
    "labels",
];

/// `GenerationConfig`'s fields.
const GEMINI_GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
];

/// Google's refusal: 400 `INVALID_ARGUMENT` in the `google.rpc.Status` shape.
fn gemini_invalid(message: String) -> Option<Response<Body>> {
    Some(json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": { "code": 400, "message": message, "status": "INVALID_ARGUMENT" } }),
    ))
}

/// The first field of `object` not in `known` (Google's JSON parser refuses unknown names).
fn unknown<'a>(object: &'a Map<String, Value>, known: &[&str]) -> Option<&'a String> {
    object.keys().find(|k| !known.contains(&k.as_str()))
}

/// Checks a `generateContent` request as the API does: a caller without a key (AI Studio's
/// `x-goog-api-key`) or a token (Vertex's bearer) is refused first.
pub fn gemini(headers: &[(String, String)], body: &Value) -> Option<Response<Body>> {
    if !headers
        .iter()
        .any(|(n, _)| n == "x-goog-api-key" || n == "authorization")
    {
        return Some(json_response(
            StatusCode::FORBIDDEN,
            &json!({ "error": { "code": 403, "status": "PERMISSION_DENIED",
                "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API." } }),
        ));
    }
    let Some(fields) = body.as_object() else {
        return gemini_invalid("Invalid JSON payload received. Expected an object.".into());
    };
    if let Some(name) = unknown(fields, GEMINI_FIELDS) {
        return gemini_invalid(format!(
            "Invalid JSON payload received. Unknown name \"{name}\": Cannot find field."
        ));
    }
    if let Some(config) = fields.get("generationConfig") {
        let Some(config) = config.as_object() else {
            return gemini_invalid(
                "Invalid value at 'generation_config': expected an object.".into(),
            );
        };
        if let Some(name) = unknown(config, GEMINI_GENERATION_FIELDS) {
            return gemini_invalid(format!(
                "Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config': Cannot find field."
            ));
        }
        for name in ["temperature", "topP", "presencePenalty", "frequencyPenalty"] {
            if config.get(name).is_some_and(|v| !v.is_number()) {
                return gemini_invalid(format!(
                    "Invalid value at 'generation_config.{name}': expected a number."
                ));
            }
        }
        for name in ["maxOutputTokens", "candidateCount", "topK"] {
            if config.get(name).is_some_and(|v| !v.is_u64()) {
                return gemini_invalid(format!(
                    "Invalid value at 'generation_config.{name}': expected an integer."
                ));
            }
        }
    }
    match fields.get("contents").and_then(Value::as_array) {
        Some(contents) if !contents.is_empty() => {
            for (i, c) in contents.iter().enumerate() {
                if c["parts"].as_array().is_none_or(|p| p.is_empty()) {
                    return gemini_invalid(format!(
                        "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
                    ));
                }
                if let Some(role) = c.get("role").and_then(Value::as_str) {
                    if !matches!(role, "user" | "model") {
                        return gemini_invalid(format!(
                            "Please use a valid role: user, model. (contents[{i}].role is \"{role}\")"
                        ));
                    }
                }
            }
            None
        }
        _ => gemini_invalid("* GenerateContentRequest.contents: contents is not specified".into()),
    }
}

/// `Converse`'s body members (the Bedrock API reference; `modelId` is in the path).
const CONVERSE_FIELDS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
];

/// `InferenceConfiguration`'s members.
const CONVERSE_INFERENCE_FIELDS: &[&str] = &["maxTokens", "temperature", "topP", "stopSequences"];

fn bedrock_invalid(message: String) -> Option<Response<Body>> {
    Some(bedrock_error(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        &message,
    ))
}

/// Checks a `Converse` request as the service does: AWS's own SDKs refuse unknown members
/// before sending, so a request carrying one is not a request AWS accepts.
pub fn bedrock(body: &Value) -> Option<Response<Body>> {
    let Some(fields) = body.as_object() else {
        return bedrock_invalid(
            "Malformed input request, please reformat your input and try again.".into(),
        );
    };
    if let Some(name) = unknown(fields, CONVERSE_FIELDS) {
        return bedrock_invalid(format!(
            "Malformed input request: extraneous key [{name}] is not permitted, please reformat your input and try again."
        ));
    }
    let Some(messages) = fields.get("messages").and_then(Value::as_array) else {
        return bedrock_invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null".into(),
        );
    };
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m["role"].as_str(), Some("user" | "assistant")) {
            return bedrock_invalid(format!(
                "1 validation error detected: Value at 'messages.{}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]",
                i + 1
            ));
        }
        let Some(blocks) = m["content"].as_array() else {
            return bedrock_invalid(format!(
                "1 validation error detected: Value at 'messages.{}.member.content' failed to satisfy constraint: Member must not be null",
                i + 1
            ));
        };
        if blocks
            .iter()
            .any(|b| b.as_object().is_none_or(|o| o.len() != 1))
        {
            return bedrock_invalid(
                "A content block must set exactly one of its members (text, image, toolUse, toolResult, ...)".into(),
            );
        }
    }
    if let Some(config) = fields.get("inferenceConfig") {
        let Some(config) = config.as_object() else {
            return bedrock_invalid(
                "Malformed input request: inferenceConfig must be an object".into(),
            );
        };
        if let Some(name) = unknown(config, CONVERSE_INFERENCE_FIELDS) {
            return bedrock_invalid(format!(
                "Malformed input request: extraneous key [inferenceConfig.{name}] is not permitted, please reformat your input and try again."
            ));
        }
        if config
            .get("maxTokens")
            .is_some_and(|v| v.as_u64().is_none_or(|n| n < 1))
        {
            return bedrock_invalid(
                "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1".into(),
            );
        }
    }
    None
}
