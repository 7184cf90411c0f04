//! Model providers: one adapter per wire format, and the service that is the innermost stage
//! of the model-call stack (after credentials have been resolved).
//!
//! The OpenAI chat format serves `openai`, `azure` and the OpenAI-compatible family
//! (deepseek, fireworks, groq, hyperbolic, mistral, openrouter, together, xai, vllm, sglang,
//! tgi); [`relay`] speaks the TensorZero native API to a relay gateway. Other types load and
//! validate but answer "not supported yet" until their adapters land.

pub mod anthropic;
pub mod bedrock;
pub mod bounds;
pub mod gcp;
pub mod gemini;
pub mod implicit_tool;
pub mod openai;
pub mod relay;
pub mod sagemaker;
pub mod url;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchyard_layers::call::Call;
use switchyard_layers::credentials::{CredentialSource, KeyOrigin};
use switchyard_layers::ext::{DynamicCredentials, ProviderKey};
use switchyard_layers::timeout::Timeouts;
use switchyard_layers::trace_context::{self, TraceContext};

use crate::config::{ProviderConfig, ProviderType, ProviderTypesConfig};
use crate::credentials;
use crate::error::{Error, FailureKind, Fault};
use crate::http_client::HttpClient;
use crate::model_call::{
    BodyEdit, HeaderEdit, ModelChunk, ModelOutput, ModelRequest, ProviderOutput,
};
use crate::secret::Secret;

/// Everything start-up knows about one provider of one model.
#[derive(Debug)]
pub struct ProviderSpec {
    /// The provider's name within the model (`routing` entry).
    pub name: Arc<str>,
    /// The gateway's model name (configured name or shorthand).
    pub model_name: Arc<str>,
    /// The provider type.
    pub provider_type: ProviderType,
    /// Where its key comes from.
    pub credential: CredentialSource,
    /// Limits for one attempt.
    pub timeouts: Timeouts,
    adapter: Adapter,
    extra_body: Vec<BodyEdit>,
    extra_headers: Vec<HeaderEdit>,
}

#[derive(Debug)]
enum Adapter {
    OpenAi(openai::OpenAiAdapter),
    Anthropic(anthropic::AnthropicAdapter),
    Gemini(gemini::GeminiAdapter),
    Bedrock(bedrock::BedrockAdapter),
    Sagemaker(sagemaker::SagemakerAdapter),
    /// A type whose adapter is not written yet: calls fail with a clear 501.
    NotYetSupported(String),
}

/// The region (when `allow_auto_detect_region` lets it come from `AWS_REGION` or
/// `AWS_DEFAULT_REGION`) and the credentials of an AWS provider, warning at start-up when a
/// provider that will be called has none.
fn aws_setup(
    model: &str,
    name: &str,
    allow_auto_detect_region: bool,
    check_credentials: bool,
) -> (Option<String>, Option<bedrock::AwsCredentials>) {
    let credentials = bedrock::AwsCredentials::from_env();
    if credentials.is_none() && check_credentials {
        tracing::warn!(
            "provider `{name}` of model `{model}` has no AWS credentials: set AWS_ACCESS_KEY_ID \
             and AWS_SECRET_ACCESS_KEY, or its calls will fail"
        );
    }
    let region = allow_auto_detect_region
        .then(|| {
            std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
        })
        .flatten()
        // The region becomes part of the host name the signed request goes to.
        .filter(|r| {
            let ok = url::is_region(r);
            if !ok {
                tracing::warn!(
                    "provider `{name}` of model `{model}`: AWS_REGION is not a region such as \
                     `us-east-1`; it is ignored"
                );
            }
            ok
        });
    (region, credentials)
}

/// Why a configured provider could not be set up.
#[derive(Debug)]
pub struct ProviderSetupError(pub String);

