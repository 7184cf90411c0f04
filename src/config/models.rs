//! `[models]`, their providers, and `[embedding_models]`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use super::common::{CostEntry, ExtraBodyEntry, ExtraHeaderEntry, TimeoutsConfig};
use super::credential_location::CredentialLocation;

/// `[models.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Provider names, tried in order until one succeeds.
    pub routing: Vec<String>,
    /// The providers, by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Limits for one call of this model (all its providers).
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Call the providers from this gateway even when a relay is configured.
    #[serde(default)]
    pub skip_relay: bool,
    /// Reachable only by requests with this `namespace` (per-tenant fine-tunes, credentials).
    pub namespace: Option<String>,
    /// Start the next provider in `routing` too when the current one has not answered (or sent
    /// a stream's first chunk) after this many milliseconds (a switchyard extension).
    pub hedge_after_ms: Option<u64>,
    /// The most extra providers a call hedges with (default 1).
    pub max_hedges: Option<u32>,
}

/// Every provider type the configuration format knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    /// Anthropic Messages API.
    Anthropic,
    /// AWS Bedrock Converse.
    AwsBedrock,
    /// AWS SageMaker endpoints.
    AwsSagemaker,
    /// Azure OpenAI.
    Azure,
    /// DeepSeek.
    Deepseek,
    /// Fireworks.
    Fireworks,
    /// Anthropic models on GCP Vertex.
    GcpVertexAnthropic,
    /// Gemini models on GCP Vertex.
    GcpVertexGemini,
    /// Gemini through Google AI Studio.
    GoogleAiStudioGemini,
    /// Groq.
    Groq,
    /// Hyperbolic.
    Hyperbolic,
    /// Mistral.
    Mistral,
    /// OpenAI.
    Openai,
    /// OpenRouter.
    Openrouter,
    /// SGLang servers.
    Sglang,
    /// Text Generation Inference servers.
    Tgi,
    /// Together.
    Together,
    /// vLLM servers.
    Vllm,
    /// xAI.
    Xai,
}

impl ProviderType {
    /// Every type, for reserved-prefix checks and error messages.
    pub const ALL: [ProviderType; 19] = [
        Self::Anthropic,
        Self::AwsBedrock,
        Self::AwsSagemaker,
        Self::Azure,
        Self::Deepseek,
        Self::Fireworks,
        Self::GcpVertexAnthropic,
        Self::GcpVertexGemini,
        Self::GoogleAiStudioGemini,
        Self::Groq,
        Self::Hyperbolic,
        Self::Mistral,
        Self::Openai,
        Self::Openrouter,
        Self::Sglang,
        Self::Tgi,
        Self::Together,
        Self::Vllm,
        Self::Xai,
    ];

    /// The types that have a `type::model` shorthand.
    pub const SHORTHAND: [ProviderType; 13] = [
        Self::Anthropic,
        Self::Deepseek,
        Self::Fireworks,
        Self::GoogleAiStudioGemini,
        Self::GcpVertexGemini,
        Self::GcpVertexAnthropic,
        Self::Hyperbolic,
        Self::Groq,
        Self::Mistral,
        Self::Openai,
        Self::Openrouter,
        Self::Together,
        Self::Xai,
    ];

