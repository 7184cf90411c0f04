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
pub mod tap;
pub mod url;

mod edits;
mod http;
mod stream;
mod stream_status;

pub use edits::{Edits, apply_body_edit, apply_header_edits};
pub use http::{bearer, send, sensitive_header};
pub use stream::{ChunkSource, SseReader, peek_stream};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use switchyard_layers::call::Call;
use switchyard_layers::credentials::{CredentialSource, KeyOrigin};
use switchyard_layers::ext::{DynamicCredentials, ProviderKey};
use switchyard_layers::timeout::Timeouts;
use switchyard_layers::trace_context::TraceContext;

use crate::config::{ProviderConfig, ProviderType, ProviderTypesConfig};
use crate::error::{Error, Fault};
use crate::key_sources;
use crate::model_call::{
    BodyEdit, HeaderEdit, ModelChunk, ModelOutput, ModelRequest, ProviderOutput, Raw, RawResponse,
    RawUsage, RawWanted,
};
use crate::upstream::{Carried, Upstream, read_answer};
use futures_util::StreamExt;
use switchyard_layers::metrics::{Counter, MoneyCounter};

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
    /// Its prices (`cost`), when configured.
    pub cost: Option<Arc<crate::cost::CostTable>>,
    /// Its circuit breaker, when on.
    pub breaker: Option<switchyard_layers::guard::BreakerSettings>,
    adapter: Adapter,
    extra_body: Vec<BodyEdit>,
    extra_headers: Vec<HeaderEdit>,
}

#[derive(Debug)]
enum Adapter {
    OpenAi(openai::OpenAiAdapter),
    OpenAiResponses(openai::responses::ResponsesAdapter),
    Anthropic(anthropic::AnthropicAdapter),
    Gemini(gemini::GeminiAdapter),
    Bedrock(bedrock::BedrockAdapter),
    Sagemaker(sagemaker::SagemakerAdapter),
    /// A type whose adapter is not written yet: calls fail with a clear 501.
    NotYetSupported(String),
}

/// The region and the credentials of an AWS provider, warning at start-up when a provider that
/// will be called has no credentials.
///
/// `region` is a literal (`us-east-1`), `sdk` (from `AWS_REGION` or `AWS_DEFAULT_REGION`, as
/// the deprecated `allow_auto_detect_region = true` also asks), or a location: `env::VAR`, or
/// `path::FILE` / `path_from_env::VAR` naming a file that holds it. It is required (checked
/// when the configuration loads).
fn aws_setup(
    model: &str,
    name: &str,
    region: Option<&str>,
    allow_auto_detect_region: bool,
    auth: bedrock::AwsAuth,
    check_credentials: bool,
) -> Result<(String, bedrock::AwsAuth), String> {
    if auth.missing() && check_credentials {
        tracing::warn!(
            "provider `{name}` of model `{model}` has no AWS credentials: set AWS_ACCESS_KEY_ID \
             and AWS_SECRET_ACCESS_KEY (or configure its keys), or its calls will fail"
        );
    }
    let from_sdk = || {
        std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .map_err(|_| {
                "`region = \"sdk\"` takes the region from AWS_REGION or AWS_DEFAULT_REGION, and neither is set".to_owned()
            })
    };
    let read_file = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("cannot read the region file `{}`: {e}", path.display()))
    };
    let resolved = match region {
        Some("sdk") => from_sdk()?,
        Some(location) if location.starts_with("env::") => {
            let var = &location["env::".len()..];
            std::env::var(var).map_err(|_| {
                format!("`region = \"{location}\"`: environment variable `{var}` is missing")
            })?
        }
        Some(location) if location.starts_with("path_from_env::") => {
            let var = &location["path_from_env::".len()..];
            let path = std::env::var(var).map_err(|_| {
                format!("`region = \"{location}\"`: environment variable `{var}` is missing")
            })?;
            read_file(std::path::Path::new(&path))?
        }
        Some(location) if location.starts_with("path::") => {
            read_file(std::path::Path::new(&location["path::".len()..]))?
        }
        Some(location) if location.starts_with("dynamic::") => {
            return Err(format!(
                "`region = \"{location}\"`: a region per request is not supported by switchyard; write the region, `sdk` or `env::VAR`"
            ));
        }
        Some(literal) => literal.to_owned(),
        None if allow_auto_detect_region => from_sdk()?,
        None => {
            return Err(
                "`region` is required: write the region, or `sdk` to take it from AWS_REGION"
                    .into(),
            );
        }
    };
    // The region becomes part of the host name the signed request goes to.
    if !url::is_region(&resolved) {
        return Err(format!(
            "the region `{resolved}` is not a region such as `us-east-1`"
        ));
    }
    Ok((resolved, auth))
}

