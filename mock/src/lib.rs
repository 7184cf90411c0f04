//! A mock LLM provider that speaks the OpenAI Chat Completions API, for tests, examples and the
//! benchmark (there is no internet here, and tests must not depend on a real provider).
//!
//! It answers `POST .../chat/completions` (any prefix, so `api_base` and Azure deployment URLs
//! both work). What it does is chosen by the request's `model`:
//!
//! | `model` contains | behaviour |
//! |---|---|
//! | (nothing special) | `mock reply to: <last user text>`; streamed word by word when `stream` is set |
//! | `error-NNN` | HTTP NNN with an OpenAI error body |
//! | `rate-limited` | HTTP 429 with `Retry-After: 2` |
//! | `busy-MS` | the first request for this model name: HTTP 429 with `retry-after-ms: MS`; then normal |
//! | `flaky` | the first request for this model name: HTTP 503; then normal |
//! | `garbage` | HTTP 200 whose body is not JSON |
//! | `slow-MS` | waits MS milliseconds before answering |
//! | `tool` | a tool call with `{"city":"Paris"}`: to the tool the request forces, else `get_weather` (streamed in pieces when streaming) |
//! | `json` | the content `{"answer":42}` |
//! | `choose-N` | a best-of-n evaluator's answer: `{"thinking":...,"answer_choice":N}` |
//! | `cot` | a chain-of-thought answer: `{"thinking":...,"response":{"answer":42}}` |
//! | `break` | a stream that breaks off after two chunks (non-streaming: a truncated body) |
//! | `stream-error` | a stream that sends one chunk and then an `error` event |
//! | `first-error` | a stream (HTTP 200) whose first event is an `error` event |
//! | `drip-MS` | a 200-chunk stream with MS milliseconds between chunks |
//! | `hostile-index` | a tool call whose index is 2^40 (streamed), or a choice with that index |
//! | `hostile-longline` | streaming: 64 MiB of `data:` with no newline; else a 64 MiB JSON body |
//! | `hostile-utf8` | invalid UTF-8 inside the stream's text, or the body's |
//! | `hostile-retry` | HTTP 429 with `Retry-After: 1e300` and `retry-after-ms: inf` |
//! | `hostile-noblank` | two `data:` lines with no blank line between the events |
//! | `echo-key` | HTTP 401 whose message repeats the key it was sent (any route) |
//! | `leak-key` | a stream of two chunks, then an error event that repeats the key it was sent |
//!
//! Tests switch outages on and off: `POST /mock/outage {"model": M, "status": 503}` (or
//! [`MockProvider::set_outage`]) makes chat requests for model M answer that status (a 429
//! with `Retry-After: 5`) until it is switched off with `"status": null`.
//!
//! `POST .../responses` answers in the OpenAI Responses API format (a `response` object, or its
//! typed event stream), with `think` (a reasoning item, encrypted when asked), `tool` (a
//! function call) and `error-NNN`; it refuses requests that are not `store: false`.
//!
//! `POST .../embeddings` answers in the OpenAI embeddings format: for each input a vector of
//! `dimensions` (default 4) numbers that depend only on the input, so equal inputs embed
//! equally (`base64` packs them as little-endian f32); `prompt_tokens` counts whitespace-split
//! words (token ids count one each). `error-NNN` and `slow-MS` in `model` work as above.
//!
//! `POST .../messages` answers in the Anthropic Messages format (JSON and its SSE event
//! sequence, with a `ping` after `message_start` as the real API sends) with the same behaviours
//! (also `think`: a signed thinking block first; `hostile-index`: a tool block at index 2^40
//! mid-stream), errors in
//! Anthropic's `{"type":"error","error":{...}}` shape.
//!
//! `POST .../models/NAME:generateContent` (and `:streamGenerateContent?alt=sse`) answers in the
//! Gemini format, the model named in the path choosing the behaviour (also `rate-limited`: a 429
//! `RESOURCE_EXHAUSTED` with a `RetryInfo` detail; `stream-error`: an error event after two
//! chunks; `stream-error-raw`: a pretty-printed error tail outside SSE framing; `first-error`,
//! `break`, `drip-MS`, `slow-MS`).
//!
//! For Vertex AI it also answers `POST .../token` (an OAuth token for any service-account
//! assertion) and `POST .../models/NAME:rawPredict` / `:streamRawPredict` (Anthropic on Vertex).
//!
//! `POST .../model/ID/converse` (and `/converse-stream`) answers in AWS Bedrock's Converse
//! format, streams in AWS's binary event-stream framing (`stream-error`: an exception message
//! mid-stream; `hostile-index`: a tool-use block at index 2^40; `hostile-truncated`: the body ends half
//! way through a message; `hostile-huge-frame`: a message that declares 2 GiB), errors as
//! `{"message": ...}` with `x-amzn-ErrorType`. A request without a SigV4
//! `Authorization` header (or, for Bedrock, a `Bearer` API key) gets Bedrock's 403.
//!
//! `POST /endpoints/NAME/invocations` (and `/invocations-response-stream`) is a SageMaker
//! endpoint whose container speaks the OpenAI format: the answer is the chat completion, the
//! stream its SSE bytes cut into `PayloadPart` event-stream messages, and a container error
//! becomes SageMaker's 424 `ModelError` (`stream-exception`: a `ModelStreamError` exception
//! message after two parts). It also wants a SigV4 `Authorization` header.
//!
//! Requests in the Anthropic, Gemini and Bedrock formats are first checked as the real APIs
//! check them (`validate`): required headers and fields, field types, unknown fields, each
//! refused with that API's status and error shape.
//!
//! `GET /mock/requests` lists every other request it received (method, path, headers, body),
//! answered or not (a route it does not know gets a 404), the most recent
//! [`MAX_RECORDED`] of them (so a benchmark's millions of requests do not grow it without end);
//! `GET /mock/stats` counts streams whose client went away before the end.