    /// The name used in config files and shorthands.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::AwsBedrock => "aws_bedrock",
            Self::AwsSagemaker => "aws_sagemaker",
            Self::Azure => "azure",
            Self::Deepseek => "deepseek",
            Self::Fireworks => "fireworks",
            Self::GcpVertexAnthropic => "gcp_vertex_anthropic",
            Self::GcpVertexGemini => "gcp_vertex_gemini",
            Self::GoogleAiStudioGemini => "google_ai_studio_gemini",
            Self::Groq => "groq",
            Self::Hyperbolic => "hyperbolic",
            Self::Mistral => "mistral",
            Self::Openai => "openai",
            Self::Openrouter => "openrouter",
            Self::Sglang => "sglang",
            Self::Tgi => "tgi",
            Self::Together => "together",
            Self::Vllm => "vllm",
            Self::Xai => "xai",
        }
    }

    /// Whether `[provider_types.T.defaults] api_base` applies: the types whose providers may
    /// leave `api_base` out (a hosted default URL).
    pub fn takes_default_api_base(self) -> bool {
        matches!(
            self,
            Self::Anthropic
                | Self::Deepseek
                | Self::Fireworks
                | Self::GoogleAiStudioGemini
                | Self::Groq
                | Self::Hyperbolic
                | Self::Mistral
                | Self::Openai
                | Self::Openrouter
                | Self::Together
                | Self::Vllm
                | Self::Xai
        )
    }

    /// The type named by a shorthand prefix (`openai` in `openai::gpt-4o`).
    pub fn from_shorthand(prefix: &str) -> Option<Self> {
        Self::SHORTHAND.into_iter().find(|t| t.as_str() == prefix)
    }

    /// The credential location used when neither the provider nor `[provider_types]` sets one.
    pub fn default_credential_location(self) -> CredentialLocation {
        let env = |v: &str| CredentialLocation::Env(v.to_owned());
        match self {
            Self::Anthropic => env("ANTHROPIC_API_KEY"),
            // The seed documents AZURE_OPENAI_API_KEY; newer TensorZero releases read
            // AZURE_API_KEY first. Accept either so both kinds of deployment work unchanged.
            Self::Azure => CredentialLocation::WithFallback {
                default: Box::new(env("AZURE_API_KEY")),
                fallback: Box::new(env("AZURE_OPENAI_API_KEY")),
            },
            Self::Deepseek => env("DEEPSEEK_API_KEY"),
            Self::Fireworks => env("FIREWORKS_API_KEY"),
            Self::GoogleAiStudioGemini => env("GOOGLE_AI_STUDIO_API_KEY"),
            Self::Groq => env("GROQ_API_KEY"),
            Self::Hyperbolic => env("HYPERBOLIC_API_KEY"),
            Self::Mistral => env("MISTRAL_API_KEY"),
            Self::Openai => env("OPENAI_API_KEY"),
            Self::Openrouter => env("OPENROUTER_API_KEY"),
            Self::Together => env("TOGETHER_API_KEY"),
            Self::Xai => env("XAI_API_KEY"),
            // Self-hosted servers usually run without a key: TensorZero 2026 reads one from
            // the environment when it is there, and sends none otherwise.
            Self::Sglang => CredentialLocation::WithFallback {
                default: Box::new(env("SGLANG_API_KEY")),
                fallback: Box::new(CredentialLocation::None),
            },
            Self::Tgi => CredentialLocation::WithFallback {
                default: Box::new(env("TGI_API_KEY")),
                fallback: Box::new(CredentialLocation::None),
            },
            Self::Vllm => env("VLLM_API_KEY"),
            Self::GcpVertexAnthropic | Self::GcpVertexGemini => {
                CredentialLocation::PathFromEnv("GCP_VERTEX_CREDENTIALS_PATH".to_owned())
            }
            Self::AwsBedrock | Self::AwsSagemaker => CredentialLocation::Sdk,
        }
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[models.M.providers.P]`: the fields every type has, plus the type's own.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The type-specific fields.
    pub kind: ProviderKind,
    /// Edits to the request body sent to this provider.
    pub extra_body: Vec<ExtraBodyEntry>,
    /// Edits to the request headers sent to this provider.
    pub extra_headers: Vec<ExtraHeaderEntry>,
    /// Limits for one attempt at this provider.
    pub timeouts: TimeoutsConfig,
    /// How a call's cost is read from the answer (loaded and checked; not computed yet).
    pub cost: Vec<CostEntry>,
    /// The same for batch inference (a single `pointer` per entry).
    pub batch_cost: Vec<CostEntry>,
    /// Drop stream chunks of an unknown kind instead of passing them on. switchyard drops them
    /// either way; read so that configurations setting it load.
    pub discard_unknown_chunks: bool,
    /// Deprecated in TensorZero (`anthropic` only): read to warn, ignored.
    pub beta_structured_outputs: Option<bool>,
    /// Deprecated in TensorZero (`fireworks`, `together`; `<think>` blocks are always parsed):
    /// read to warn, ignored.
    pub parse_think_blocks: Option<bool>,
    /// This provider's circuit breaker (over `[gateway.circuit_breaker]`).
    pub circuit_breaker: Option<super::common::CircuitBreakerConfig>,
}

/// Keys every provider table may hold besides its type's own.
const COMMON_PROVIDER_KEYS: [&str; 9] = [
    "extra_body",
    "extra_headers",
    "timeouts",
    "cost",
    "batch_cost",
    "discard_unknown_chunks",
    "beta_structured_outputs",
    "parse_think_blocks",
    "circuit_breaker",
];

impl<'de> Deserialize<'de> for ProviderConfig {
    /// The shared keys are taken out first, and the rest goes to the type's own struct, which
    /// rejects unknown keys (serde cannot combine `flatten` with `deny_unknown_fields`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        fn take<T: serde::de::DeserializeOwned + Default, E: de::Error>(
            table: &mut serde_json::Map<String, Value>,
            key: &str,
        ) -> Result<T, E> {
            match table.remove(key) {
                None => Ok(T::default()),
                Some(v) => {
                    serde_json::from_value(v).map_err(|e| E::custom(format!("`{key}`: {e}")))
                }
            }
        }
        let extra_body = take(&mut table, COMMON_PROVIDER_KEYS[0])?;
        let extra_headers = take(&mut table, COMMON_PROVIDER_KEYS[1])?;
        let timeouts = take(&mut table, COMMON_PROVIDER_KEYS[2])?;
        let cost = take(&mut table, COMMON_PROVIDER_KEYS[3])?;
        let batch_cost = take(&mut table, COMMON_PROVIDER_KEYS[4])?;
        let discard_unknown_chunks = take(&mut table, COMMON_PROVIDER_KEYS[5])?;
        let beta_structured_outputs = take(&mut table, COMMON_PROVIDER_KEYS[6])?;
        let parse_think_blocks = take(&mut table, COMMON_PROVIDER_KEYS[7])?;
        let circuit_breaker = take(&mut table, COMMON_PROVIDER_KEYS[8])?;
        let kind = ProviderKind::deserialize(Value::Object(table)).map_err(|e| {
            let msg = e.to_string();
            // Name the shared keys too, so the list of accepted keys is complete.
            if msg.starts_with("unknown field") {
                de::Error::custom(format!(
                    "{msg} (or one of the keys every provider takes: `extra_body`, `extra_headers`, `timeouts`, `cost`, `batch_cost`, `circuit_breaker`)"
                ))
            } else {
                de::Error::custom(msg)
            }
        })?;
        Ok(Self {
            kind,
            extra_body,
            extra_headers,
            timeouts,
            cost,
            batch_cost,
            discard_unknown_chunks,
            beta_structured_outputs,
            parse_think_blocks,
            circuit_breaker,
        })
    }
}

/// The type-specific part of a provider, chosen by its `type` key.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderKind {
    /// `type = "anthropic"`.
    Anthropic(HostedProvider),
    /// `type = "aws_bedrock"`.
    AwsBedrock(AwsBedrockProvider),
    /// `type = "aws_sagemaker"`.
    AwsSagemaker(AwsSagemakerProvider),
    /// `type = "azure"`.
    Azure(AzureProvider),
    /// `type = "deepseek"`.
    Deepseek(HostedProvider),
    /// `type = "fireworks"`.
    Fireworks(HostedProvider),
    /// `type = "gcp_vertex_anthropic"`.
    GcpVertexAnthropic(GcpVertexProvider),
    /// `type = "gcp_vertex_gemini"`.
    GcpVertexGemini(GcpVertexProvider),
    /// `type = "google_ai_studio_gemini"`.
    GoogleAiStudioGemini(HostedProvider),
    /// `type = "groq"`.
    Groq(HostedProvider),
    /// `type = "hyperbolic"`.
    Hyperbolic(HostedProvider),
    /// `type = "mistral"`.
    Mistral(HostedProvider),
    /// `type = "openai"`.
    Openai(OpenAiProvider),
    /// `type = "openrouter"`.
    Openrouter(HostedProvider),
    /// `type = "sglang"`.
    Sglang(SelfHostedProvider),
    /// `type = "tgi"`.
    Tgi(TgiProvider),
    /// `type = "together"`.
    Together(HostedProvider),
    /// `type = "vllm"`.
    Vllm(VllmProvider),
    /// `type = "xai"`.
    Xai(HostedProvider),
}

impl ProviderKind {
    /// The `type` of this provider.
    pub fn provider_type(&self) -> ProviderType {
        match self {
            Self::Anthropic(_) => ProviderType::Anthropic,
            Self::AwsBedrock(_) => ProviderType::AwsBedrock,
            Self::AwsSagemaker(_) => ProviderType::AwsSagemaker,
            Self::Azure(_) => ProviderType::Azure,
            Self::Deepseek(_) => ProviderType::Deepseek,
            Self::Fireworks(_) => ProviderType::Fireworks,
            Self::GcpVertexAnthropic(_) => ProviderType::GcpVertexAnthropic,
            Self::GcpVertexGemini(_) => ProviderType::GcpVertexGemini,
            Self::GoogleAiStudioGemini(_) => ProviderType::GoogleAiStudioGemini,
            Self::Groq(_) => ProviderType::Groq,
            Self::Hyperbolic(_) => ProviderType::Hyperbolic,
            Self::Mistral(_) => ProviderType::Mistral,
            Self::Openai(_) => ProviderType::Openai,
            Self::Openrouter(_) => ProviderType::Openrouter,
            Self::Sglang(_) => ProviderType::Sglang,
            Self::Tgi(_) => ProviderType::Tgi,
            Self::Together(_) => ProviderType::Together,
            Self::Vllm(_) => ProviderType::Vllm,
            Self::Xai(_) => ProviderType::Xai,
        }
    }

    /// The fields of the hosted types that share [`HostedProvider`].
    pub fn hosted(&self) -> Option<&HostedProvider> {
        match self {
            Self::Anthropic(p)
            | Self::Deepseek(p)
            | Self::Fireworks(p)
            | Self::GoogleAiStudioGemini(p)
            | Self::Groq(p)
            | Self::Hyperbolic(p)
            | Self::Mistral(p)
            | Self::Openrouter(p)
            | Self::Together(p)
            | Self::Xai(p) => Some(p),
            _ => None,
        }
    }

    /// The explicitly configured key location, if any (`credential_location` for GCP types).
    pub fn credential_location(&self) -> Option<&CredentialLocation> {
        if let Some(hosted) = self.hosted() {
            return hosted.api_key_location.as_ref();
        }
        match self {
            Self::Azure(p) => p.api_key_location.as_ref(),
            Self::Openai(p) => p.api_key_location.as_ref(),
            Self::Sglang(p) => p.api_key_location.as_ref(),
            Self::Tgi(p) => p.api_key_location.as_ref(),
            Self::Vllm(p) => p.api_key_location.as_ref(),
            Self::GcpVertexAnthropic(p) | Self::GcpVertexGemini(p) => {
                p.credential_location.as_ref()
            }
            _ => None,
        }
    }
}

/// A hosted API addressed by model name: anthropic, deepseek, fireworks, google_ai_studio_gemini,
/// groq, hyperbolic, mistral, openrouter, together, xai.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedProvider {
    /// The provider's name for the model.
    pub model_name: String,
    /// Where the key comes from (default: the type's default).
    pub api_key_location: Option<CredentialLocation>,
    /// Overrides the provider's URL (a company proxy, a regional endpoint, a test server).
    /// Not in the TensorZero format; switchyard accepts it for every type.
    pub api_base: Option<String>,
    /// `groq` only: `parsed` returns a reasoning model's reasoning separately. Sent as is.
    pub reasoning_format: Option<String>,
    /// `mistral` only: `reasoning` turns on Magistral's reasoning output. Sent as is.
    pub prompt_mode: Option<String>,
    /// `anthropic` only: server-side tools (web search and the like), sent in `tools` as
    /// written.
    #[serde(default)]
    pub provider_tools: Vec<Value>,
}

/// `type = "openai"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiProvider {
    /// The OpenAI model name.
    pub model_name: String,
    /// Base URL (default `https://api.openai.com/v1/`).
    pub api_base: Option<String>,
    /// Where the key comes from.
    pub api_key_location: Option<CredentialLocation>,
    /// `chat_completions` (default) or `responses`.
    #[serde(default)]
    pub api_type: OpenAiApiType,
    /// Ask the Responses API for encrypted reasoning.
    #[serde(default)]
    pub include_encrypted_reasoning: bool,
    /// Built-in tools for the Responses API.
    #[serde(default)]
    pub provider_tools: Vec<Value>,
    /// How inline files of a MIME type are sent, overriding the default (images as
    /// `image_url`, anything else as `file`).
    #[serde(default)]
    pub content_type_overrides: BTreeMap<String, FileEncoding>,
}

/// The OpenAI content part an inline file becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEncoding {
    /// `{"type": "image_url", "image_url": {"url": "data:..."}}`.
    ImageUrl,
    /// `{"type": "file", "file": {"file_data": "data:..."}}`.
    File,
    /// `{"type": "input_audio", "input_audio": {"data": ..., "format": ...}}`.
    InputAudio,
}

