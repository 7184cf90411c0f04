//! The gateway's errors, and the one place they become HTTP responses.
//!
//! Messages follow the TensorZero Gateway's wording where clients are known to match on it
//! (`All variants failed with errors: ...`), and otherwise say what was wrong and how to fix it.
//! No message ever contains a key: errors carry names of credentials, never their values.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;
use switchyard_layers::auth::AuthFailure;
use switchyard_layers::credentials::MissingCredential;
use switchyard_layers::fallback::AllFailed;
use switchyard_layers::guard::{Health, JudgeHealth, Skipped};
use switchyard_layers::rate_limit::{LimiterUnavailable, MaybeCharged, RateLimited, Resource};
use switchyard_layers::retry::{AllRetriesFailed, Classify, RetryDecision};
use switchyard_layers::timeout::Elapsed;

use crate::body::{Body, full};

/// Which error body shape a route uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFlavor {
    /// `{"error": "..."}` (native routes).
    Native,
    /// `{"error": {"message": "...", "type": "..."}}` (routes under `/openai/v1`).
    OpenAi,
    /// `{"type": "error", "error": {"type": "...", "message": "..."}}` (routes under
    /// `/anthropic/v1`).
    Anthropic,
}

impl ErrorFlavor {
    /// The shape of the routes under `path` (relative to `gateway.base_path`).
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/openai/v1") {
            ErrorFlavor::OpenAi
        } else if path.starts_with("/anthropic/v1") {
            ErrorFlavor::Anthropic
        } else {
            ErrorFlavor::Native
        }
    }
}

/// How a provider (or relay) exchange failed, when it did not answer with an HTTP error status.
/// Retry, rate-limit settlement and metrics decide on this, never on the message's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The request could not be built or sent: the provider never saw it.
    Unreachable,
    /// No answer within `gateway.global_outbound_http_timeout_ms`: the provider may be working
    /// on it (and billing it).
    NoAnswer,
    /// The answer broke off part way (connection reset, body cut): it was being generated.
    BrokeOff,
    /// The answer arrived but could not be used: malformed, too large, badly framed, or an error
    /// event the provider sent instead of content.
    Malformed,
}

impl FailureKind {
    /// Whether the provider may already have billed the call.
    pub fn may_have_charged(self) -> bool {
        matches!(self, FailureKind::NoAnswer | FailureKind::BrokeOff)
    }
}

/// A failure with its kind, before it is tied to the provider it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What went wrong, in words.
    pub message: String,
}

