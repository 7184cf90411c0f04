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
//! `Authorization` header gets Bedrock's 403.
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

mod eventstream;
mod validate;

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
struct MockState {
    requests: Mutex<std::collections::VecDeque<Recorded>>,
    aborted_streams: AtomicU64,
    completed_streams: AtomicU64,
    cancelled_requests: AtomicU64,
    /// Requests per model name, for behaviours that change after the first request.
    seen: Mutex<std::collections::HashMap<String, u64>>,
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
    // `echo-key`: a 401 that repeats the credential it was sent, as some providers do.
    let echoed_key = body["model"]
        .as_str()
        .is_some_and(|m| m.contains("echo-key"))
        .then(|| {
            headers
                .iter()
                .find(|(n, _)| matches!(n.as_str(), "authorization" | "x-api-key" | "api-key"))
                .map(|(_, v)| v.trim_start_matches("Bearer ").to_owned())
                .unwrap_or_default()
        });
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
        if !sigv4_signed {
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
    let response = complete(state, body).await;
    guard.answered = true;
    Ok(response)
}

/// `POST .../embeddings`.
async fn embeddings(body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return openai_error(status, &format!("mock error {code}"), "server_error");
    }
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(items) if items.iter().all(Value::is_u64) => vec![body["input"].clone()],
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let dimensions = body["dimensions"].as_u64().unwrap_or(4).clamp(1, 4096) as usize;
    let base64 = body["encoding_format"] == "base64";
    let mut tokens = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let text = match input {
                Value::String(s) => {
                    tokens += s.split_whitespace().count() as u64;
                    s.clone()
                }
                other => {
                    tokens += other.as_array().map_or(1, |a| a.len() as u64);
                    other.to_string()
                }
            };
            // A deterministic vector: each dimension from a running hash of the text.
            let mut h: u64 = 1469598103934665603;
            let vector: Vec<f32> = (0..dimensions)
                .map(|d| {
                    for b in text.bytes().chain([d as u8]) {
                        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
                    }
                    ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let embedding = if base64 {
                use base64::Engine;
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    )
}

struct CancelGuard {
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

fn number_after(model: &str, key: &str) -> Option<u64> {
    let rest = &model[model.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn complete(state: Arc<MockState>, body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);

    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let nth = {
        let mut seen = state.seen.lock().expect("mock lock");
        let n = seen.entry(model.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if let (Some(ms), 1) = (number_after(&model, "busy-"), nth) {
        let mut res = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "busy, come back later",
            "rate_limit_error",
        );
        res.headers_mut()
            .insert("retry-after-ms", http::HeaderValue::from(ms));
        return res;
    }
    if model.contains("flaky") && nth == 1 {
        return openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "mock provider briefly unavailable",
            "server_error",
        );
    }
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return openai_error(
            status,
            &format!("mock provider error {code}"),
            "server_error",
        );
    }
    if model.contains("rate-limited") {
        let mut res = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for mock requests",
            "rate_limit_error",
        );
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("2"));
        return res;
    }
    if let Some(response) = hostile(&model, stream) {
        return response;
    }
    if model.contains("garbage") {
        let mut res = Response::new(full("<html>definitely not json</html>"));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return res;
    }

    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        })
        .unwrap_or_default();
    let text = if model.contains("json") {
        "{\"answer\":42}".to_owned()
    } else if let Some(n) = number_after(&model, "choose-") {
        format!("{{\"thinking\":\"candidate {n} is best\",\"answer_choice\":{n}}}")
    } else if model.contains("cot") {
        "{\"thinking\":\"six times seven\",\"response\":{\"answer\":42}}".to_owned()
    } else {
        format!("mock reply to: {last_user}")
    };
    let prompt_tokens = (body["messages"].to_string().len() / 4) as u64 + 1;
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["tool_choice"]["function"]["name"]
        .as_str()
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());

    if !stream {
        let mut message =
            json!({ "role": "assistant", "content": if tool { Value::Null } else { json!(text) } });
        if tool {
            message["tool_calls"] = json!([{
                "id": "call_mock_1", "type": "function",
                "function": { "name": tool_name, "arguments": "{\"city\":\"Paris\"}" }
            }]);
        }
        let completion_tokens = if tool {
            9
        } else {
            text.split_whitespace().count() as u64
        };
        let answer = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "message": message, "finish_reason": if tool { "tool_calls" } else { "stop" } }],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }
        });
        if model.contains("break") {
            let text = answer.to_string();
            return Response::new(full(text[..text.len() / 2].to_owned()));
        }
        return json_response(StatusCode::OK, &answer);
    }

    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
        })
    };
    let mut events: Vec<Value> = vec![chunk(
        json!({ "role": "assistant", "content": "" }),
        Value::Null,
    )];
    let mut completion_tokens = 0u64;
    if tool {
        events.push(chunk(
            json!({ "tool_calls": [{ "index": 0, "id": "call_mock_1", "type": "function", "function": { "name": tool_name, "arguments": "" } }] }),
            Value::Null,
        ));
        for piece in ["{\"city\"", ":\"Par", "is\"}"] {
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                Value::Null,
            ));
            completion_tokens += 3;
        }
        events.push(chunk(json!({}), json!("tool_calls")));
    } else {
        let drip = number_after(&model, "drip-");
        let words: Vec<String> = if drip.is_some() {
            (0..200).map(|i| format!("w{i} ")).collect()
        } else {
            let mut words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
            if words.is_empty() {
                words.push(String::new());
            }
            words
        };
        for w in words {
            completion_tokens += 1;
            events.push(chunk(json!({ "content": w }), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
    }
    if include_usage {
        events.push(json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }
        }));
    }

    enum Step {
        Event(Value),
        Done,
        Break,
        Error,
    }
    let mut steps: Vec<Step> = events.into_iter().map(Step::Event).collect();
    if model.contains("first-error") {
        // A 200 whose first event is an error.
        steps = vec![Step::Error];
    } else if model.contains("stream-error") {
        steps.truncate(2);
        steps.push(Step::Error);
    } else if model.contains("break") {
        steps.truncate(3);
        steps.push(Step::Break);
    } else {
        steps.push(Step::Done);
    }
    let gap = number_after(&model, "drip-").map(Duration::from_millis);
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold((steps.into_iter(), guard, true), move |(mut steps, mut guard, first)| async move {
        let step = steps.next()?;
        if let (Some(gap), false) = (gap, first) {
            tokio::time::sleep(gap).await;
        }
        let frame: Result<Frame<Bytes>, std::io::Error> = match step {
            Step::Event(e) => Ok(Frame::data(Bytes::from(format!("data: {e}\n\n")))),
            Step::Error => Ok(Frame::data(Bytes::from(
                "data: {\"error\":{\"message\":\"mock provider failed mid-stream\",\"type\":\"server_error\"}}\n\n",
            ))),
            Step::Done => {
                guard.finished = true;
                Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n")))
            }
            Step::Break => {
                // Let the chunks already written reach the client first, so the break lands
                // mid-stream rather than before the first chunk.
                tokio::time::sleep(Duration::from_millis(50)).await;
                guard.finished = true;
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock provider broke the stream"))
            }
        };
        Some((frame, (steps, guard, false)))
    })
    .boxed();
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    res
}