/// Which OpenAI API a provider calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAiApiType {
    /// `/chat/completions`.
    #[default]
    ChatCompletions,
    /// `/responses`.
    Responses,
}

/// `type = "azure"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureProvider {
    /// The deployment to call.
    pub deployment_id: String,
    /// The resource's endpoint URL, or `env::VAR` / `dynamic::NAME` naming where it comes from.
    pub endpoint: String,
    /// Where the key comes from.
    pub api_key_location: Option<CredentialLocation>,
    /// The `api-version` query parameter (default `2025-04-01-preview`).
    pub api_version: Option<String>,
}

/// `type = "sglang"`: a self-hosted OpenAI-compatible server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfHostedProvider {
    /// The server's base URL.
    pub api_base: String,
    /// The model name the server expects.
    pub model_name: String,
    /// Where the key comes from (default `none`).
    pub api_key_location: Option<CredentialLocation>,
}

/// `type = "vllm"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VllmProvider {
    /// The server's base URL (default `http://localhost:8000/v1/`).
    pub api_base: Option<String>,
    /// The model name the server expects.
    pub model_name: String,
    /// Where the key comes from (default `env::VLLM_API_KEY`).
    pub api_key_location: Option<CredentialLocation>,
}

/// `type = "tgi"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TgiProvider {
    /// The server's base URL.
    pub api_base: String,
    /// Where the key comes from (default `none`).
    pub api_key_location: Option<CredentialLocation>,
    /// The model name sent (TGI serves one model; default `tgi`).
    pub model_name: Option<String>,
}