impl Fault {
    /// A fault of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A bare message is an answer that could not be used.
impl From<String> for Fault {
    fn from(message: String) -> Self {
        Self::new(FailureKind::Malformed, message)
    }
}

impl From<&str> for Fault {
    fn from(message: &str) -> Self {
        Self::new(FailureKind::Malformed, message)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
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
    /// The observability store (Postgres) could not answer a read the request needs.
    #[error("{0}")]
    StoreUnavailable(String),
    /// Something the request names does not exist (a metric, a datapoint); the message says
    /// what.
    #[error("{0}")]
    NotFound(String),
    /// An embeddings request names no embedding model.
    #[error("Model not found: {0}")]
    EmbeddingModelNotFound(String),
    /// A bare model name (from a coding agent) names neither a model nor a function.
    #[error(
        "Model not found: `{0}` is neither a configured model nor a function. Add `[models.\"{0}\"]` routing to your own providers (or a function of that name), or send `tensorzero::model_name::PROVIDER::MODEL` (e.g. `tensorzero::model_name::openai::gpt-5`)"
    )]
    UnknownModel(String),
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
    /// The body is over the limit (counted after decompression).
    #[error(
        "Request body is larger than the limit of {limit} bytes (after decompression); \
         raise `gateway.limits.max_request_body_bytes` to accept larger bodies"
    )]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client took too long to send its body.
    #[error(
        "The request body did not arrive within {limit_ms} ms; send it faster or raise \
         `gateway.limits.body_read_timeout_ms`"
    )]
    BodyReadTimeout {
        /// The limit in milliseconds.
        limit_ms: u64,
    },
    /// A configured feature switchyard does not implement yet.
    #[error("Not supported by switchyard yet: {0}")]
    NotSupported(String),
    /// A provider key could not be found.
    #[error("{0}")]
    ApiKeyMissing(MissingCredential),
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
        /// When the provider asked to be called again (`Retry-After`), on 429 and 503.
        retry_after: Option<Duration>,
    },
    /// A provider could not be reached, or its answer could not be understood.
    #[error("Error from {provider_type} provider `{provider}`: {message}")]
    ProviderFailure {
        /// The provider type.
        provider_type: &'static str,
        /// The provider name.
        provider: String,
        /// What kind of failure: what retry and rate-limit settlement decide on.
        kind: FailureKind,
        /// What went wrong.
        message: String,
    },
    /// The relay gateway failed or could not be reached.
    #[error("Error forwarding request in relay mode: {message}")]
    Relay {
        /// The relay's status code, when it answered.
        status: Option<u16>,
        /// How the exchange failed, when the relay did not answer with a status.
        kind: Option<FailureKind>,
        /// What it said, or why it could not be reached.
        message: String,
        /// When the relay asked to be called again (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// A rate limit was hit: the request would exceed a bucket.
    #[error("{0}")]
    RateLimited(RateLimited),
    /// The rate-limit store could not answer: the request is refused (fail closed).
    #[error("{0}")]
    LimiterUnavailable(LimiterUnavailable),
    /// A provider, model or variant took longer than a configured timeout.
    #[error("{0}")]
    Timeout(Elapsed),
    /// A provider was not called: its circuit is open, or it asked to be left alone.
    #[error("{0}")]
    ProviderSkipped(Skipped),
    /// Every provider of a model failed.
    #[error("All model providers failed to infer with errors: {}", join(.0, ", "))]
    AllModelProvidersFailed(Vec<(String, Error)>),
    /// Every attempt of a retried model call failed.
    #[error("All retries failed with errors: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "))]
    AllRetriesFailed(Vec<Error>),
    /// Every variant of a function failed.
    #[error("All variants failed with errors: {}", join(.0, "\n"))]
    AllVariantsFailed(Vec<(String, Error)>),
    /// The route exists, but not for this method.
    #[error("Method {method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed {
        /// The method the request used.
        method: String,
        /// The path it asked for.
        path: String,
        /// The methods the route takes, as the `Allow` header lists them.
        allowed: &'static str,
    },
    /// The API key check refused the request (`gateway.auth`).
    #[error("{0}")]
    Unauthorized(AuthFailure),
    /// A bug or an impossible state.
    #[error("Internal error: {0}")]
    Internal(String),
}

/// When every wrapped error has the same transparent status, the wrapper answers with it rather
/// than a blanket 5xx: a client that forgot a credential gets a 400 it can act on, and a relay's
/// 401 or 429 reaches the client as such. (The TensorZero Gateway answers 502 here; the message
/// text is the same.)
fn common_transparent_status(errors: &[(String, Error)]) -> Option<StatusCode> {
    same_status(errors.iter().map(|(_, e)| e.transparent_status()))
}