impl ProviderSpec {
    /// Sets up a configured provider. With `check_credentials`, a missing environment variable
    /// or key file is an error that names it; without (relayed models: the edge holds no
    /// provider keys), it is reported only if a call needs it.
    pub fn from_config(
        model: &str,
        name: &str,
        config: &ProviderConfig,
        types: &ProviderTypesConfig,
        check_credentials: bool,
    ) -> Result<Self, ProviderSetupError> {
        let provider_type = config.kind.provider_type();
        let setup_error =
            |e: String| ProviderSetupError(format!("provider `{name}` of model `{model}`: {e}"));
        let location = config
            .kind
            .credential_location()
            .cloned()
            .unwrap_or_else(|| types.effective_default(provider_type));
        let adapter = match (
            &config.kind,
            openai::OpenAiAdapter::from_config(
                &config.kind,
                types.default_api_base(provider_type),
                check_credentials,
            ),
        ) {
            (_, Some(result)) => Adapter::OpenAi(result.map_err(|e| {
                ProviderSetupError(format!("provider `{name}` of model `{model}`: {e}"))
            })?),
            (crate::config::ProviderKind::Anthropic(p), None) => {
                Adapter::Anthropic(anthropic::AnthropicAdapter::new(
                    &p.model_name,
                    p.api_base
                        .as_deref()
                        .or(types.default_api_base(provider_type)),
                ))
            }
            (crate::config::ProviderKind::GoogleAiStudioGemini(p), None) => Adapter::Gemini(
                gemini::GeminiAdapter::new(
                    &p.model_name,
                    p.api_base
                        .as_deref()
                        .or(types.default_api_base(provider_type)),
                )
                .map_err(setup_error)?,
            ),
            (crate::config::ProviderKind::GcpVertexGemini(p), None) => {
                Adapter::Gemini(gemini::GeminiAdapter::vertex(p).map_err(setup_error)?)
            }
            (crate::config::ProviderKind::GcpVertexAnthropic(p), None) => {
                Adapter::Anthropic(anthropic::AnthropicAdapter::vertex(p).map_err(setup_error)?)
            }
            (crate::config::ProviderKind::AwsBedrock(p), None) => {
                let (region, credentials) =
                    aws_setup(model, name, p.allow_auto_detect_region, check_credentials);
                Adapter::Bedrock(bedrock::BedrockAdapter::new(p, region, credentials))
            }
            (crate::config::ProviderKind::AwsSagemaker(p), None) => {
                let (region, credentials) =
                    aws_setup(model, name, p.allow_auto_detect_region, check_credentials);
                Adapter::Sagemaker(sagemaker::SagemakerAdapter::new(p, region, credentials))
            }
            (_, None) => Adapter::NotYetSupported(format!("the `{provider_type}` provider type")),
        };
        let credential = match adapter {
            // No key is needed for a provider that cannot be called yet, nor checked for one
            // whose calls go to the relay.
                        Adapter::NotYetSupported(_) => credentials::load_lazily(&location),
            // Bedrock signs with the AWS credentials its adapter holds, not with a key.
            Adapter::Bedrock(_) | Adapter::Sagemaker(_) => CredentialSource::None,
            Adapter::Anthropic(_) | Adapter::Gemini(_) if !check_credentials => credentials::load_lazily(&location),
            Adapter::OpenAi(_) if !check_credentials => credentials::load_lazily(&location),
                        Adapter::OpenAi(_) | Adapter::Anthropic(_) | Adapter::Gemini(_) => credentials::load(&location).map_err(|e| {
                ProviderSetupError(format!(
                    "API key missing for provider `{name}` (type `{provider_type}`) of model `{model}`: {e}. \
                     Set it, or point `api_key_location` at where the key is (`none` if the server needs no key)"
                ))
            })?,
        };
        Ok(Self {
            name: name.into(),
            model_name: model.into(),
            provider_type,
            credential,
            timeouts: Timeouts::from(&config.timeouts),
            adapter,
            extra_body: config.extra_body.iter().map(BodyEdit::from).collect(),
            extra_headers: config.extra_headers.iter().map(HeaderEdit::from).collect(),
        })
    }