/// An AWS `endpoint_url`: a literal URL, or a location holding it (`env::VAR`, `path::FILE`,
/// `path_from_env::VAR`); `none` and `sdk` leave the AWS default.
fn aws_endpoint_url(value: Option<&str>) -> Result<Option<String>, String> {
    let read_file = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                format!(
                    "cannot read the `endpoint_url` file `{}`: {e}",
                    path.display()
                )
            })
    };
    let env = |var: &str| {
        std::env::var(var)
            .map_err(|_| format!("`endpoint_url`: environment variable `{var}` is missing"))
    };
    let url = match value {
        None | Some("none") | Some("sdk") => return Ok(None),
        Some(v) if v.starts_with("env::") => env(&v["env::".len()..])?,
        Some(v) if v.starts_with("path_from_env::") => {
            read_file(std::path::Path::new(&env(&v["path_from_env::".len()..])?))?
        }
        Some(v) if v.starts_with("path::") => {
            read_file(std::path::Path::new(&v["path::".len()..]))?
        }
        Some(v) if v.starts_with("dynamic::") => {
            return Err(format!(
                "`endpoint_url = \"{v}\"`: an endpoint per request is not supported by switchyard; write the URL or `env::VAR`"
            ));
        }
        Some(literal) => literal.to_owned(),
    };
    url::BaseUrl::parse(&url)
        .map_err(|why| format!("`endpoint_url`: {why}"))
        .map(|_| Some(url))
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
            (crate::config::ProviderKind::Openai(p), None) => {
                Adapter::OpenAiResponses(openai::responses::ResponsesAdapter::new(
                    &p.model_name,
                    p.api_base
                        .as_deref()
                        .or(types.default_api_base(provider_type))
                        .or(openai::default_api_base(provider_type))
                        .unwrap_or("https://api.openai.com/v1/"),
                    p.include_encrypted_reasoning,
                    p.provider_tools.clone(),
                ))
            }
            (crate::config::ProviderKind::Anthropic(p), None) => Adapter::Anthropic(
                anthropic::AnthropicAdapter::new(
                    &p.model_name,
                    p.api_base
                        .as_deref()
                        .or(types.default_api_base(provider_type)),
                )
                .with_provider_tools(&p.provider_tools),
            ),
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
                let auth = bedrock::AwsAuth::from_config(
                    p.api_key.as_ref(),
                    p.iam(),
                    true,
                    check_credentials,
                )
                .map_err(setup_error)?;
                let (region, auth) = aws_setup(
                    model,
                    name,
                    p.region.as_deref(),
                    p.allow_auto_detect_region,
                    auth,
                    check_credentials,
                )
                .map_err(setup_error)?;
                let endpoint = aws_endpoint_url(p.endpoint_url.as_deref()).map_err(setup_error)?;
                Adapter::Bedrock(bedrock::BedrockAdapter::new(p, endpoint, region, auth))
            }
            (crate::config::ProviderKind::AwsSagemaker(p), None) => {
                let auth = bedrock::AwsAuth::from_config(None, p.iam(), false, check_credentials)
                    .map_err(setup_error)?;
                let (region, auth) = aws_setup(
                    model,
                    name,
                    p.region.as_deref(),
                    p.allow_auto_detect_region,
                    auth,
                    check_credentials,
                )
                .map_err(setup_error)?;
                let endpoint = aws_endpoint_url(p.endpoint_url.as_deref()).map_err(setup_error)?;
                Adapter::Sagemaker(sagemaker::SagemakerAdapter::new(p, endpoint, region, auth))
            }
            (_, None) => Adapter::NotYetSupported(format!("the `{provider_type}` provider type")),
        };
        let missing_key = |e: String| {
            ProviderSetupError(format!(
                "API key missing for provider `{name}` (type `{provider_type}`) of model \
                 `{model}`: {e}. Set it, or point `api_key_location` at where the key is \
                 (`none` if the server needs no key)"
            ))
        };
        let credential = match adapter {
            // No key is needed for a provider that cannot be called yet, nor checked for one
            // whose calls go to the relay.
            Adapter::NotYetSupported(_) => key_sources::load_lazily(&location),
            // Bedrock signs with the AWS credentials its adapter holds, not with a key.
            Adapter::Bedrock(_) | Adapter::Sagemaker(_) => CredentialSource::None,
            Adapter::OpenAi(_)
            | Adapter::OpenAiResponses(_)
            | Adapter::Anthropic(_)
            | Adapter::Gemini(_)
                if !check_credentials =>
            {
                key_sources::load_lazily(&location)
            }
            Adapter::OpenAi(_)
            | Adapter::OpenAiResponses(_)
            | Adapter::Anthropic(_)
            | Adapter::Gemini(_) => key_sources::load(&location).map_err(missing_key)?,
        };
        Ok(Self {
            name: name.into(),
            model_name: model.into(),
            provider_type,
            credential,
            timeouts: Timeouts::from(&config.timeouts),
            cost: crate::cost::CostTable::new(&config.cost),
            // Set by the model table, which knows `[gateway.circuit_breaker]`.
            breaker: None,
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
            None if provider_type == ProviderType::Openai => {
                let model = model.strip_prefix("responses::").unwrap_or(model);
                if model.is_empty() {
                    return Err(bad_target(
                        "`openai::responses::` needs a model name after it".into(),
                    ));
                }
                Adapter::OpenAiResponses(openai::responses::ResponsesAdapter::new(
                    model,
                    base.or(openai::default_api_base(provider_type))
                        .unwrap_or("https://api.openai.com/v1/"),
                    false,
                    Vec::new(),
                ))
            }
            None => Adapter::NotYetSupported(format!("the `{provider_type}` provider type")),
        };
        Ok(Self {
            name: provider_type.as_str().into(),
            model_name: full_name.into(),
            provider_type,
            credential: key_sources::load_lazily(&types.effective_default(provider_type)),
            timeouts: Timeouts::default(),
            // Shorthand models have no prices, as in the TensorZero Gateway.
            cost: None,
            breaker: None,
            adapter,
            extra_body: Vec::new(),
            extra_headers: Vec::new(),
        })
    }

    /// A failure of this provider that is not an HTTP error status: unreachable, a broken or
    /// unreadable answer (a bare message is an unreadable answer; a [`Fault`] keeps its kind).
    pub fn failure(&self, fault: impl Into<Fault>) -> Error {
        Error::provider_failure(self.provider_type.as_str(), &self.name, fault)
    }

    /// The label credential errors use: "`openai` of model `gpt`".
    pub fn label(&self) -> String {
        format!("`{}` of model `{}`", self.name, self.model_name)
    }
}