/// A provider that misbehaves on purpose (`hostile-*` in the model name), to check that the
/// gateway bounds every index, size and duration it is sent.
fn hostile(model: &str, stream: bool) -> Option<Response<Body>> {
    const HUGE_INDEX: u64 = 1 << 40;
    const BIG: usize = 64 * 1024 * 1024;
    // A body sent in the given pieces, as a provider's answer arrives on the wire.
    let framed = |frames: Vec<Bytes>, content_type: &'static str| {
        let body = futures_util::stream::iter(frames.into_iter().map(|b| Ok(Frame::data(b))));
        let mut res = Response::new(StreamBody::new(body).boxed_unsync());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        res
    };
    let sse = |frames: Vec<Bytes>| framed(frames, "text/event-stream");
    let chunk = |delta: Value| {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({ "id": "x", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": null }] })
        ))
    };
    Some(if model.contains("hostile-index") {
        if stream {
            sse(vec![
                chunk(json!({ "role": "assistant", "content": "" })),
                chunk(
                    json!({ "tool_calls": [{ "index": HUGE_INDEX, "id": "call_1", "type": "function",
                                "function": { "name": "f", "arguments": "{}" } }] }),
                ),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ])
        } else {
            json_response(
                StatusCode::OK,
                &json!({ "id": "x", "object": "chat.completion", "created": 1, "model": model,
                         "choices": [{ "index": HUGE_INDEX, "message": { "role": "assistant", "content": "hi" }, "finish_reason": "stop" }] }),
            )
        }
    } else if model.contains("hostile-longline") {
        // Sent in 1 MiB pieces, as a real provider's stream would arrive.
        let piece = Bytes::from(vec![b'x'; 1 << 20]);
        let mut frames = vec![Bytes::from_static(b"data: {\"a\":\"")];
        frames.extend(std::iter::repeat_n(piece, BIG >> 20));
        if stream {
            sse(frames)
        } else {
            frames.push(Bytes::from_static(b"\"}"));
            framed(frames, "application/json")
        }
    } else if model.contains("hostile-utf8") {
        let mut text = b"{\"role\":\"assistant\",\"content\":\"bad \xff\xfe bytes\"}".to_vec();
        if stream {
            let mut event = b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":".to_vec();
            event.append(&mut text);
            event.extend_from_slice(b",\"finish_reason\":null}]}\n\n");
            sse(vec![
                Bytes::from(event),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ])
        } else {
            let mut body = b"{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":".to_vec();
            body.append(&mut text);
            body.extend_from_slice(b",\"finish_reason\":\"stop\"}]}");
            let mut res = Response::new(full(body));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            res
        }
    } else if model.contains("hostile-retry") {
        let mut res = openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "come back in a googol seconds",
            "rate_limit_error",
        );
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1e300"));
        res.headers_mut()
            .insert("retry-after-ms", http::HeaderValue::from_static("inf"));
        res
    } else if model.contains("hostile-noblank") && stream {
        let a = chunk(json!({ "role": "assistant", "content": "one" }));
        let b = chunk(json!({ "content": "two" }));
        // Both events' `data:` lines with no blank line between them: one event of two lines.
        let joined = [&a[..a.len() - 1], &b[..]].concat();
        sse(vec![
            Bytes::from(joined),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ])
    } else {
        return None;
    })
}