    /// The provider of a shorthand model such as `openai::gpt-4o-mini`. Its key is looked up
    /// now, but a missing one is only reported when a call needs it. Vertex shorthands name a
    /// resource path; one that is not well-formed is refused.
    pub fn shorthand(
        full_name: &str,
        provider_type: ProviderType,
        model: &str,
        types: &ProviderTypesConfig,
    ) -> Result<Self, Error> {
        let base = types.default_api_base(provider_type);
        let bad_target =
            |why: String| Error::InvalidInferenceTarget(format!("`{full_name}`: {why}"));
        let adapter = match openai::OpenAiAdapter::shorthand(provider_type, model, base) {
            Some(a) => Adapter::OpenAi(a),
            None if provider_type == ProviderType::Anthropic => {
                Adapter::Anthropic(anthropic::AnthropicAdapter::new(model, base))
            }
            None if provider_type == ProviderType::GoogleAiStudioGemini => {
                Adapter::Gemini(gemini::GeminiAdapter::new(model, base).map_err(bad_target)?)
            }
            None if provider_type == ProviderType::GcpVertexGemini => Adapter::Gemini(
                gemini::GeminiAdapter::vertex(&gcp::parse_resource_path(model, "google")?)
                    .map_err(bad_target)?,
            ),
            None if provider_type == ProviderType::GcpVertexAnthropic => Adapter::Anthropic(
                anthropic::AnthropicAdapter::vertex(&gcp::parse_resource_path(model, "anthropic")?)
                    .map_err(bad_target)?,
            ),
            None if provider_type == ProviderType::Openai => Adapter::NotYetSupported(
                "the OpenAI Responses API (`openai::responses::...`)".into(),
            ),
            None => Adapter::NotYetSupported(format!("the `{provider_type}` provider type")),
        };
        Ok(Self {
            name: provider_type.as_str().into(),
            model_name: full_name.into(),
            provider_type,
            credential: credentials::load_lazily(&types.effective_default(provider_type)),
            timeouts: Timeouts::default(),
            adapter,
            extra_body: Vec::new(),
            extra_headers: Vec::new(),
        })
    }

    /// A failure of this provider that is not an HTTP error status: unreachable, a broken or
    /// unreadable answer (a bare message is an unreadable answer; a [`Fault`] keeps its kind).
    pub fn failure(&self, fault: impl Into<Fault>) -> Error {
        let Fault { kind, message } = fault.into();
        Error::ProviderFailure {
            provider_type: self.provider_type.as_str(),
            provider: self.name.to_string(),
            kind,
            message,
        }
    }

    /// The label credential errors use: "`openai` of model `gpt`".
    pub fn label(&self) -> String {
        format!("`{}` of model `{}`", self.name, self.model_name)
    }
}

/// The provider adapter as a service: translates the call to the provider's wire format, sends
/// it with the key the credentials layer put in [`ProviderKey`], and translates the answer back.
#[derive(Clone, Debug)]
pub struct ProviderService {
    spec: Arc<ProviderSpec>,
    client: HttpClient,
    global_timeout: Duration,
}