mod anthropic;
mod bedrock;
mod eventstream;
mod gemini;
mod openai;
mod quirks;
mod responses;
mod sagemaker;
mod validate;

use anthropic::anthropic;
use bedrock::{bedrock, bedrock_error};
use gemini::gemini;
use openai::{complete, embeddings};
use sagemaker::sagemaker;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};

/// The mock's body: its error type lets a stream fail on purpose (hyper then aborts the
/// connection, which is what a provider whose stream breaks looks like).
type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`null` if it was not JSON).
    pub body: Value,
}

impl Recorded {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How many requests the mock remembers (the oldest are forgotten first).
pub const MAX_RECORDED: usize = 10_000;

#[derive(Default)]
pub(crate) struct MockState {
    requests: Mutex<std::collections::VecDeque<Recorded>>,
    aborted_streams: AtomicU64,
    completed_streams: AtomicU64,
    cancelled_requests: AtomicU64,
    /// Requests per model name, for behaviours that change after the first request.
    seen: Mutex<std::collections::HashMap<String, u64>>,
    /// Outages switched on by tests: chat requests for these models answer this status.
    outages: Mutex<std::collections::HashMap<String, u16>>,
}

/// A running mock provider.
#[derive(Clone)]
pub struct MockProvider {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<MockState>,
}

impl MockProvider {
    /// Starts a mock on `127.0.0.1` with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a mock on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::default());
        let accept_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state })
    }

    /// The `api_base` to configure: `http://127.0.0.1:PORT/v1/`.
    pub fn api_base(&self) -> String {
        format!("http://{}/v1/", self.addr)
    }

    /// Switches an outage on (`Some(status)`: chat requests for `model` answer it) or off.
    pub fn set_outage(&self, model: &str, status: Option<u16>) {
        let mut outages = self.state.outages.lock().expect("mock lock");
        match status {
            Some(s) => outages.insert(model.to_owned(), s),
            None => outages.remove(model),
        };
    }

    /// How many chat requests named `model` so far.
    pub fn calls_for(&self, model: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.body["model"] == model)
            .count()
    }

    /// Every request received so far (the most recent [`MAX_RECORDED`]).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .expect("mock lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Streams whose client disconnected before the last chunk.
    pub fn aborted_streams(&self) -> u64 {
        self.state.aborted_streams.load(Ordering::SeqCst)
    }

    /// Requests whose client went away before the answer was ready (e.g. during `slow-MS`).
    pub fn cancelled_requests(&self) -> u64 {
        self.state.cancelled_requests.load(Ordering::SeqCst)
    }

    /// Streams sent to the end.
    pub fn completed_streams(&self) -> u64 {
        self.state.completed_streams.load(Ordering::SeqCst)
    }
}