/// Counts a stream as aborted when it is dropped before its last event.
struct StreamGuard {
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

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut res = Response::new(full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn openai_error(status: StatusCode, message: &str, kind: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }),
    )
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "type": "error", "error": { "type": kind, "message": message } }),
    )
}

/// The Anthropic Messages API: the same behaviours as the OpenAI route, in Anthropic's format.
async fn anthropic(state: Arc<MockState>, body: Value) -> Response<Body> {
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return anthropic_error(status, "api_error", &format!("mock provider error {code}"));
    }
    if model.contains("rate-limited") {
        let mut res = anthropic_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        );
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("2"));
        return res;
    }
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_array().cloned())
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let text = format!("mock reply to: {last_user}");
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["tool_choice"]
        .get("name")
        .filter(|_| body["tool_choice"]["type"] == "tool")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());
    let thinking = model.contains("think");
    let input_tokens = (body["messages"].to_string().len() / 4) as u64 + 1;
    let output_tokens = if tool {
        9
    } else {
        text.split_whitespace().count() as u64
    };
    if !stream {
        let mut content = Vec::new();
        if thinking {
            content.push(
                json!({ "type": "thinking", "thinking": "let me think", "signature": "sig-mock" }),
            );
        }
        if tool {
            content.push(json!({ "type": "tool_use", "id": "toolu_mock_1", "name": tool_name, "input": { "city": "Paris" } }));
        } else {
            content.push(json!({ "type": "text", "text": text }));
        }
        return json_response(
            StatusCode::OK,
            &json!({
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if tool { "tool_use" } else { "end_turn" }, "stop_sequence": null,
                "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens }
            }),
        );
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({ "type": "message_start", "message": { "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "usage": { "input_tokens": input_tokens, "output_tokens": 1 } } }),
    )];
    // Anthropic sends pings anywhere in a stream; the real API puts one after message_start.
    events.push(("ping", json!({ "type": "ping" })));
    let mut index = 0;
    if thinking {
        events.push(("content_block_start", json!({ "type": "content_block_start", "index": index, "content_block": { "type": "thinking", "thinking": "" } })));
        events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "thinking_delta", "thinking": "let me think" } })));
        events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "signature_delta", "signature": "sig-mock" } })));
        events.push((
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        ));
        index += 1;
    }
    if tool {
        events.push(("content_block_start", json!({ "type": "content_block_start", "index": index,
            "content_block": { "type": "tool_use", "id": "toolu_mock_1", "name": tool_name, "input": {} } })));
        for piece in ["{\"city\"", ":\"Par", "is\"}"] {
            events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": piece } })));
        }
    } else {
        events.push(("content_block_start", json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } })));
        for w in text.split_inclusive(' ') {
            events.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": w } })));
        }
    }
    events.push((
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": index }),
    ));
    events.push(("message_delta", json!({ "type": "message_delta",
        "delta": { "stop_reason": if tool { "tool_use" } else { "end_turn" }, "stop_sequence": null },
        "usage": { "output_tokens": output_tokens } })));
    events.push(("message_stop", json!({ "type": "message_stop" })));
    let overloaded = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
    if model.contains("first-error") {
        // A 200 whose first event is an error (Anthropic's overload shape).
        events = vec![("error", overloaded)];
    } else if model.contains("stream-error") {
        events.truncate(4);
        events.push(("error", overloaded));
    } else if model.contains("hostile-index") {
        // A tool block at an index far past anything real, after the first text.
        events.insert(
            4,
            ("content_block_start", json!({ "type": "content_block_start", "index": 1u64 << 40,
                "content_block": { "type": "tool_use", "id": "toolu_x", "name": "get_weather", "input": {} } })),
        );
    }
    let broken = model.contains("break");
    if broken {
        events.truncate(4);
    }
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (events.into_iter(), guard, broken),
        |(mut events, mut guard, broken)| async move {
            match events.next() {
                Some((name, data)) => {
                    let frame: Result<Frame<Bytes>, std::io::Error> = Ok(Frame::data(Bytes::from(
                        format!("event: {name}\ndata: {data}\n\n"),
                    )));
                    Some((frame, (events, guard, broken)))
                }
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.finished = true;
                    let frame: Result<Frame<Bytes>, std::io::Error> = Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mock provider broke the stream",
                    ));
                    Some((frame, (events, guard, false)))
                }
                None => {
                    guard.finished = true;
                    drop(guard);
                    None
                }
            }
        },
    )
    .boxed();
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    res
}