/// `type = "aws_bedrock"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsBedrockProvider {
    /// The Bedrock model id or inference profile.
    pub model_id: String,
    /// The AWS region.
    pub region: Option<String>,
    /// Take the region from the AWS SDK chain when `region` is unset.
    #[serde(default)]
    pub allow_auto_detect_region: bool,
    /// Overrides the endpoint URL.
    pub endpoint_url: Option<String>,
    /// A Bedrock API key (`env::` or `dynamic::`), sent as `Authorization: Bearer` instead of
    /// SigV4.
    pub api_key: Option<CredentialLocation>,
    /// Explicit IAM credentials: the access key id.
    pub access_key_id: Option<CredentialLocation>,
    /// The secret access key (with `access_key_id`).
    pub secret_access_key: Option<CredentialLocation>,
    /// A session token, for temporary credentials (needs the other two).
    pub session_token: Option<CredentialLocation>,
}

/// `type = "aws_sagemaker"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSagemakerProvider {
    /// The SageMaker endpoint.
    pub endpoint_name: String,
    /// The wire format the endpoint speaks.
    pub hosted_provider: SagemakerHostedProvider,
    /// The model name sent in the body.
    pub model_name: String,
    /// The AWS region.
    pub region: Option<String>,
    /// Take the region from the AWS SDK chain when `region` is unset.
    #[serde(default)]
    pub allow_auto_detect_region: bool,
    /// Overrides the endpoint URL.
    pub endpoint_url: Option<String>,
    /// Explicit IAM credentials: the access key id.
    pub access_key_id: Option<CredentialLocation>,
    /// The secret access key (with `access_key_id`).
    pub secret_access_key: Option<CredentialLocation>,
    /// A session token, for temporary credentials (needs the other two).
    pub session_token: Option<CredentialLocation>,
}

