//! `[provider_types]`: per-type defaults (credential locations, API bases, GCP batch settings).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::credential_location::CredentialLocation;
use super::models::ProviderType;

/// `[provider_types]`: per-type settings, chiefly default credential locations.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTypesConfig {
    /// `[provider_types.anthropic]`.
    pub anthropic: Option<ApiKeyTypeConfig>,
    /// `[provider_types.aws_bedrock]`.
    pub aws_bedrock: Option<ApiKeyTypeConfig>,
    /// `[provider_types.aws_sagemaker]`.
    pub aws_sagemaker: Option<ApiKeyTypeConfig>,
    /// `[provider_types.azure]`.
    pub azure: Option<ApiKeyTypeConfig>,
    /// `[provider_types.deepseek]`.
    pub deepseek: Option<ApiKeyTypeConfig>,
    /// `[provider_types.fireworks]`.
    pub fireworks: Option<ApiKeyTypeConfig>,
    /// `[provider_types.gcp_vertex_anthropic]`.
    pub gcp_vertex_anthropic: Option<GcpTypeConfig>,
    /// `[provider_types.gcp_vertex_gemini]`.
    pub gcp_vertex_gemini: Option<GcpTypeConfig>,
    /// `[provider_types.google_ai_studio]` (the seed's spelling; `google_ai_studio_gemini` also works).
    #[serde(alias = "google_ai_studio_gemini")]
    pub google_ai_studio: Option<ApiKeyTypeConfig>,
    /// `[provider_types.groq]`.
    pub groq: Option<ApiKeyTypeConfig>,
    /// `[provider_types.hyperbolic]`.
    pub hyperbolic: Option<ApiKeyTypeConfig>,
    /// `[provider_types.mistral]`.
    pub mistral: Option<ApiKeyTypeConfig>,
    /// `[provider_types.openai]`.
    pub openai: Option<ApiKeyTypeConfig>,
    /// `[provider_types.openrouter]`.
    pub openrouter: Option<ApiKeyTypeConfig>,
    /// `[provider_types.sglang]`.
    pub sglang: Option<ApiKeyTypeConfig>,
    /// `[provider_types.tgi]`.
    pub tgi: Option<ApiKeyTypeConfig>,
    /// `[provider_types.together]`.
    pub together: Option<ApiKeyTypeConfig>,
    /// `[provider_types.vllm]`.
    pub vllm: Option<ApiKeyTypeConfig>,
    /// `[provider_types.xai]`.
    pub xai: Option<ApiKeyTypeConfig>,
}

impl ProviderTypesConfig {
    /// The `[provider_types.T.defaults]` location for a type, if the config sets one.
    pub fn default_location(&self, t: ProviderType) -> Option<&CredentialLocation> {
        fn api_key(c: &Option<ApiKeyTypeConfig>) -> Option<&CredentialLocation> {
            c.as_ref()
                .and_then(|c| c.defaults.api_key_location.as_ref())
        }
        fn gcp(c: &Option<GcpTypeConfig>) -> Option<&CredentialLocation> {
            c.as_ref()
                .and_then(|c| c.defaults.credential_location.as_ref())
        }
        match t {
            ProviderType::Anthropic => api_key(&self.anthropic),
            ProviderType::AwsBedrock => api_key(&self.aws_bedrock),
            ProviderType::AwsSagemaker => api_key(&self.aws_sagemaker),
            ProviderType::Azure => api_key(&self.azure),
            ProviderType::Deepseek => api_key(&self.deepseek),
            ProviderType::Fireworks => api_key(&self.fireworks),
            ProviderType::GcpVertexAnthropic => gcp(&self.gcp_vertex_anthropic),
            ProviderType::GcpVertexGemini => gcp(&self.gcp_vertex_gemini),
            ProviderType::GoogleAiStudioGemini => api_key(&self.google_ai_studio),
            ProviderType::Groq => api_key(&self.groq),
            ProviderType::Hyperbolic => api_key(&self.hyperbolic),
            ProviderType::Mistral => api_key(&self.mistral),
            ProviderType::Openai => api_key(&self.openai),
            ProviderType::Openrouter => api_key(&self.openrouter),
            ProviderType::Sglang => api_key(&self.sglang),
            ProviderType::Tgi => api_key(&self.tgi),
            ProviderType::Together => api_key(&self.together),
            ProviderType::Vllm => api_key(&self.vllm),
            ProviderType::Xai => api_key(&self.xai),
        }
    }