impl ProviderService {
    /// The service for `spec`, sending through `client`; no HTTP exchange may take longer than
    /// `global_timeout` (`gateway.global_outbound_http_timeout_ms`).
    pub fn new(spec: Arc<ProviderSpec>, client: HttpClient, global_timeout: Duration) -> Self {
        Self {
            spec,
            client,
            global_timeout,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

impl tower::Service<Call<ModelRequest>> for ProviderService {
    type Response = ModelOutput;
    type Error = Error;
    type Future = BoxFuture<ModelOutput>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<ModelRequest>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let spec = &this.spec;
            if let Adapter::NotYetSupported(what) = &spec.adapter {
                return Err(Error::NotSupported(format!(
                    "{what} (provider {})",
                    spec.label()
                )));
            }
            let key = call
                .extensions
                .get::<ProviderKey>()
                .and_then(|k| k.0.clone());
            let dynamic = call
                .extensions
                .get::<DynamicCredentials>()
                .cloned()
                .unwrap_or_default();
            let implicit_tool = implicit_tool::rewrite(&call.payload);
            let request = implicit_tool.as_ref().unwrap_or(&call.payload);
            let edits = Edits {
                body: request
                    .extra_body
                    .variant
                    .iter()
                    .chain(&spec.extra_body)
                    .chain(
                        request
                            .extra_body
                            .request
                            .iter()
                            .filter(|t| t.target.applies_to(&spec.model_name, &spec.name))
                            .map(|t| &t.edit),
                    )
                    .collect(),
                headers: request
                    .extra_headers
                    .variant
                    .iter()
                    .chain(&spec.extra_headers)
                    .chain(
                        request
                            .extra_headers
                            .request
                            .iter()
                            .filter(|t| t.target.applies_to(&spec.model_name, &spec.name))
                            .map(|t| &t.edit),
                    )
                    .collect(),
            };
            let trace = call.extensions.get::<TraceContext>().copied();
            let key_origin = call
                .extensions
                .get::<KeyOrigin>()
                .copied()
                .unwrap_or(KeyOrigin::Configuration);
            let cx = CallContext {
                client: &this.client,
                credentials: &dynamic,
                key_origin,
                trace: trace.as_ref(),
            };
            let attempt = async {
                match &spec.adapter {
                    Adapter::OpenAi(a) => a.infer(spec, request, key.as_ref(), &edits, &cx).await,
                    Adapter::Anthropic(a) => {
                        a.infer(spec, request, key.as_ref(), &edits, &cx).await
                    }
                    Adapter::Gemini(a) => a.infer(spec, request, key.as_ref(), &edits, &cx).await,
                    Adapter::Bedrock(a) => a.infer(spec, request, &edits, &cx).await,
                    Adapter::Sagemaker(a) => a.infer(spec, request, &edits, &cx).await,
                    Adapter::NotYetSupported(_) => unreachable!("refused above"),
                }
            };
            let output = match tokio::time::timeout(this.global_timeout, attempt).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(spec.failure(Fault::new(
                        FailureKind::NoAnswer,
                        format!(
                            "no answer within `gateway.global_outbound_http_timeout_ms` ({} ms)",
                            this.global_timeout.as_millis()
                        ),
                    )));
                }
            };
            let output = if implicit_tool.is_some() {
                implicit_tool::unwrap(output)
            } else {
                output
            };
            Ok(ModelOutput {
                provider: spec.name.clone(),
                output,
            })
        })
    }
}

/// What an adapter needs besides the request.
pub struct CallContext<'a> {
    /// The shared outbound client.
    pub client: &'a HttpClient,
    /// The request's dynamic credentials (Azure can take its endpoint from them).
    pub credentials: &'a DynamicCredentials,
    /// Where the provider's key came from: one from the request may go where the request
    /// says (a service account's own `token_uri`), one from the configuration may not.
    pub key_origin: KeyOrigin,
    /// The trace the request belongs to: each call carries it on as `traceparent`.
    pub trace: Option<&'a TraceContext>,
}

/// The edits that apply to one provider attempt, in order: the variant's, the provider's, then
/// the request's that target this provider (later ones win).
pub struct Edits<'a> {
    /// Body edits.
    pub body: Vec<&'a BodyEdit>,
    /// Header edits.
    pub headers: Vec<&'a HeaderEdit>,
}

/// The message inside a provider's error body: OpenAI's `error.message`, other common
/// shapes, or the start of the body.
pub fn provider_error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v
            .get("error")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("Message"))
            .or_else(|| v.get("detail"))
        {
            Some(e) => error_text(e),
            None => snippet(body),
        },
        Err(_) if body.is_empty() => "(empty body)".to_owned(),
        Err(_) => snippet(body),
    }
}

/// The credentials an outgoing request carries (every header value marked sensitive, and the
/// token inside `Bearer`/`Basic` ones), kept to mask them in whatever the far end says back:
/// some providers echo the key they were sent in their error messages, and that text goes on
/// to the client, the log and traces.
#[derive(Default)]
pub struct Carried(Vec<String>);

/// What a masked credential reads as.
pub const MASKED: &str = "[redacted]";

impl Carried {
    /// The credentials in `request`'s headers.
    pub fn of<B>(request: &http::Request<B>) -> Self {
        let mut values = Vec::new();
        for value in request.headers().values().filter(|v| v.is_sensitive()) {
            let Ok(text) = value.to_str() else { continue };
            if let Some((_, token)) = text
                .split_once("Bearer ")
                .or_else(|| text.split_once("Basic "))
            {
                values.push(token.trim().to_owned());
            }
            values.push(text.to_owned());
        }
        // Longest first, so a header holding a token is masked whole before the token alone.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.retain(|v| v.len() >= MIN_MASKED_LEN);
        Self(values)
    }