fn same_status(mut statuses: impl Iterator<Item = Option<StatusCode>>) -> Option<StatusCode> {
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
            | Error::ApiKeyMissing(_) => StatusCode::BAD_REQUEST,
            Error::UnknownFunction(_)
            | Error::NotFound(_)
            | Error::EmbeddingModelNotFound(_)
            | Error::UnknownModel(_)
            | Error::UnknownVariant { .. }
            | Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyReadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::ProviderHttp { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::ProviderFailure { .. } => StatusCode::BAD_GATEWAY,
            Error::Relay { status, .. } => status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY),
            Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::ProviderSkipped(_) | Error::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::LimiterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::AllModelProvidersFailed(errors) => {
                common_transparent_status(errors).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Error::AllRetriesFailed(errors) => {
                errors.last().map_or(StatusCode::BAD_GATEWAY, Error::status)
            }
            Error::AllVariantsFailed(errors) => {
                common_transparent_status(errors).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Unauthorized(failure) => failure.status(),
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status of an error whose cause the client should see as is through fallback and
    /// sampling: a request fault (missing credential, invalid request, unsupported feature),
    /// or a relay's own answer.
    fn transparent_status(&self) -> Option<StatusCode> {
        match self {
            Error::ApiKeyMissing(_)
            | Error::InvalidRequest(_)
            | Error::InvalidInferenceTarget(_)
            | Error::NotSupported(_)
            | Error::RateLimited(_)
            | Error::LimiterUnavailable(_)
            | Error::ProviderSkipped(_)
            | Error::Relay { .. } => Some(self.status()),
            Error::AllModelProvidersFailed(errors) | Error::AllVariantsFailed(errors) => {
                common_transparent_status(errors)
            }
            Error::AllRetriesFailed(errors) => errors.last().and_then(Error::transparent_status),
            _ => None,
        }
    }

    /// The error as an HTTP response in the route's body shape.
    pub fn into_response(self, flavor: ErrorFlavor) -> Response<Body> {
        let status = self.status();
        if let Error::LimiterUnavailable(LimiterUnavailable::Unreachable { detail }) =
            self.unwrapped()
        {
            // Which store, where, and its error: for operators, never for clients.
            tracing::warn!(%detail, "the rate-limit store did not answer");
        }
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
        }
        let mut res = json_error(status, &self.to_string(), flavor);
        if let Some(limited) = self.rate_limited() {
            rate_limit_headers(res.headers_mut(), limited);
        } else if let Some(after) = self
            .retry_after()
            .filter(|_| status == StatusCode::TOO_MANY_REQUESTS)
        {
            if let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(after) = self.all_skipped_for() {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs_f64().ceil().max(1.0) as u64),
            );
        }
        match self.unwrapped() {
            Error::LimiterUnavailable(_) | Error::Unauthorized(AuthFailure::Unavailable(_)) => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::Unauthorized(AuthFailure::TooManyFailures { retry_after }) => {
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            Error::MethodNotAllowed { allowed, .. } => {
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allowed));
            }
            _ => {}
        }
        res
    }

    /// When every provider of the call was skipped (circuits open, backing off): how long until
    /// the first of them is tried again.
    fn all_skipped_for(&self) -> Option<Duration> {
        match self {
            Error::ProviderSkipped(s) => Some(s.retry_after),
            Error::AllModelProvidersFailed(errors) | Error::AllVariantsFailed(errors) => errors
                .iter()
                .map(|(_, e)| e.all_skipped_for())
                .collect::<Option<Vec<_>>>()
                .and_then(|waits| waits.into_iter().min()),
            Error::AllRetriesFailed(errors) => errors.last().and_then(Error::all_skipped_for),
            _ => None,
        }
    }

    /// The innermost error when wrappers hold exactly one (the usual case for a rate limit).
    pub fn unwrapped(&self) -> &Error {
        match self {
            Error::AllModelProvidersFailed(errors) | Error::AllVariantsFailed(errors)
                if errors.len() == 1 =>
            {
                errors[0].1.unwrapped()
            }
            Error::AllRetriesFailed(errors) if errors.len() == 1 => errors[0].unwrapped(),
            other => other,
        }
    }

    /// The innermost error, owned, when wrappers hold exactly one.
    pub fn into_unwrapped(self) -> Error {
        match self {
            Error::AllModelProvidersFailed(mut errors) | Error::AllVariantsFailed(mut errors)
                if errors.len() == 1 =>
            {
                errors.pop().expect("one error").1.into_unwrapped()
            }
            Error::AllRetriesFailed(mut errors) if errors.len() == 1 => {
                errors.pop().expect("one error").into_unwrapped()
            }
            other => other,
        }
    }

    /// The rate limit this error (or the one it wraps) reports.
    pub fn rate_limited(&self) -> Option<&RateLimited> {
        match self.unwrapped() {
            Error::RateLimited(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this error is the rate limiter's (denial or store down): other variants would be
    /// refused the same way, so sampling stops.
    pub fn is_rate_limit(&self) -> bool {
        matches!(
            self.unwrapped(),
            Error::RateLimited(_) | Error::LimiterUnavailable(_)
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::ProviderHttp { retry_after, .. } | Error::Relay { retry_after, .. } => {
                *retry_after
            }
            Error::AllModelProvidersFailed(errors) | Error::AllVariantsFailed(errors) => {
                errors.iter().filter_map(|(_, e)| e.retry_after()).max()
            }
            Error::AllRetriesFailed(errors) => errors.last().and_then(Error::retry_after),
            _ => None,
        }
    }
}

impl Error {
    /// A failure of `provider` that is not an HTTP error status, with the fault's kind.
    pub fn provider_failure(
        provider_type: &'static str,
        provider: &str,
        fault: impl Into<Fault>,
    ) -> Error {
        let Fault { kind, message } = fault.into();
        Error::ProviderFailure {
            provider_type,
            provider: provider.to_owned(),
            kind,
            message,
        }
    }

    /// A relay exchange that failed without an HTTP status.
    pub fn relay_failure(fault: impl Into<Fault>) -> Error {
        let Fault { kind, message } = fault.into();
        Error::Relay {
            status: None,
            kind: Some(kind),
            message,
            retry_after: None,
        }
    }
}

impl Classify for Error {
    /// Retry what a second attempt can fix: provider 5xx, 408, 409 and 429, unreachable or
    /// broken providers, timeouts and relay failures of the same kinds. Never retry a request
    /// the client must change (4xx), a missing key, or a feature that is not there; nor a
    /// relay's 429: a relay answers 429 only for its own rate limits (its providers' errors
    /// reach the edge as 5xx), and a limit's refusal is final, as the edge's own limits are.
    fn retry_decision(&self) -> RetryDecision {
        let retryable_status = |s: u16| s >= 500 || matches!(s, 408 | 409 | 429);
        match self {
            Error::Relay {
                status: Some(429), ..
            } => RetryDecision::Never,
            Error::ProviderHttp {
                status,
                retry_after,
                ..
            } if retryable_status(*status) => RetryDecision::Retry {
                after: *retry_after,
            },
            Error::Relay {
                status,
                retry_after,
                ..
            } if status.is_none_or(retryable_status) => RetryDecision::Retry {
                after: *retry_after,
            },
            Error::ProviderFailure { .. } | Error::Timeout(_) => {
                RetryDecision::Retry { after: None }
            }
            Error::AllModelProvidersFailed(errors) => {
                let decisions: Vec<RetryDecision> =
                    errors.iter().map(|(_, e)| e.retry_decision()).collect();
                if decisions.iter().all(|d| *d == RetryDecision::Never) {
                    RetryDecision::Never
                } else {
                    // Come back when the most patient provider asked to, if any said.
                    let after = decisions
                        .iter()
                        .filter_map(|d| match d {
                            RetryDecision::Retry { after } => *after,
                            RetryDecision::Never => None,
                        })
                        .max();
                    RetryDecision::Retry { after }
                }
            }
            _ => RetryDecision::Never,
        }
    }
}

impl JudgeHealth for Error {
    /// A provider's own failures count against it (unreachable, broken or malformed answers,
    /// 5xx, 408, timeouts); a 429 with a time to come back is a back-off; anything the request
    /// caused (other 4xx, a missing key) says nothing about the provider.
    fn health(&self) -> Health {
        match self {
            Error::ProviderHttp { status, .. } if *status >= 500 || *status == 408 => {
                Health::Failed
            }
            Error::ProviderHttp {
                status: 429,
                retry_after: Some(after),
                ..
            } => Health::BackOff(*after),
            Error::ProviderFailure { .. } | Error::Timeout(_) => Health::Failed,
            _ => Health::Neutral,
        }
    }
}

impl From<Skipped> for Error {
    fn from(s: Skipped) -> Self {
        Error::ProviderSkipped(s)
    }
}

impl MaybeCharged for Error {
    /// A provider that answered with an error, could not be reached, or was never called did not
    /// bill; a timeout or a broken stream may have.
    fn provider_may_have_charged(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::ProviderFailure { kind, .. } => kind.may_have_charged(),
            Error::Relay {
                kind: Some(kind), ..
            } => kind.may_have_charged(),
            Error::AllModelProvidersFailed(errors) | Error::AllVariantsFailed(errors) => {
                errors.iter().any(|(_, e)| e.provider_may_have_charged())
            }
            Error::AllRetriesFailed(errors) => {
                errors.iter().any(MaybeCharged::provider_may_have_charged)
            }
            _ => false,
        }
    }
}

impl From<RateLimited> for Error {
    fn from(e: RateLimited) -> Self {
        Error::RateLimited(e)
    }
}

impl From<LimiterUnavailable> for Error {
    fn from(e: LimiterUnavailable) -> Self {
        Error::LimiterUnavailable(e)
    }
}

/// `Retry-After` and the OpenAI-style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
/// headers (the tightest bucket of each resource), so clients such as the OpenAI SDK back off.
fn rate_limit_headers(headers: &mut http::HeaderMap, limited: &RateLimited) {
    if let Some(wait) = limited.retry_after() {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs_f64().ceil().max(1.0) as u64),
        );
    }
    for (resource, suffix) in [
        (Resource::ModelInferences, "requests"),
        (Resource::Tokens, "tokens"),
    ] {
        let tightest = limited
            .buckets
            .iter()
            .filter(|b| b.resource == resource)
            .min_by_key(|b| b.remaining);
        if let Some(b) = tightest {
            let mut put = |name: String, value: String| {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::try_from(name),
                    HeaderValue::try_from(value),
                ) {
                    headers.insert(n, v);
                }
            };
            put(format!("x-ratelimit-limit-{suffix}"), b.limit.to_string());
            put(
                format!("x-ratelimit-remaining-{suffix}"),
                b.remaining.to_string(),
            );
            put(
                format!("x-ratelimit-reset-{suffix}"),
                format!("{:.3}s", b.reset.as_secs_f64()),
            );
        }
    }
}