    /// The `[provider_types.T.defaults] api_base` for a type, if the config sets one.
    pub fn default_api_base(&self, t: ProviderType) -> Option<&str> {
        self.api_key_type(t)
            .and_then(|c| c.defaults.api_base.as_deref())
    }

    /// The settings of a key-based type (`None` for the Vertex types and unset ones).
    pub fn api_key_type(&self, t: ProviderType) -> Option<&ApiKeyTypeConfig> {
        match t {
            ProviderType::Anthropic => self.anthropic.as_ref(),
            ProviderType::AwsBedrock => self.aws_bedrock.as_ref(),
            ProviderType::AwsSagemaker => self.aws_sagemaker.as_ref(),
            ProviderType::Azure => self.azure.as_ref(),
            ProviderType::Deepseek => self.deepseek.as_ref(),
            ProviderType::Fireworks => self.fireworks.as_ref(),
            ProviderType::GcpVertexAnthropic | ProviderType::GcpVertexGemini => None,
            ProviderType::GoogleAiStudioGemini => self.google_ai_studio.as_ref(),
            ProviderType::Groq => self.groq.as_ref(),
            ProviderType::Hyperbolic => self.hyperbolic.as_ref(),
            ProviderType::Mistral => self.mistral.as_ref(),
            ProviderType::Openai => self.openai.as_ref(),
            ProviderType::Openrouter => self.openrouter.as_ref(),
            ProviderType::Sglang => self.sglang.as_ref(),
            ProviderType::Tgi => self.tgi.as_ref(),
            ProviderType::Together => self.together.as_ref(),
            ProviderType::Vllm => self.vllm.as_ref(),
            ProviderType::Xai => self.xai.as_ref(),
        }
    }

    /// The location a provider of type `t` uses when it sets none itself.
    pub fn effective_default(&self, t: ProviderType) -> CredentialLocation {
        self.default_location(t)
            .cloned()
            .unwrap_or_else(|| t.default_credential_location())
    }
}

/// `[provider_types.T]` for key-based types.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ApiKeyTypeConfig {
    /// `[provider_types.T.defaults]`.
    #[serde(default)]
    pub defaults: ApiKeyDefaults,
    /// Fine-tuning job settings (`fireworks`, `together`; loaded, not used by the gateway).
    pub sft: Option<BTreeMap<String, toml::Value>>,
}

/// `[provider_types.T.defaults]` for key-based types.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ApiKeyDefaults {
    /// The default key location for every provider of this type, shorthands included.
    pub api_key_location: Option<CredentialLocation>,
    /// The base URL for every provider of this type that sets none, shorthands included (a
    /// switchyard extension: route `openai::...` through an egress proxy or a private
    /// deployment, or to a mock in tests and examples).
    pub api_base: Option<String>,
}

/// `[provider_types.gcp_vertex_*]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpTypeConfig {
    /// `[provider_types.gcp_vertex_*.defaults]`.
    #[serde(default)]
    pub defaults: GcpDefaults,
    /// Batch inference through Cloud Storage (Gemini only).
    pub batch: Option<GcpBatchConfig>,
    /// Fine-tuning job settings (Gemini only; loaded, not used by the gateway).
    pub sft: Option<GcpSftConfig>,
}

/// `[provider_types.gcp_vertex_gemini.sft]`: where Vertex fine-tuning jobs run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpSftConfig {
    /// The project.
    pub project_id: String,
    /// The region.
    pub region: String,
    /// The bucket for training data.
    pub bucket_name: String,
    /// A path prefix in the bucket.
    pub bucket_path_prefix: Option<String>,
    /// The service account jobs run as.
    pub service_account: Option<String>,
    /// The KMS key for encryption.
    pub kms_key_name: Option<String>,
}

/// `[provider_types.gcp_vertex_*.defaults]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpDefaults {
    /// The default credentials location.
    pub credential_location: Option<CredentialLocation>,
}

/// `[provider_types.gcp_vertex_gemini.batch]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpBatchConfig {
    /// `none` or `cloud_storage`.
    #[serde(default)]
    pub storage_type: GcpBatchStorage,
    /// Where batch inputs are written.
    pub input_uri_prefix: Option<String>,
    /// Where batch outputs are read.
    pub output_uri_prefix: Option<String>,
}

/// How Vertex batch jobs exchange files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GcpBatchStorage {
    /// No batch inference.
    #[default]
    None,
    /// Google Cloud Storage.
    CloudStorage,
}