/// The provider adapter as a service: translates the call to the provider's wire format, sends
/// it with the key the credentials layer put in [`ProviderKey`] through the upstream leaf, and
/// translates the answer back.
#[derive(Clone, Debug)]
pub struct ProviderService {
    spec: Arc<ProviderSpec>,
    upstream: Upstream,
    costs: Option<Arc<MoneyCounter>>,
    tokens: Option<TokenCounters>,
}

/// Where one provider's reported tokens are counted (by model and provider, unlike the
/// TensorZero Gateway's label-less totals).
#[derive(Clone, Debug)]
pub struct TokenCounters {
    /// Input tokens.
    pub input: Arc<Counter>,
    /// Output tokens.
    pub output: Arc<Counter>,
}

impl TokenCounters {
    fn add(&self, usage: crate::model_call::Usage) {
        if let Some(n) = usage.input_tokens {
            self.input.add(u64::from(n));
        }
        if let Some(n) = usage.output_tokens {
            self.output.add(u64::from(n));
        }
    }

    /// Counts an answer's tokens: a whole answer's now, a stream's when it ends (what it
    /// reported so far, if the client leaves).
    fn count(&self, output: ProviderOutput) -> ProviderOutput {
        match output {
            ProviderOutput::Complete(response) => {
                self.add(response.usage);
                ProviderOutput::Complete(response)
            }
            ProviderOutput::Stream { first, rest } => {
                let counters = self.clone();
                let rest = crate::model_call::on_stream_end(&first, rest, move |end| {
                    counters.add(end.usage);
                });
                ProviderOutput::Stream { first, rest }
            }
        }
    }
}

impl ProviderService {
    /// The service for `spec`, sending through `upstream`.
    pub fn new(spec: Arc<ProviderSpec>, upstream: Upstream) -> Self {
        Self {
            spec,
            upstream,
            costs: None,
            tokens: None,
        }
    }

    /// Adds the tokens each answer reports to `tokens`.
    pub fn counting_tokens(self, tokens: TokenCounters) -> Self {
        Self {
            tokens: Some(tokens),
            ..self
        }
    }