impl From<MissingCredential> for Error {
    fn from(e: MissingCredential) -> Self {
        Error::ApiKeyMissing(e)
    }
}

impl From<Elapsed> for Error {
    fn from(e: Elapsed) -> Self {
        Error::Timeout(e)
    }
}

impl From<AllFailed<Error>> for Error {
    fn from(all: AllFailed<Error>) -> Self {
        Error::AllModelProvidersFailed(
            all.errors
                .into_iter()
                .map(|(n, e)| (n.to_string(), e))
                .collect(),
        )
    }
}

impl From<AllRetriesFailed<Error>> for Error {
    fn from(all: AllRetriesFailed<Error>) -> Self {
        Error::AllRetriesFailed(all.errors)
    }
}

/// The answer to a request whose handling panicked (a bug): a generic 500 in the route's error
/// shape; the panic's message goes to the log only.
pub fn panic_response(uri: &http::Uri) -> Response<Body> {
    let flavor = if uri.path().contains("/openai/v1") {
        ErrorFlavor::OpenAi
    } else {
        ErrorFlavor::Native
    };
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error: the gateway hit a bug while serving this request; it is logged \
         under this response's x-request-id",
        flavor,
    )
}

/// An error response with the given status and message.
pub fn json_error(status: StatusCode, message: &str, flavor: ErrorFlavor) -> Response<Body> {
    let body = match flavor {
        ErrorFlavor::Native => json!({ "error": message }),
        ErrorFlavor::OpenAi => json!({ "error": {
            "message": message,
            "type": openai_error_type(status),
            "param": null,
            "code": null,
        } }),
        ErrorFlavor::Anthropic => json!({
            "type": "error",
            "error": { "type": anthropic_error_type(status), "message": message },
        }),
    };
    let mut res = Response::new(full(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// OpenAI's error `type` for a status.
fn openai_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Anthropic's error `type` for a status (its own statuses: 400, 401, 403, 404, 413, 429, 500,
/// 529; a 503 of ours, a store or every provider down, reads as `overloaded_error`).
pub fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The longest wait a `Retry-After` is taken to mean: anything longer (`1e300`, a date in the
/// next century) is read as this, so no arithmetic on it can overflow.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses `Retry-After` (seconds or an HTTP date) or `retry-after-ms`, from a provider or a
/// relay. Hostile values are bounded: not a number, negative or not finite means absent; larger
/// than [`MAX_RETRY_AFTER`] means that.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let number = |name| -> Option<f64> {
        let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v)
    };
    let bounded = |secs: f64| {
        Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER))
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(bounded(ms / 1000.0));
    }
    if let Some(secs) = number(header::RETRY_AFTER.as_str()) {
        return Some(bounded(secs));
    }
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// An error and its causes, joined: hyper's own messages are terse ("client error (Connect)").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_follow_the_failure_kind_not_its_words() {
        let failure = |kind, message: &str| Error::ProviderFailure {
            provider_type: "openai",
            provider: "p".into(),
            kind,
            message: message.into(),
        };
        // The words do not matter: a malformed answer that mentions a break is refunded, and
        // a timeout worded any way is charged.
        assert!(
            !failure(FailureKind::Malformed, "the stream broke off").provider_may_have_charged()
        );
        assert!(!failure(FailureKind::Unreachable, "no answer within").provider_may_have_charged());
        assert!(failure(FailureKind::NoAnswer, "slow").provider_may_have_charged());
        assert!(failure(FailureKind::BrokeOff, "cut").provider_may_have_charged());
        let wrapped =
            Error::AllModelProvidersFailed(vec![("p".into(), failure(FailureKind::NoAnswer, "x"))]);
        assert!(wrapped.provider_may_have_charged());
        // A relay that was never reached charged nothing; one that went silent may have.
        let relay = |kind| Error::Relay {
            status: None,
            kind: Some(kind),
            message: "x".into(),
            retry_after: None,
        };
        assert!(!relay(FailureKind::Unreachable).provider_may_have_charged());
        assert!(relay(FailureKind::NoAnswer).provider_may_have_charged());
    }

    #[test]
    fn retry_after_forms() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = http::HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn hostile_retry_after_values_are_bounded() {
        for (name, value, expected) in [
            ("retry-after", "1e300", Some(MAX_RETRY_AFTER)),
            ("retry-after", "18446744073709551616", Some(MAX_RETRY_AFTER)),
            ("retry-after", "inf", None),
            ("retry-after", "NaN", None),
            ("retry-after", "-5", None),
            ("retry-after-ms", "inf", None),
            ("retry-after-ms", "1e300", Some(MAX_RETRY_AFTER)),
            ("retry-after-ms", "-0", Some(Duration::ZERO)),
            (
                "retry-after",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                Some(MAX_RETRY_AFTER),
            ),
        ] {
            let mut h = http::HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            assert_eq!(retry_after(&h), expected, "{name}: {value}");
        }
    }

    #[test]
    fn relay_status_passes_through_wrappers() {
        let relay = Error::Relay {
            status: Some(401),
            kind: None,
            message: "no".into(),
            retry_after: None,
        };
        let wrapped = Error::AllVariantsFailed(vec![("m".into(), relay)]);
        assert_eq!(wrapped.status(), StatusCode::UNAUTHORIZED);
        let provider = Error::ProviderHttp {
            provider_type: "openai",
            provider: "p".into(),
            status: 401,
            message: "bad key".into(),
            retry_after: None,
        };
        let wrapped = Error::AllVariantsFailed(vec![(
            "m".into(),
            Error::AllModelProvidersFailed(vec![("p".into(), provider)]),
        )]);
        assert_eq!(
            wrapped.status(),
            StatusCode::BAD_GATEWAY,
            "a provider's 401 is the gateway's problem"
        );
    }

    #[test]
    fn only_fixable_errors_are_retried() {
        let http = |status| Error::ProviderHttp {
            provider_type: "openai",
            provider: "p".into(),
            status,
            message: String::new(),
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            http(429).retry_decision(),
            RetryDecision::Retry {
                after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(
            http(503).retry_decision(),
            RetryDecision::Retry {
                after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(http(400).retry_decision(), RetryDecision::Never);
        assert_eq!(
            Error::InvalidRequest("x".into()).retry_decision(),
            RetryDecision::Never
        );
        let all =
            Error::AllModelProvidersFailed(vec![("a".into(), http(400)), ("b".into(), http(503))]);
        assert!(matches!(all.retry_decision(), RetryDecision::Retry { .. }));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("inf".to_owned()),
            Just("NaN".to_owned()),
            Just("1e300".to_owned()),
            Just("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
            Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
            "[ -~]{0,30}",
        ]
    }

    proptest! {
        #[test]
        fn retry_after_never_panics_and_stays_bounded(
            seconds in prop::option::of(header_value()),
            millis in prop::option::of(header_value()),
        ) {
            let mut headers = http::HeaderMap::new();
            if let Some(v) = seconds.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(header::RETRY_AFTER, v);
            }
            if let Some(v) = millis.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert("retry-after-ms", v);
            }
            if let Some(wait) = retry_after(&headers) {
                prop_assert!(wait <= MAX_RETRY_AFTER);
            }
        }
    }
}