async fn handle(
    state: Arc<MockState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    // Bodies that are not JSON (a token request's form) are kept as text.
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        if bytes.is_empty() {
            Value::Null
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
    });

    if method == Method::GET && path == "/mock/requests" {
        let list: Vec<Value> = state
            .requests
            .lock()
            .expect("mock lock")
            .iter()
            .map(|r| json!({ "method": r.method, "path": r.path, "headers": r.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(), "body": r.body }))
            .collect();
        return Ok(json_response(StatusCode::OK, &Value::Array(list)));
    }
    // `POST /mock/outage {"model": M, "status": 503}` switches an outage on for model M
    // (`"status": null` switches it off).
    if method == Method::POST && path == "/mock/outage" {
        let model = body["model"].as_str().unwrap_or_default().to_owned();
        let mut outages = state.outages.lock().expect("mock lock");
        match body["status"].as_u64().and_then(|s| u16::try_from(s).ok()) {
            Some(status) => outages.insert(model, status),
            None => outages.remove(&model),
        };
        return Ok(json_response(StatusCode::OK, &json!({ "ok": true })));
    }
    if method == Method::GET && path == "/mock/stats" {
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "aborted_streams": state.aborted_streams.load(Ordering::SeqCst),
                "completed_streams": state.completed_streams.load(Ordering::SeqCst),
                "cancelled_requests": state.cancelled_requests.load(Ordering::SeqCst),
            }),
        ));
    }
    let route = path.split('?').next().unwrap_or("").to_owned();
    let is_chat = route.ends_with("/chat/completions");
    let is_anthropic = route.ends_with("/messages");
    let sigv4_signed = headers.iter().any(|(n, v): &(String, String)| {
        n == "authorization" && v.starts_with("AWS4-HMAC-SHA256 Credential=")
    });
    // Bedrock also takes its API keys as bearer tokens (SageMaker does not).
    let bedrock_key = headers.iter().any(|(n, v): &(String, String)| {
        n == "authorization" && v.strip_prefix("Bearer ").is_some_and(|k| !k.is_empty())
    });
    // `echo-key`: a 401 that repeats the credential it was sent, as some providers do.
    let echoed_key = body["model"]
        .as_str()
        .is_some_and(|m| m.contains("echo-key"))
        .then(|| leaked_key(&headers));
    let headers_seen = headers.clone();
    {
        let mut requests = state.requests.lock().expect("mock lock");
        if requests.len() == MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(Recorded {
            method: method.to_string(),
            path,
            headers,
            body: body.clone(),
        });
    }
    if method == Method::POST
        && (route.ends_with(":generateContent") || route.ends_with(":streamGenerateContent"))
    {
        let model = route
            .rsplit("/models/")
            .next()
            .and_then(|m| m.split(':').next())
            .unwrap_or("mock")
            .to_owned();
        if let Some(refusal) = validate::gemini(&headers_seen, &body) {
            return Ok(refusal);
        }
        return Ok(gemini(
            state,
            body,
            model,
            route.ends_with(":streamGenerateContent"),
        )
        .await);
    }
    if method == Method::POST
        && route.starts_with("/model/")
        && (route.ends_with("/converse") || route.ends_with("/converse-stream"))
    {
        if !sigv4_signed && !bedrock_key {
            return Ok(bedrock_error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        }
        if let Some(refusal) = validate::bedrock(&body) {
            return Ok(refusal);
        }
        let stream = route.ends_with("/converse-stream");
        let model = route
            .trim_start_matches("/model/")
            .rsplit_once('/')
            .map(|(id, _)| percent_decode(id))
            .unwrap_or_default();
        return Ok(bedrock(state, body, model, stream).await);
    }
    if method == Method::POST
        && route.starts_with("/endpoints/")
        && (route.ends_with("/invocations") || route.ends_with("/invocations-response-stream"))
    {
        if !sigv4_signed {
            return Ok(bedrock_error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        }
        return Ok(sagemaker(state, body, route.ends_with("/invocations-response-stream")).await);
    }
    if method == Method::POST && route.ends_with("/token") {
        // A GCP OAuth token endpoint: any assertion is accepted.
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "access_token": "ya29.mock-token", "expires_in": 3600, "token_type": "Bearer" }),
        ));
    }
    if method == Method::POST
        && (route.ends_with(":rawPredict") || route.ends_with(":streamRawPredict"))
    {
        // Anthropic on Vertex: the model is in the path, not the body.
        let model = route
            .rsplit("/models/")
            .next()
            .and_then(|m| m.split(':').next())
            .unwrap_or("mock");
        if let Some(refusal) = validate::anthropic(&headers_seen, &body, true) {
            return Ok(refusal);
        }
        let mut body = body;
        body["model"] = json!(model);
        return Ok(anthropic(state, body).await);
    }
    if let Some(key) = echoed_key {
        return Ok(openai_error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {key}. You can find your API key in your account settings."
            ),
            "invalid_request_error",
        ));
    }
    if method == Method::POST && is_anthropic {
        if let Some(refusal) = validate::anthropic(&headers_seen, &body, false) {
            return Ok(refusal);
        }
        return Ok(anthropic(state, body).await);
    }
    if method == Method::POST && route.ends_with("/embeddings") {
        return Ok(embeddings(body).await);
    }
    if method == Method::POST && route.ends_with("/responses") {
        return Ok(responses::responses(body).await);
    }
    if method != Method::POST || !is_chat {
        return Ok(openai_error(
            StatusCode::NOT_FOUND,
            "unknown route on the mock provider",
            "invalid_request_error",
        ));
    }
    // hyper drops this future when the caller closes the connection before the answer is
    // ready; the guard counts that as a cancelled request.
    let mut guard = CancelGuard {
        state: state.clone(),
        answered: false,
    };
    let outage = body["model"]
        .as_str()
        .and_then(|m| state.outages.lock().expect("mock lock").get(m).copied());
    if let Some(status) = outage {
        guard.answered = true;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = openai_error(status, "mock outage", "server_error");
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("5"));
        }
        return Ok(response);
    }
    let mut body = body;
    if body["model"]
        .as_str()
        .is_some_and(|m| m.contains("leak-key"))
    {
        // `leak-key`: the stream's error event repeats the key (read by `complete`).
        body["__mock_leaked_key"] = json!(leaked_key(&headers_seen));
    }
    let response = complete(state, body).await;
    guard.answered = true;
    Ok(response)
}