/// The Gemini API: the same behaviours, in Gemini's format (the model comes from the path).
async fn gemini(state: Arc<MockState>, body: Value, model: String, stream: bool) -> Response<Body> {
    if let Some(ms) = number_after(&model, "slow-") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    // Google's canonical status names for the codes the mock is asked for.
    let google_status = |code: u64| match code {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_response(
            status,
            &json!({ "error": { "code": code, "message": format!("mock provider error {code}"), "status": google_status(code) } }),
        );
    }
    if model.contains("rate-limited") {
        // Gemini says when to come back in a RetryInfo detail, not in a header.
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({ "error": { "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
                     "details": [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s" }] } }),
        );
    }
    let last_user = body["contents"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|c| c["role"] == "user"))
        .and_then(|c| c["parts"].as_array().cloned())
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let text = format!("mock reply to: {last_user}");
    let prompt_tokens = (body["contents"].to_string().len() / 4) as u64 + 1;
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"][0]
        .as_str()
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());
    let thinking = model.contains("think");
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let usage = json!({ "promptTokenCount": prompt_tokens, "candidatesTokenCount": words.len(), "totalTokenCount": prompt_tokens + words.len() as u64 });
    let response = |parts: Value, finish: Option<&str>, usage: Option<&Value>| {
        let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        let mut r = json!({ "candidates": [candidate], "modelVersion": model });
        if let Some(u) = usage {
            r["usageMetadata"] = u.clone();
        }
        r
    };
    let mut parts = Vec::new();
    if thinking {
        parts.push(
            json!({ "text": "let me think", "thought": true, "thoughtSignature": "sig-mock" }),
        );
    }
    if tool {
        parts.push(json!({ "functionCall": { "name": tool_name, "args": { "city": "Paris" } } }));
    }
    if !stream {
        if !tool {
            parts.push(json!({ "text": text }));
        }
        return json_response(
            StatusCode::OK,
            &response(Value::Array(parts), Some("STOP"), Some(&usage)),
        );
    }
    let mut events: Vec<Value> = Vec::new();
    if !parts.is_empty() {
        events.push(response(Value::Array(parts), None, None));
    }
    if !tool {
        for w in &words {
            events.push(response(json!([{ "text": w }]), None, None));
        }
    }
    events.push(response(
        json!([{ "text": "" }]),
        Some("STOP"),
        Some(&usage),
    ));
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\r\n\r\n")))
        .collect();
    let overloaded = json!({ "error": { "code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE" } });
    if model.contains("first-error") {
        // A 200 whose first event is an error.
        frames = vec![Bytes::from(format!("data: {overloaded}\r\n\r\n"))];
    } else if model.contains("stream-error-raw") {
        // After two chunks, a pretty-printed error tail outside SSE framing, then the end.
        frames.truncate(2);
        frames.push(Bytes::from(
            serde_json::to_string_pretty(&overloaded).expect("json"),
        ));
    } else if model.contains("stream-error") {
        // After two chunks, an error as an SSE event on the same 200.
        frames.truncate(2);
        frames.push(Bytes::from(format!("data: {overloaded}\r\n\r\n")));
    }
    let broken = model.contains("break");
    if broken {
        frames.truncate(2);
    }
    let gap = number_after(&model, "drip-").map(Duration::from_millis);
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (frames.into_iter(), guard, broken, true),
        move |(mut frames, mut guard, broken, first)| async move {
            if let (Some(gap), false) = (gap, first) {
                tokio::time::sleep(gap).await;
            }
            match frames.next() {
                Some(frame) => Some((
                    Ok::<_, std::io::Error>(Frame::data(frame)),
                    (frames, guard, broken, false),
                )),
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.finished = true;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mock provider broke the stream",
                    );
                    Some((Err(error), (frames, guard, false, false)))
                }
                None => {
                    guard.finished = true;
                    drop(guard);
                    None
                }
            }
        },
    )
    .boxed();
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    res
}