    /// Adds what each call costs (when the provider has prices) to `costs`.
    pub fn counting_cost(self, costs: Arc<MoneyCounter>) -> Self {
        Self {
            costs: Some(costs),
            ..self
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
            let wanted = call
                .extensions
                .get::<RawWanted>()
                .copied()
                .unwrap_or_default();
            let exchange = call
                .extensions
                .get::<crate::model_call::ExchangeLog>()
                .map(|log| log.attempt(&spec.name));
            let tap = (spec.cost.is_some() || wanted.any() || exchange.is_some()).then(|| {
                tap::AnswerTap::new(spec.cost.clone(), wanted, spec.adapter.usage_at(), exchange)
            });
            let cx = CallContext {
                upstream: &this.upstream,
                credentials: &dynamic,
                key_origin,
                trace: trace.as_ref(),
                tap: tap.clone(),
            };
            let output = match &spec.adapter {
                Adapter::OpenAi(a) => a.infer(spec, request, key.as_ref(), &edits, &cx).await,
                Adapter::OpenAiResponses(a) => {
                    a.infer(spec, request, key.as_ref(), &edits, &cx).await
                }
                Adapter::Anthropic(a) => a.infer(spec, request, key.as_ref(), &edits, &cx).await,
                Adapter::Gemini(a) => a.infer(spec, request, key.as_ref(), &edits, &cx).await,
                Adapter::Bedrock(a) => a.infer(spec, request, &edits, &cx).await,
                Adapter::Sagemaker(a) => a.infer(spec, request, &edits, &cx).await,
                Adapter::NotYetSupported(_) => unreachable!("refused above"),
            };
            // A provider may echo its key in what it says with a 200 too: an error event in a
            // stream, or an error object where an answer should be. (Error statuses are masked
            // where they are read, in `Upstream::exchange`.)
            let output = match (output, &key) {
                (Err(e), Some(key)) => return Err(Carried::of_secret(key).mask_error(e)),
                (Err(e), None) => return Err(e),
                (Ok(ProviderOutput::Stream { first, rest }), Some(key)) => {
                    let key = key.clone();
                    ProviderOutput::Stream {
                        first,
                        rest: Box::pin(rest.map(move |item| {
                            item.map_err(|e| Carried::of_secret(&key).mask_error(e))
                        })),
                    }
                }
                (Ok(output), _) => output,
            };
            let output = if implicit_tool.is_some() {
                implicit_tool::unwrap(output)
            } else {
                output
            };
            let output = match tap {
                Some(tap) => observed(output, tap, this.costs.clone(), spec),
                None => output,
            };
            let output = match &this.tokens {
                Some(tokens) => tokens.count(output),
                None => output,
            };
            Ok(ModelOutput {
                provider: spec.name.clone(),
                output,
            })
        })
    }
}

/// Writes what the tap read from the raw answer into the call's output: the cost into its
/// usage (a whole answer's, or in a stream every usage report's, and one more report at the
/// end if the cost changed after the last one), and the raw records the client asked for.
/// Counts the cost in `costs` once the answer is complete.
fn observed(
    output: ProviderOutput,
    tap: Arc<tap::AnswerTap>,
    costs: Option<Arc<MoneyCounter>>,
    spec: &ProviderSpec,
) -> ProviderOutput {
    let count = move |cost: Option<crate::cost::Dollars>| {
        if let (Some(costs), Some(cost)) = (&costs, cost) {
            costs.add_nanodollars(u64::try_from(cost.nanodollars_ceil()).unwrap_or(0));
        }
    };
    let identity = RawIdentity {
        model_inference_id: uuid::Uuid::now_v7(),
        provider_type: spec.provider_type.as_str(),
        api_type: spec.adapter.api_type(),
    };
    match output {
        ProviderOutput::Complete(mut response) => {
            response.usage.cost = tap.cost();
            count(response.usage.cost);
            let wanted = tap.wanted();
            if wanted.any() {
                let mut raw = Raw::default();
                if let Some(data) = tap.usage() {
                    raw.usage.push(identity.usage(data));
                }
                if let Some(text) = tap.text().filter(|_| wanted.response) {
                    raw.responses.push(identity.response(text));
                }
                response.raw = Some(Box::new(raw));
            }
            ProviderOutput::Complete(response)
        }
        ProviderOutput::Stream { mut first, rest } => {
            /// The running usage, and the cost last written into it.
            struct Observed {
                rest: crate::model_call::ChunkStream,
                tap: Arc<tap::AnswerTap>,
                identity: RawIdentity,
                running: crate::model_call::Usage,
                ended: bool,
            }
            impl Observed {
                fn see(&mut self, chunk: &mut ModelChunk) {
                    if let Some(usage) = &mut chunk.usage {
                        usage.cost = self.tap.cost();
                        self.running.merge(*usage);
                        self.running.cost = usage.cost;
                    }
                    let events = self.tap.take_events();
                    let usage = chunk.usage.and_then(|_| self.tap.usage());
                    if events.is_some() || usage.is_some() {
                        let raw = chunk.raw.get_or_insert_with(Default::default);
                        raw.chunk = events;
                        if let Some(data) = usage {
                            raw.usage = vec![self.identity.usage(data)];
                        }
                    }
                }
            }
            let mut state = Observed {
                rest,
                tap,
                identity,
                running: Default::default(),
                ended: false,
            };
            state.see(&mut first);
            let rest = futures_util::stream::unfold(state, |mut s| async move {
                if s.ended {
                    return None;
                }
                match s.rest.next().await {
                    Some(Ok(mut chunk)) => {
                        s.see(&mut chunk);
                        Some((Ok(chunk), s))
                    }
                    Some(Err(e)) => Some((Err(e), s)),
                    None => {
                        s.ended = true;
                        // The cost moved after the last usage report (a priced field in an
                        // event that carried no usage): one more report, with the totals.
                        // Raw events after the last chunk (the stream's closing events) go
                        // with it too.
                        let cost = s.tap.cost();
                        let mut chunk = ModelChunk::default();
                        if cost.is_some() && cost != s.running.cost {
                            s.running.cost = cost;
                            chunk.usage = Some(s.running);
                        }
                        s.see(&mut chunk);
                        if chunk.usage.is_none() && chunk.raw.is_none() {
                            return None;
                        }
                        Some((Ok(chunk), s))
                    }
                }
            })
            .boxed();
            let rest =
                crate::model_call::on_stream_end(&first, rest, move |end| count(end.usage.cost));
            ProviderOutput::Stream { first, rest }
        }
    }
}