/// What a SageMaker endpoint speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagemakerHostedProvider {
    /// The OpenAI chat format (also Ollama and the like).
    Openai,
    /// Text Generation Inference.
    Tgi,
}

/// `type = "gcp_vertex_gemini"` and `type = "gcp_vertex_anthropic"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpVertexProvider {
    /// An off-the-shelf model (exactly one of `model_id`, `endpoint_id`).
    pub model_id: Option<String>,
    /// A custom or fine-tuned endpoint.
    pub endpoint_id: Option<String>,
    /// The GCP region.
    pub location: String,
    /// The GCP project.
    pub project_id: String,
    /// Where the service-account credentials come from.
    pub credential_location: Option<CredentialLocation>,
    /// Overrides the Vertex URL (switchyard addition).
    pub api_base: Option<String>,
    /// `gcp_vertex_anthropic` only: server-side tools, sent in `tools` as written.
    #[serde(default)]
    pub provider_tools: Vec<Value>,
}

/// `[embedding_models.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingModelConfig {
    /// Provider names, tried in order.
    pub routing: Vec<String>,
    /// The providers, by name.
    pub providers: BTreeMap<String, EmbeddingProviderConfig>,
    /// Limit for one call of this model.
    pub timeout_ms: Option<u64>,
}

/// `[embedding_models.M.providers.P]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingProviderConfig {
    /// `openai`, `openrouter` or `azure`.
    #[serde(rename = "type")]
    pub provider_type: EmbeddingProviderType,
    /// The provider's name for the model (`openai`, `openrouter`).
    #[serde(default)]
    pub model_name: String,
    /// The Azure deployment (`azure`).
    pub deployment_id: Option<String>,
    /// The Azure resource URL, or `env::VAR` holding it (`azure`).
    pub endpoint: Option<String>,
    /// The Azure API version (default as for chat).
    pub api_version: Option<String>,
    /// Base URL override.
    pub api_base: Option<String>,
    /// Where the key comes from.
    pub api_key_location: Option<CredentialLocation>,
    /// Edits to the request body.
    #[serde(default)]
    pub extra_body: Vec<ExtraBodyEntry>,
    /// Limit for one attempt at this provider.
    pub timeout_ms: Option<u64>,
    /// How a call's cost is read from the answer (a single `pointer` per entry; loaded and
    /// checked, not computed yet).
    #[serde(default)]
    pub cost: Vec<CostEntry>,
    /// Edits to the request headers.
    #[serde(default)]
    pub extra_headers: Vec<ExtraHeaderEntry>,
    /// `openai`: `chat_completions` or `responses`. This and the keys below are the chat
    /// providers' (TensorZero parses embedding providers with their schema): accepted, and
    /// reported as having no effect on embeddings.
    pub api_type: Option<OpenAiApiType>,
    /// `openai` with the Responses API.
    pub include_encrypted_reasoning: Option<bool>,
    /// Provider-side tools.
    pub provider_tools: Option<Vec<serde_json::Value>>,
    /// `openai`: how inline files are sent.
    pub content_type_overrides: Option<BTreeMap<String, String>>,
    /// Drop stream chunks of unknown types.
    pub discard_unknown_chunks: Option<bool>,
}

