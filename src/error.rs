//! The gateway's errors, and the one place they become HTTP responses.
//!
//! Messages follow the TensorZero Gateway's wording where clients are known to match on it
//! (`All variants failed with errors: ...`), and otherwise say what was wrong and how to fix it.
//! No message ever contains a key: errors carry names of credentials, never their values.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::body::{Body, full};

/// Which error body shape a route uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFlavor {
    /// `{"error": "..."}` (native routes).
    Native,
    /// `{"error": {"message": "..."}}` (routes under `/openai/v1`).
    OpenAi,
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not JSON, or not the JSON the route expects.
    #[error("{0}")]
    JsonRequest(String),
    /// A well-formed request that asks for something invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request names no valid function or model.
    #[error("Invalid inference target: {0}")]
    InvalidInferenceTarget(String),
    /// An OpenAI-compatible request the gateway cannot map.
    #[error("Invalid request to OpenAI-compatible endpoint: {0}")]
    InvalidOpenAiRequest(String),
    /// `function_name` names no function.
    #[error("Unknown function: {0}")]
    UnknownFunction(String),
    /// `variant_name` names no variant of the function.
    #[error("Unknown variant `{variant}` of function `{function}`")]
    UnknownVariant {
        /// The function.
        function: String,
        /// The variant asked for.
        variant: String,
    },
    /// No route matches.
    #[error("Route not found: {method} {path}")]
    RouteNotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The body is over the limit.
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A configured feature switchyard does not implement yet.
    #[error("Not supported by switchyard yet: {0}")]
    NotSupported(String),
    /// A provider key could not be found.
    #[error("API key missing for provider {provider}: {message}")]
    ApiKeyMissing {
        /// The provider (model and provider name).
        provider: String,
        /// What is missing, by name only.
        message: String,
    },
    /// A provider answered with an HTTP error.
    #[error("Error from {provider_type} provider `{provider}` (HTTP {status}): {message}")]
    ProviderHttp {
        /// The provider type.
        provider_type: &'static str,
        /// The provider name.
        provider: String,
        /// The provider's status code.
        status: u16,
        /// The provider's own message (its `error.message`, or the start of its body).
        message: String,
    },
    /// A provider could not be reached, or its answer could not be understood.
    #[error("Error from {provider_type} provider `{provider}`: {message}")]
    ProviderFailure {
        /// The provider type.
        provider_type: &'static str,
        /// The provider name.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// A provider took longer than a configured timeout.
    #[error("Model provider {provider} timed out due to configured `{kind}` timeout ({millis} ms)")]
    ProviderTimeout {
        /// The provider name.
        provider: String,
        /// Which timeout fired.
        kind: &'static str,
        /// Its value.
        millis: u64,
    },
    /// A model took longer than its configured timeout.
    #[error("Model {model} timed out due to configured `{kind}` timeout ({millis} ms)")]
    ModelTimeout {
        /// The model name.
        model: String,
        /// Which timeout fired.
        kind: &'static str,
        /// Its value.
        millis: u64,
    },
    /// Every provider of a model failed.
    #[error("All model providers failed to infer with errors: {}", join(.0, ", "))]
    AllModelProvidersFailed(Vec<(String, Error)>),
    /// Every variant of a function failed.
    #[error("All variants failed with errors: {}", join(.0, "\n"))]
    AllVariantsFailed(Vec<(String, Error)>),
    /// A bug or an impossible state.
    #[error("Internal error: {0}")]
    Internal(String),
}

/// When every wrapped error is the same request fault, the wrapper answers with its status
/// rather than a blanket 5xx: a client that forgot a credential gets a 400 it can act on.
/// (The TensorZero Gateway answers 502 here; the message text is the same.)
fn common_request_fault(errors: &[(String, Error)]) -> Option<StatusCode> {
    let mut statuses = errors.iter().map(|(_, e)| e.request_fault());
    let first = statuses.next()??;
    statuses.all(|s| s == Some(first)).then_some(first)
}

fn join(errors: &[(String, Error)], sep: &str) -> String {
    let mut out = String::new();
    for (i, (name, err)) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&format!("{name}: {err}"));
    }
    out
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::JsonRequest(_)
            | Error::InvalidRequest(_)
            | Error::InvalidInferenceTarget(_)
            | Error::InvalidOpenAiRequest(_)
            | Error::ApiKeyMissing { .. } => StatusCode::BAD_REQUEST,
            Error::UnknownFunction(_)
            | Error::UnknownVariant { .. }
            | Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::ProviderHttp { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::ProviderFailure { .. } => StatusCode::BAD_GATEWAY,
            Error::ProviderTimeout { .. } | Error::ModelTimeout { .. } => {
                StatusCode::REQUEST_TIMEOUT
            }
            Error::AllModelProvidersFailed(errors) => {
                common_request_fault(errors).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Error::AllVariantsFailed(errors) => {
                common_request_fault(errors).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status of an error that the client (or the gateway's configuration) caused, not the
    /// provider: a missing dynamic credential, an invalid request, an unsupported feature.
    fn request_fault(&self) -> Option<StatusCode> {
        match self {
            Error::ApiKeyMissing { .. }
            | Error::InvalidRequest(_)
            | Error::InvalidInferenceTarget(_)
            | Error::NotSupported(_) => Some(self.status()),
            Error::AllModelProvidersFailed(errors) | Error::AllVariantsFailed(errors) => {
                common_request_fault(errors)
            }
            _ => None,
        }
    }

    /// The error as an HTTP response in the route's body shape.
    pub fn into_response(self, flavor: ErrorFlavor) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
        }
        json_error(status, &self.to_string(), flavor)
    }
}

/// An error response with the given status and message.
pub fn json_error(status: StatusCode, message: &str, flavor: ErrorFlavor) -> Response<Body> {
    let body = match flavor {
        ErrorFlavor::Native => json!({ "error": message }),
        ErrorFlavor::OpenAi => json!({ "error": { "message": message } }),
    };
    let mut res = Response::new(full(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