    /// `text` with every carried credential replaced by [`MASKED`].
    pub fn mask(&self, text: String) -> String {
        self.0.iter().fold(text, |text, secret| {
            if text.contains(secret.as_str()) {
                text.replace(secret.as_str(), MASKED)
            } else {
                text
            }
        })
    }
}

/// Credentials shorter than this are not masked: replacing every `abc` in a message would
/// garble it, and a key that short protects nothing anyway.
const MIN_MASKED_LEN: usize = 6;

/// How much of a provider's error body is read for its message.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Sends one provider request; a non-2xx answer becomes the provider's error (its status, its
/// message and any `Retry-After`), an unreachable one a failure naming `url`.
pub async fn send(
    provider: &ProviderSpec,
    cx: &CallContext<'_>,
    url: &str,
    mut request: http::Request<http_body_util::Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Error> {
    if let Some(trace) = cx.trace {
        request
            .headers_mut()
            .insert(trace_context::TRACEPARENT, trace.outgoing());
    }
    let carried = Carried::of(&request);
    let response = cx.client.request(request).await.map_err(|e| {
        provider.failure(Fault::new(
            FailureKind::Unreachable,
            format!("could not reach `{url}`: {}", crate::error::error_chain(&e)),
        ))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = crate::error::retry_after(response.headers());
    let body = read_limited(response.into_body(), MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    Err(Error::ProviderHttp {
        provider_type: provider.provider_type.as_str(),
        provider: provider.name.to_string(),
        status: status.as_u16(),
        message: carried.mask(provider_error_message(&body)),
        retry_after,
    })
}

/// Reads a provider's SSE response body event by event.
pub struct SseReader {
    source: SseSource,
    decoder: crate::sse::SseDecoder,
}

/// Where an SSE byte stream comes from.
enum SseSource {
    /// The response body itself.
    Body(hyper::body::Incoming),
    /// The `PayloadPart` messages of an AWS event stream (SageMaker's response streams carry
    /// the container's own output, SSE included, in them).
    EventStream {
        body: hyper::body::Incoming,
        buffer: bytes::BytesMut,
    },
}

impl SseReader {
    /// Reads `body`.
    pub fn new(body: hyper::body::Incoming) -> Self {
        Self {
            source: SseSource::Body(body),
            decoder: crate::sse::SseDecoder::default(),
        }
    }

    /// Reads the SSE carried in the `PayloadPart` events of an AWS event-stream `body`.
    pub fn in_event_stream(body: hyper::body::Incoming) -> Self {
        Self {
            source: SseSource::EventStream {
                body,
                buffer: bytes::BytesMut::new(),
            },
            decoder: crate::sse::SseDecoder::default(),
        }
    }

    /// The next event; `Ok(None)` when the body has ended (cleanly or not: see
    /// [`SseReader::ended_mid_event`]); `Err` with what happened when the connection broke.
    pub async fn next(&mut self) -> Result<Option<crate::sse::SseEvent>, Fault> {
        loop {
            if let Some(event) = self
                .decoder
                .next_event()
                .map_err(|e| Fault::new(FailureKind::Malformed, e.to_string()))?
            {
                return Ok(Some(event));
            }
            match self.source.next_bytes().await? {
                Some(data) => self.decoder.push(&data),
                None => return Ok(None),
            }
        }
    }

    /// Whether the body ended in the middle of an event.
    pub fn ended_mid_event(&self) -> bool {
        self.decoder.has_partial()
    }

    /// Why a body that ended mid-event is a failure: a provider that sheds load mid-stream may
    /// end with a bare JSON error outside SSE framing (Gemini does), and then its own message
    /// is the reason; otherwise the stream was cut.
    pub fn unfinished(&self) -> String {
        let tail = self.decoder.leftover();
        match serde_json::from_slice::<Value>(&tail) {
            Ok(v) if v.get("error").is_some() => format!(
                "the stream ended with an error: {}",
                provider_error_message(&tail)
            ),
            _ => "the stream ended in the middle of an event".into(),
        }
    }
}

impl SseSource {
    /// The next piece of the SSE byte stream; `Ok(None)` at its end.
    async fn next_bytes(&mut self) -> Result<Option<Bytes>, Fault> {
        use http_body_util::BodyExt;
        let broke = |e: hyper::Error| {
            Fault::new(
                FailureKind::BrokeOff,
                format!("the stream broke off: {}", crate::error::error_chain(&e)),
            )
        };
        match self {
            SseSource::Body(body) => loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                    Some(Err(e)) => return Err(broke(e)),
                    None => return Ok(None),
                }
            },
            SseSource::EventStream { body, buffer } => loop {
                if let Some(message) = bedrock::decode_message(buffer)? {
                    if message.message_type == "exception" {
                        return Err(Fault::from(format!(
                            "the provider reported `{}` mid-stream: {}",
                            message.kind,
                            error_text(&serde_json::from_slice(&message.payload).unwrap_or_else(
                                |_| {
                                    Value::String(
                                        String::from_utf8_lossy(&message.payload).into_owned(),
                                    )
                                }
                            ))
                        )));
                    }
                    if message.kind == "PayloadPart" {
                        return Ok(Some(message.payload));
                    }
                    continue;
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buffer.extend_from_slice(&data);
                        }
                    }
                    Some(Err(e)) => return Err(broke(e)),
                    None if buffer.is_empty() => return Ok(None),
                    None => return Err("the event stream ended mid-message".into()),
                }
            },
        }
    }
}

