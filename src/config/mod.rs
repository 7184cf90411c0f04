//! The `tensorzero.toml` format: typed structs for every section, the loader, and the semantic
//! checks that run before the gateway starts.
//!
//! Every table rejects unknown keys, and every error names the file, the line and the TOML path
//! (see [`load`]). Sections whose features switchyard does not implement yet still parse and
//! validate; [`Warning`]s name them so nothing is silently ignored.

pub mod common;
pub mod credential_location;
pub mod experimentation;
pub mod functions;
pub mod gateway;
pub mod load;
pub mod models;
pub mod offline;
pub mod path;
pub mod provider_types;
pub mod rate_limiting;
mod refine;
pub mod stores;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use common::{Edit, ExtraBodyEntry, ExtraHeaderEntry, TimeoutsConfig};
pub use credential_location::CredentialLocation;
pub use functions::{
    BestOfNConfig, ChatCompletionConfig, FunctionConfig, JsonMode, MetricConfig, MixtureOfNConfig,
    ToolChoiceConfig, ToolConfig, VariantConfig,
};
pub use gateway::{GatewayConfig, ObjectStorageConfig, RelayConfig};
pub use load::{ConfigError, ConfigErrors, Location, Sources, TomlPath};
pub use models::{
    EmbeddingModelConfig, EmbeddingProviderConfig, EmbeddingProviderType, ModelConfig,
    ProviderConfig, ProviderKind, ProviderType,
};
pub use provider_types::ProviderTypesConfig;
pub use rate_limiting::RateLimitingConfig;

/// The whole `tensorzero.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[gateway]`.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `[models.NAME]`.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// `[embedding_models.NAME]`.
    #[serde(default)]
    pub embedding_models: BTreeMap<String, EmbeddingModelConfig>,
    /// `[provider_types.TYPE]`.
    #[serde(default)]
    pub provider_types: ProviderTypesConfig,
    /// `[functions.NAME]`.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionConfig>,
    /// `[tools.NAME]`.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolConfig>,
    /// `[metrics.NAME]`.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricConfig>,
    /// `[rate_limiting]`.
    #[serde(default)]
    pub rate_limiting: RateLimitingConfig,
    /// `[object_storage]`.
    pub object_storage: Option<ObjectStorageConfig>,
    /// `[clickhouse]`.
    pub clickhouse: Option<stores::ClickHouseConfig>,
    /// `[postgres]`.
    pub postgres: Option<stores::PostgresConfig>,
    /// `[evaluations.NAME]` (deprecated in TensorZero; loaded, not used by the gateway).
    #[serde(default)]
    pub evaluations: BTreeMap<String, offline::EvaluationConfig>,
    /// `[optimizers.NAME]` (loaded, not used by the gateway).
    #[serde(default)]
    pub optimizers: BTreeMap<String, offline::OptimizerConfig>,
    /// `[autopilot]` (loaded, not used by the gateway).
    pub autopilot: Option<offline::AutopilotConfig>,
}

/// Something in the configuration that loads but will not do what it says yet, or that is
/// probably a mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// What the warning is about, with its TOML path when there is one.
    pub message: String,
}

/// A configuration that parsed and passed every check.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: Config,
    /// The files it came from (empty for `--default-config`).
    pub sources: Sources,
    /// Things to tell the operator at start-up.
    pub warnings: Vec<Warning>,
    /// A hash of the files' contents, reported by `/status`.
    pub hash: String,
    /// The base for template includes: `template_filesystem_access.base_path` (resolved
    /// against the file that sets it); without it, includes are off (TensorZero 2026's rule).
    pub template_base_dir: Option<PathBuf>,
}

impl LoadedConfig {
    /// Loads, merges and checks the files `pattern` names (a path or a glob).
    pub fn from_files(pattern: &str) -> Result<Self, ConfigErrors> {
        let sources = load::read_files(pattern)?;
        let config: Config = load::deserialize(&sources)?;
        Self::checked(config, sources)
    }

    /// The configuration of `--default-config`: no functions or models of its own (shorthands
    /// such as `openai::gpt-4o-mini` still work), no auth, no rate limits, no relay.
    pub fn default_config() -> Self {
        Self::checked(Config::default(), Sources::default())
            .expect("the empty configuration is valid")
    }

    fn checked(mut config: Config, sources: Sources) -> Result<Self, ConfigErrors> {
        let warnings = validate::validate(&config, &sources)?;
        for function in config.functions.values_mut() {
            function.copy_deprecated_timeout_s();
        }
        let hash = content_hash(sources.texts());
        let template_base_dir = config.gateway.template_filesystem_access.base_path.clone();
        Ok(Self {
            config,
            sources,
            warnings,
            hash,
            template_base_dir,
        })
    }
}

impl LoadedConfig {
    /// The files the configuration names besides itself: schemas, templates, system
    /// instructions, tool parameters. A change to one of them is a change to the configuration
    /// (the reload poll watches them too).
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        let config = &self.config;
        let mut files: Vec<PathBuf> = Vec::new();
        let prompt = |cc: &ChatCompletionConfig, files: &mut Vec<PathBuf>| {
            for path in [
                &cc.system_template,
                &cc.user_template,
                &cc.assistant_template,
                &cc.system_instructions,
            ]
            .into_iter()
            .flatten()
            {
                files.push(path.clone());
            }
            files.extend(cc.templates.values().map(|t| t.path.clone()));
        };
        for function in config.functions.values() {
            files.extend(function.schema_files().into_iter().map(|(_, p)| p.clone()));
            files.extend(function.named_schemas().values().map(|s| s.path.clone()));
            for variant in function.variants().values() {
                match variant {
                    VariantConfig::ChatCompletion(cc)
                    | VariantConfig::ExperimentalChainOfThought(cc) => prompt(cc, &mut files),
                    VariantConfig::ExperimentalBestOfN(b) => prompt(&b.evaluator, &mut files),
                    VariantConfig::ExperimentalMixtureOfN(m) => prompt(&m.fuser, &mut files),
                    VariantConfig::ExperimentalDynamicInContextLearning(d) => {
                        files.extend(d.system_instructions.clone())
                    }
                }
            }
        }
        files.extend(config.tools.values().map(|t| t.parameters.clone()));
        files.sort();
        files.dedup();
        files
    }
}

/// A hash of the contents of `files` (a missing or unreadable file hashes as such), for noticing
/// that one changed.
pub fn referenced_files_hash(files: &[PathBuf]) -> String {
    let mut hasher = Sha256::new();
    for path in files {
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        match std::fs::read(path) {
            Ok(bytes) => hasher.update(&bytes),
            Err(e) => hasher.update(format!("unreadable: {e}").as_bytes()),
        }
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// The hash `/status` reports: SHA-256 over the files' texts, in merge order.
pub fn content_hash<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for text in texts {
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// The hash the files `pattern` names would load with, read without parsing: a cheap way to see
/// whether they changed (the reload watcher polls it). An error says what cannot be read.
pub fn files_hash(pattern: &str) -> Result<String, String> {
    let texts = load::expand(pattern)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|path| {
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read config file `{}`: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(content_hash(texts.iter().map(String::as_str)))
}