impl EmbeddingProviderConfig {
    /// The chat providers' keys that are set (they change nothing for embeddings).
    pub fn chat_only_keys(&self) -> Vec<&'static str> {
        [
            ("api_type", self.api_type.is_some()),
            (
                "include_encrypted_reasoning",
                self.include_encrypted_reasoning.is_some(),
            ),
            ("provider_tools", self.provider_tools.is_some()),
            (
                "content_type_overrides",
                self.content_type_overrides.is_some(),
            ),
            (
                "discard_unknown_chunks",
                self.discard_unknown_chunks.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// Provider types that serve embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingProviderType {
    /// OpenAI `/embeddings`.
    Openai,
    /// Azure OpenAI: `{endpoint}/openai/deployments/{deployment_id}/embeddings`.
    Azure,
    /// OpenRouter `/embeddings`.
    Openrouter,
}

/// The IAM keys of an AWS provider, whichever its type.
#[derive(Clone, Copy, Debug)]
pub struct AwsIamKeys<'a> {
    /// `access_key_id`.
    pub access_key_id: Option<&'a CredentialLocation>,
    /// `secret_access_key`.
    pub secret_access_key: Option<&'a CredentialLocation>,
    /// `session_token`.
    pub session_token: Option<&'a CredentialLocation>,
}

impl AwsIamKeys<'_> {
    /// Whether any is set.
    pub fn any(&self) -> bool {
        self.access_key_id.is_some()
            || self.secret_access_key.is_some()
            || self.session_token.is_some()
    }

    /// The ones set, with their keys.
    pub fn set(&self) -> Vec<(&'static str, &CredentialLocation)> {
        [
            ("access_key_id", self.access_key_id),
            ("secret_access_key", self.secret_access_key),
            ("session_token", self.session_token),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

impl AwsBedrockProvider {
    /// Its IAM keys.
    pub fn iam(&self) -> AwsIamKeys<'_> {
        AwsIamKeys {
            access_key_id: self.access_key_id.as_ref(),
            secret_access_key: self.secret_access_key.as_ref(),
            session_token: self.session_token.as_ref(),
        }
    }
}

impl AwsSagemakerProvider {
    /// Its IAM keys.
    pub fn iam(&self) -> AwsIamKeys<'_> {
        AwsIamKeys {
            access_key_id: self.access_key_id.as_ref(),
            secret_access_key: self.secret_access_key.as_ref(),
            session_token: self.session_token.as_ref(),
        }
    }
}