/// A provider stream, read chunk by chunk.
pub trait ChunkSource: Send + 'static {
    /// The next chunk; `None` once the stream has ended.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<ModelChunk, Error>>> + Send;
}

/// Waits for a stream's first chunk (so that a failure before it is an ordinary error, and the
/// next provider can be tried), then hands on the rest.
pub async fn peek_stream<S: ChunkSource>(
    mut source: S,
    empty: impl FnOnce() -> Error,
) -> Result<ProviderOutput, Error> {
    use futures_util::StreamExt;
    let first = match source.next_chunk().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => return Err(e),
        None => return Err(empty()),
    };
    let rest = futures_util::stream::unfold(source, |mut s| async move {
        s.next_chunk().await.map(|item| (item, s))
    })
    .boxed();
    Ok(ProviderOutput::Stream { first, rest })
}

/// Sets (or with `None`, removes) the value at a JSON Pointer, creating objects on the way.
pub fn apply_body_edit(body: &mut Value, edit: &BodyEdit) {
    let tokens: Vec<String> = edit
        .pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        if let Some(v) = &edit.value {
            *body = v.clone();
        }
        return;
    };
    let mut node = body;
    for token in parents {
        node = match node {
            Value::Object(map) => {
                if edit.value.is_none() && !map.contains_key(token) {
                    return;
                }
                map.entry(token.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            {
                Some(v) => v,
                None => return,
            },
            other => {
                if edit.value.is_none() {
                    return;
                }
                *other = Value::Object(Default::default());
                other
                    .as_object_mut()
                    .expect("just made an object")
                    .entry(token.clone())
                    .or_insert(Value::Null)
            }
        };
    }
    match (node, &edit.value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.clone(), v.clone());
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), value) => {
            if let Ok(i) = last.parse::<usize>() {
                match value {
                    Some(v) if i < items.len() => items[i] = v.clone(),
                    Some(v) if i == items.len() => items.push(v.clone()),
                    None if i < items.len() => {
                        items.remove(i);
                    }
                    _ => {}
                }
            } else if last == "-" {
                if let Some(v) = value {
                    items.push(v.clone());
                }
            }
        }
        (other, Some(v)) => {
            let mut map = serde_json::Map::new();
            map.insert(last.clone(), v.clone());
            *other = Value::Object(map);
        }
        (_, None) => {}
    }
}