/// The credential a request carried (its `Authorization` bearer token, `x-api-key` or
/// `api-key`), for the modes that repeat it back.
fn leaked_key(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(n, _)| matches!(n.as_str(), "authorization" | "x-api-key" | "api-key"))
        .map(|(_, v)| v.trim_start_matches("Bearer ").to_owned())
        .unwrap_or_default()
}

pub(crate) struct CancelGuard {
    state: Arc<MockState>,
    answered: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.answered {
            self.state.cancelled_requests.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pub(crate) fn number_after(model: &str, key: &str) -> Option<u64> {
    let rest = &model[model.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
/// Counts a stream as aborted when it is dropped before its last event.
pub(crate) struct StreamGuard {
    state: Arc<MockState>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.state.completed_streams
        } else {
            &self.state.aborted_streams
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// The text blocks of the last user turn in `turns` (Anthropic `messages`, Bedrock `messages`,
/// Gemini `contents`), each turn's blocks under `blocks`, joined by spaces.
pub(crate) fn last_user_text(turns: &Value, blocks: &str) -> String {
    turns
        .as_array()
        .and_then(|t| t.iter().rev().find(|t| t["role"] == "user"))
        .and_then(|t| t[blocks].as_array())
        .map(|b| {
            b.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A streamed answer: `frames` as they come, with `content_type`.
pub(crate) fn streamed<S>(frames: S, content_type: &'static str) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static,
{
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

pub(crate) fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut res = Response::new(full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

pub(crate) fn openai_error(status: StatusCode, message: &str, kind: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }),
    )
}

pub(crate) fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "type": "error", "error": { "type": kind, "message": message } }),
    )
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