fn percent_decode(s: &str) -> String {
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

fn bedrock_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let mut res = json_response(status, &json!({ "message": message }));
    if let Ok(v) = http::HeaderValue::from_str(kind) {
        res.headers_mut().insert("x-amzn-errortype", v);
    }
    res
}

/// Bedrock's Converse API: the same behaviours, the model coming from the path.
async fn bedrock(
    state: Arc<MockState>,
    body: Value,
    model: String,
    stream: bool,
) -> Response<Body> {
    use crate::eventstream::frame as encode_message;
    if let Some(code) = number_after(&model, "error-") {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return bedrock_error(
            status,
            "InternalServerException",
            &format!("mock provider error {code}"),
        );
    }
    if model.contains("rate-limited") {
        return bedrock_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        );
    }
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_array().cloned())
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let text = format!("mock reply to: {last_user}");
    // `tool` calls the tool the request forces, if it forces one, else get_weather.
    let forced_tool = body["toolConfig"]["toolChoice"]["tool"]["name"]
        .as_str()
        .map(str::to_owned);
    let tool = model.contains("tool");
    let tool_name = forced_tool.unwrap_or_else(|| "get_weather".to_owned());
    let thinking = model.contains("think");
    let input_tokens = (body["messages"].to_string().len() / 4) as u64 + 1;
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let output_tokens = if tool { 9 } else { words.len() as u64 };
    let usage = json!({ "inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens });
    let stop_reason = if tool { "tool_use" } else { "end_turn" };
    if !stream {
        let mut content = Vec::new();
        if thinking {
            content.push(json!({ "reasoningContent": { "reasoningText": { "text": "let me think", "signature": "sig-mock" } } }));
        }
        if tool {
            content.push(json!({ "toolUse": { "toolUseId": "tooluse_mock_1", "name": tool_name, "input": { "city": "Paris" } } }));
        } else {
            content.push(json!({ "text": text }));
        }
        return json_response(
            StatusCode::OK,
            &json!({
                "output": { "message": { "role": "assistant", "content": content } },
                "stopReason": stop_reason, "usage": usage, "metrics": { "latencyMs": 1 }
            }),
        );
    }
    let mut events: Vec<(&str, Value)> = vec![("messageStart", json!({ "role": "assistant" }))];
    let mut index = 0;
    if thinking {
        events.push(("contentBlockDelta", json!({ "contentBlockIndex": index, "delta": { "reasoningContent": { "text": "let me think" } } })));
        events.push(("contentBlockDelta", json!({ "contentBlockIndex": index, "delta": { "reasoningContent": { "signature": "sig-mock" } } })));
        events.push(("contentBlockStop", json!({ "contentBlockIndex": index })));
        index += 1;
    }
    if tool {
        events.push(("contentBlockStart", json!({ "contentBlockIndex": index, "start": { "toolUse": { "toolUseId": "tooluse_mock_1", "name": tool_name } } })));
        for piece in ["{\"city\"", ":\"Par", "is\"}"] {
            events.push((
                "contentBlockDelta",
                json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": piece } } }),
            ));
        }
    } else {
        for w in &words {
            events.push((
                "contentBlockDelta",
                json!({ "contentBlockIndex": index, "delta": { "text": w } }),
            ));
        }
    }
    events.push(("contentBlockStop", json!({ "contentBlockIndex": index })));
    events.push(("messageStop", json!({ "stopReason": stop_reason })));
    events.push((
        "metadata",
        json!({ "usage": usage, "metrics": { "latencyMs": 1 } }),
    ));
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|(kind, payload)| {
            encode_message(
                &[
                    (":event-type", kind),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                payload.to_string().as_bytes(),
            )
        })
        .collect();
    if model.contains("hostile-index") {
        // A block index far past anything real: a parser that sizes a table by it dies.
        frames.insert(
            1,
            encode_message(
                &[
                    (":event-type", "contentBlockStart"),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                json!({ "contentBlockIndex": 1u64 << 40, "start": { "toolUse": { "toolUseId": "t", "name": "get_weather" } } })
                    .to_string()
                    .as_bytes(),
            ),
        );
    } else if model.contains("hostile-truncated") {
        // Two whole messages, then half of the third, then a clean end of the body.
        frames.truncate(3);
        let last = frames.pop().expect("three frames");
        frames.push(last.slice(..last.len() / 2));
    } else if model.contains("hostile-huge-frame") {
        // A prelude (with a correct checksum) that declares a 2 GiB message, then bytes that
        // never amount to it: the decoder must refuse, not wait and buffer.
        frames.truncate(1);
        let total: u32 = 2 << 30;
        let mut prelude = Vec::with_capacity(12);
        prelude.extend_from_slice(&total.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        frames.push(Bytes::from(prelude));
        frames.push(Bytes::from(vec![0u8; 1 << 20]));
    }
    if model.contains("stream-error") {
        frames.truncate(2);
        frames.push(encode_message(
            &[
                (":exception-type", "modelStreamErrorException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({ "message": "The model stream failed" })
                .to_string()
                .as_bytes(),
        ));
    }
    let broken = model.contains("break");
    if broken {
        frames.truncate(2);
    }
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames = futures_util::stream::unfold(
        (frames.into_iter(), guard, broken),
        |(mut frames, mut guard, broken)| async move {
            match frames.next() {
                Some(frame) => Some((Ok(Frame::data(frame)), (frames, guard, broken))),
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.finished = true;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mock provider broke the stream",
                    );
                    Some((Err(error), (frames, guard, false)))
                }
                None => {
                    guard.finished = true;
                    drop(guard);
                    None
                }
            }
        },
    )
    .boxed();
    let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    res
}

/// A SageMaker endpoint in front of an OpenAI-format container.
async fn sagemaker(state: Arc<MockState>, body: Value, stream: bool) -> Response<Body> {
    use crate::eventstream::frame as encode_message;
    let exception = body["model"]
        .as_str()
        .is_some_and(|m| m.contains("stream-exception"));
    let container = complete(state, body).await;
    let status = container.status();
    if !status.is_success() {
        let text = container
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = format!(
            "Received server error ({}) from primary with message \"{}\".",
            status.as_u16(),
            String::from_utf8_lossy(&text)
        );
        let mut res = json_response(
            StatusCode::FAILED_DEPENDENCY,
            &json!({ "ErrorCode": "CLIENT_ERROR_FROM_MODEL", "Message": message, "OriginalStatusCode": status.as_u16() }),
        );
        res.headers_mut().insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static("ModelError"),
        );
        return res;
    }
    if !stream {
        return container;
    }
    let payload_part = |bytes: &[u8]| {
        encode_message(
            &[
                (":event-type", "PayloadPart"),
                (":content-type", "application/octet-stream"),
                (":message-type", "event"),
            ],
            bytes,
        )
    };
    let parts = container
        .into_body()
        .into_data_stream()
        .map(move |piece| piece.map(|bytes| Frame::data(payload_part(&bytes))));
    // `stream-exception`: SageMaker itself fails the stream after two parts.
    let parts = if exception {
        let failure = encode_message(
            &[
                (":exception-type", "ModelStreamError"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({ "Message": "The model took too long", "ErrorCode": "ModelInvocationTimeExceeded" })
                .to_string()
                .as_bytes(),
        );
        parts
            .take(2)
            .chain(futures_util::stream::once(async move {
                Ok(Frame::data(failure))
            }))
            .boxed()
    } else {
        parts.boxed()
    };
    let mut res = Response::new(StreamBody::new(parts).boxed_unsync());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    res
}