/// Marks a key as sensitive so that no header dump can show it.
pub fn sensitive_header(value: &str) -> Result<http::HeaderValue, Error> {
    let mut v = http::HeaderValue::from_str(value).map_err(|_| {
        Error::InvalidRequest(
            "a credential contains characters that cannot go in an HTTP header".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A key as an `Authorization: Bearer` value.
pub fn bearer(key: &Secret) -> Result<http::HeaderValue, Error> {
    sensitive_header(&format!("Bearer {}", key.expose()))
}

/// Applies `extra_headers` edits to an outgoing request.
pub fn apply_header_edits(
    headers: &mut http::HeaderMap,
    edits: &[&HeaderEdit],
) -> Result<(), Error> {
    for edit in edits {
        let name = http::HeaderName::from_bytes(edit.name.as_bytes()).map_err(|_| {
            Error::InvalidRequest(format!(
                "`extra_headers`: `{}` is not a valid header name",
                edit.name
            ))
        })?;
        match &edit.value {
            Some(v) => {
                let value = http::HeaderValue::from_str(v).map_err(|_| {
                    Error::InvalidRequest(format!(
                        "`extra_headers`: the value of `{}` is not a valid header value",
                        edit.name
                    ))
                })?;
                headers.insert(name, value);
            }
            None => {
                headers.remove(name);
            }
        }
    }
    Ok(())
}

/// The text of a provider's `error` value: its `message`, or the whole value.
pub fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// The start of a body, for error messages.
pub fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text}...")
    } else {
        text.into_owned()
    }
}

/// Reads a provider's whole (non-streamed) answer, refusing one larger than
/// [`bounds::MAX_RESPONSE_BYTES`]; the error says which happened: too large, or broke off.
pub async fn read_answer(body: hyper::body::Incoming) -> Result<bytes::Bytes, Fault> {
    use http_body_util::BodyExt;
    let limit = bounds::MAX_RESPONSE_BYTES;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Fault::new(
            FailureKind::Malformed,
            format!(
                "the answer is larger than {limit} bytes, the most the gateway reads from a provider"
            ),
        )),
        Err(e) => Err(Fault::new(
            FailureKind::BrokeOff,
            format!("the answer broke off: {}", crate::error::error_chain(&*e)),
        )),
    }
}

/// Reads a body of at most `limit` bytes.
pub async fn read_limited(
    body: hyper::body::Incoming,
    limit: usize,
) -> Result<bytes::Bytes, String> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| crate::error::error_chain(&*e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pointer: &str, v: Value) -> BodyEdit {
        BodyEdit {
            pointer: pointer.into(),
            value: Some(v),
        }
    }

    #[test]
    fn body_edits_set_nested_and_delete() {
        let mut body = json!({"a": {"b": 1}, "list": [1, 2]});
        apply_body_edit(&mut body, &set("/a/c/d", json!(true)));
        apply_body_edit(
            &mut body,
            &BodyEdit {
                pointer: "/a/b".into(),
                value: None,
            },
        );
        apply_body_edit(&mut body, &set("/list/-", json!(3)));
        apply_body_edit(
            &mut body,
            &BodyEdit {
                pointer: "/missing/x".into(),
                value: None,
            },
        );
        assert_eq!(body, json!({"a": {"c": {"d": true}}, "list": [1, 2, 3]}));
    }

    #[test]
    fn pointer_escapes_are_decoded() {
        let mut body = json!({});
        apply_body_edit(&mut body, &set("/a~1b/c~0d", json!(1)));
        assert_eq!(body, json!({"a/b": {"c~d": 1}}));
    }
}

#[cfg(test)]
mod carried_tests {
    use super::*;

    #[test]
    fn every_sensitive_header_value_is_masked_in_what_comes_back() {
        let mut request = http::Request::new(());
        let h = request.headers_mut();
        h.insert(
            "authorization",
            bearer(&Secret::new("sk-live-abcdef")).unwrap(),
        );
        h.insert("x-api-key", sensitive_header("ant-key-123456").unwrap());
        h.insert(
            "x-plain",
            http::HeaderValue::from_static("not-a-secret-at-all"),
        );
        h.insert("api-key", sensitive_header("abc").unwrap());
        let carried = Carried::of(&request);
        let echoed = "bad key sk-live-abcdef (Bearer sk-live-abcdef), ant-key-123456, \
                      not-a-secret-at-all, abc"
            .to_owned();
        assert_eq!(
            carried.mask(echoed),
            "bad key [redacted] ([redacted]), [redacted], not-a-secret-at-all, abc"
        );
    }
}