/// Who a raw record is about: one provider call.
#[derive(Clone, Copy, Debug)]
struct RawIdentity {
    model_inference_id: uuid::Uuid,
    provider_type: &'static str,
    api_type: &'static str,
}

impl RawIdentity {
    fn usage(&self, data: serde_json::Value) -> RawUsage {
        RawUsage {
            model_inference_id: self.model_inference_id,
            provider_type: self.provider_type.to_owned(),
            api_type: self.api_type.to_owned(),
            data,
        }
    }

    fn response(&self, data: String) -> RawResponse {
        RawResponse {
            model_inference_id: Some(self.model_inference_id),
            provider_type: self.provider_type.to_owned(),
            api_type: self.api_type.to_owned(),
            data,
        }
    }
}

impl Adapter {
    /// Where the provider's answers (and stream events) keep their usage object.
    fn usage_at(&self) -> &'static [&'static str] {
        match self {
            // `message_start` carries `message.usage`; `message_delta` and whole answers `usage`.
            Adapter::Anthropic(_) => &["/usage", "/message/usage"],
            Adapter::Gemini(_) => &["/usageMetadata"],
            // `response.completed` carries `response.usage`.
            Adapter::OpenAiResponses(_) => &["/usage", "/response/usage"],
            Adapter::OpenAi(_)
            | Adapter::Bedrock(_)
            | Adapter::Sagemaker(_)
            | Adapter::NotYetSupported(_) => &["/usage"],
        }
    }

    /// The `api_type` of raw records: the OpenAI chat format is `chat_completions`; each
    /// provider's own API (Anthropic Messages, Gemini, Bedrock Converse) is `other`.
    fn api_type(&self) -> &'static str {
        match self {
            Adapter::OpenAi(_) | Adapter::Sagemaker(_) => "chat_completions",
            Adapter::OpenAiResponses(_) => "responses",
            _ => "other",
        }
    }
}

/// What an adapter needs besides the request.
pub struct CallContext<'a> {
    /// The outbound exchange.
    pub upstream: &'a Upstream,
    /// The request's dynamic credentials (Azure can take its endpoint from them).
    pub credentials: &'a DynamicCredentials,
    /// Where the provider's key came from: one from the request may go where the request
    /// says (a service account's own `token_uri`), one from the configuration may not.
    pub key_origin: KeyOrigin,
    /// The trace the request belongs to: each call carries it on as `traceparent`.
    pub trace: Option<&'a TraceContext>,
    /// What reads the raw answer besides the codec (its cost), when anything does.
    pub tap: Option<Arc<tap::AnswerTap>>,
}

impl CallContext<'_> {
    /// Reads a provider's whole answer (bounded, see [`read_answer`]) and shows it to the tap.
    pub async fn read_answer(
        &self,
        provider: &ProviderSpec,
        body: hyper::body::Incoming,
    ) -> Result<bytes::Bytes, Error> {
        let bytes = read_answer(body).await.map_err(|e| provider.failure(e))?;
        if let Some(tap) = &self.tap {
            tap.answer(&bytes);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
