//! `[functions]` with their `[functions.F.variants]`, `[tools]` and `[metrics]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::common::{ExtraBodyEntry, ExtraHeaderEntry, TimeoutsConfig};
pub use super::common::{JsonMode, RetryConfig};

/// The name of the built-in function that `model_name` calls run as (and are stored under):
/// a name no configured function can take.
pub const DEFAULT_FUNCTION_NAME: &str = "tensorzero::default";

/// `[functions.NAME]`, chosen by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FunctionConfig {
    /// `type = "chat"`.
    Chat(ChatFunctionConfig),
    /// `type = "json"`.
    Json(JsonFunctionConfig),
}

impl FunctionConfig {
    /// The function's variants.
    pub fn variants(&self) -> &BTreeMap<String, VariantConfig> {
        match self {
            Self::Chat(f) => &f.variants,
            Self::Json(f) => &f.variants,
        }
    }

    /// The function's variants, to change (the load-time rewrites of deprecated keys).
    pub fn variants_mut(&mut self) -> &mut BTreeMap<String, VariantConfig> {
        match self {
            Self::Chat(f) => &mut f.variants,
            Self::Json(f) => &mut f.variants,
        }
    }

    /// The deprecated `timeout_s` of best-of-n and mixture-of-n variants, copied onto their
    /// candidates as TensorZero does: each candidate's `non_streaming.total_ms` and
    /// `streaming.ttft_ms` become it. (Validation has refused candidates with timeouts of
    /// their own, and candidates shared by two ensembles that set it.)
    pub fn copy_deprecated_timeout_s(&mut self) {
        let copies: Vec<(String, u64)> = self
            .variants()
            .values()
            .filter_map(|v| match v {
                VariantConfig::ExperimentalBestOfN(b) => Some((&b.candidates, b.timeout_s?)),
                VariantConfig::ExperimentalMixtureOfN(m) => Some((&m.candidates, m.timeout_s?)),
                _ => None,
            })
            .flat_map(|(candidates, seconds)| {
                let ms = (seconds * 1000.0).ceil() as u64;
                candidates.iter().map(move |c| (c.clone(), ms))
            })
            .collect();
        for (candidate, ms) in copies {
            if let Some(timeouts) = self
                .variants_mut()
                .get_mut(&candidate)
                .and_then(VariantConfig::candidate_timeouts_mut)
            {
                timeouts.non_streaming.total_ms = Some(ms);
                timeouts.streaming.ttft_ms = Some(ms);
            }
        }
    }

    /// `[functions.F.experimentation]`.
    pub fn experimentation(&self) -> Option<&super::experimentation::ExperimentationSection> {
        match self {
            Self::Chat(f) => f.experimentation.as_ref(),
            Self::Json(f) => f.experimentation.as_ref(),
        }
    }

    /// The evaluators (`[functions.F.evaluators.E]`).
    pub fn evaluators(&self) -> &BTreeMap<String, super::offline::EvaluatorConfig> {
        match self {
            Self::Chat(f) => &f.evaluators,
            Self::Json(f) => &f.evaluators,
        }
    }

    /// The named input schemas (`schemas.NAME.path`).
    pub fn named_schemas(&self) -> &BTreeMap<String, FileEntry> {
        match self {
            Self::Chat(f) => &f.schemas,
            Self::Json(f) => &f.schemas,
        }
    }

    /// The input schema of template `name`, from either form, with the key that set it:
    /// `schemas.NAME.path`, or for the three roles the legacy `ROLE_schema`. (Setting both for
    /// one role is a configuration error.)
    pub fn input_schema(&self, name: &str) -> Option<(String, &PathBuf)> {
        if let Some(entry) = self.named_schemas().get(name) {
            return Some((format!("schemas.{name}.path"), &entry.path));
        }
        let (system, user, assistant) = self.legacy_schemas();
        let legacy = match name {
            "system" => system,
            "user" => user,
            "assistant" => assistant,
            _ => None,
        };
        legacy.map(|path| (format!("{name}_schema"), path))
    }

    fn legacy_schemas(&self) -> (Option<&PathBuf>, Option<&PathBuf>, Option<&PathBuf>) {
        match self {
            Self::Chat(f) => (
                f.system_schema.as_ref(),
                f.user_schema.as_ref(),
                f.assistant_schema.as_ref(),
            ),
            Self::Json(f) => (
                f.system_schema.as_ref(),
                f.user_schema.as_ref(),
                f.assistant_schema.as_ref(),
            ),
        }
    }

    /// Every input schema's name (the roles' legacy keys under their role's name).
    pub fn input_schema_names(&self) -> Vec<String> {
        let (system, user, assistant) = self.legacy_schemas();
        let mut names: Vec<String> = self.named_schemas().keys().cloned().collect();
        for (name, legacy) in [("system", system), ("user", user), ("assistant", assistant)] {
            if legacy.is_some() && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        names
    }

    /// The schema files (`system_schema`, `user_schema`, `assistant_schema`, `output_schema`).
    pub fn schema_files(&self) -> Vec<(&'static str, &PathBuf)> {
        let (system, user, assistant, output) = match self {
            Self::Chat(f) => (&f.system_schema, &f.user_schema, &f.assistant_schema, &None),
            Self::Json(f) => (
                &f.system_schema,
                &f.user_schema,
                &f.assistant_schema,
                &f.output_schema,
            ),
        };
        [
            ("system_schema", system.as_ref()),
            ("user_schema", user.as_ref()),
            ("assistant_schema", assistant.as_ref()),
            ("output_schema", output.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// `type = "chat"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatFunctionConfig {
    /// What the function is for.
    pub description: Option<String>,
    /// JSON Schema for structured system input.
    pub system_schema: Option<PathBuf>,
    /// JSON Schema for structured user input.
    pub user_schema: Option<PathBuf>,
    /// JSON Schema for structured assistant input.
    pub assistant_schema: Option<PathBuf>,
    /// Named input schemas (`schemas.NAME.path`); `system`, `user` and `assistant` are the
    /// roles' own.
    #[serde(default)]
    pub schemas: BTreeMap<String, FileEntry>,
    /// Tool names from `[tools]`.
    #[serde(default)]
    pub tools: Vec<String>,
    /// How the model may use tools (default `auto`).
    #[serde(default)]
    pub tool_choice: ToolChoiceConfig,
    /// Whether the model may call several tools at once.
    pub parallel_tool_calls: Option<bool>,
    /// The variants, by name.
    #[serde(default)]
    pub variants: BTreeMap<String, VariantConfig>,
    /// Evaluators for the evaluations tooling (loaded, not used by the gateway).
    #[serde(default)]
    pub evaluators: BTreeMap<String, super::offline::EvaluatorConfig>,
    /// How variants are sampled (default: by `weight`, else uniformly).
    pub experimentation: Option<super::experimentation::ExperimentationSection>,
}

/// `type = "json"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFunctionConfig {
    /// What the function is for.
    pub description: Option<String>,
    /// JSON Schema for structured system input.
    pub system_schema: Option<PathBuf>,
    /// JSON Schema for structured user input.
    pub user_schema: Option<PathBuf>,
    /// JSON Schema for structured assistant input.
    pub assistant_schema: Option<PathBuf>,
    /// Named input schemas (`schemas.NAME.path`); `system`, `user` and `assistant` are the
    /// roles' own.
    #[serde(default)]
    pub schemas: BTreeMap<String, FileEntry>,
    /// JSON Schema the output must follow (default: any JSON).
    pub output_schema: Option<PathBuf>,
    /// The variants, by name.
    #[serde(default)]
    pub variants: BTreeMap<String, VariantConfig>,
    /// Evaluators for the evaluations tooling (loaded, not used by the gateway).
    #[serde(default)]
    pub evaluators: BTreeMap<String, super::offline::EvaluatorConfig>,
    /// How variants are sampled (default: by `weight`, else uniformly).
    pub experimentation: Option<super::experimentation::ExperimentationSection>,
}

/// `{ path = "..." }`: a named schema or template file (relative to the TOML file that names
/// it).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The file.
    pub path: PathBuf,
}

/// `tool_choice`: `none`, `auto`, `required` or `{ specific = "tool" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceConfig {
    /// No tools.
    None,
    /// The model decides.
    #[default]
    Auto,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Specific(String),
}

/// `[functions.F.variants.V]`, chosen by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VariantConfig {
    /// `type = "chat_completion"`.
    ChatCompletion(ChatCompletionConfig),
    /// `type = "experimental_best_of_n_sampling"`, the tag TensorZero's code accepts; its
    /// documentation's `experimental_best_of_n` is taken too.
    #[serde(
        rename = "experimental_best_of_n_sampling",
        alias = "experimental_best_of_n"
    )]
    ExperimentalBestOfN(BestOfNConfig),
    /// `type = "experimental_mixture_of_n"`.
    ExperimentalMixtureOfN(MixtureOfNConfig),
    /// `type = "experimental_chain_of_thought"` (the same fields as `chat_completion`).
    ExperimentalChainOfThought(ChatCompletionConfig),
    /// `type = "experimental_dynamic_in_context_learning"`.
    ExperimentalDynamicInContextLearning(DiclConfig),
}

impl VariantConfig {
    /// The chat completions it holds, with the sub-table each is in (`evaluator`, `fuser`;
    /// `None`: the variant itself).
    pub fn chat_completions(&self) -> Vec<(Option<&'static str>, &ChatCompletionConfig)> {
        match self {
            Self::ChatCompletion(cc) | Self::ExperimentalChainOfThought(cc) => vec![(None, cc)],
            Self::ExperimentalBestOfN(b) => vec![(Some("evaluator"), &b.evaluator)],
            Self::ExperimentalMixtureOfN(m) => vec![(Some("fuser"), &m.fuser)],
            Self::ExperimentalDynamicInContextLearning(_) => Vec::new(),
        }
    }

    /// The `type` key's value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ChatCompletion(_) => "chat_completion",
            Self::ExperimentalBestOfN(_) => "experimental_best_of_n_sampling",
            Self::ExperimentalMixtureOfN(_) => "experimental_mixture_of_n",
            Self::ExperimentalChainOfThought(_) => "experimental_chain_of_thought",
            Self::ExperimentalDynamicInContextLearning(_) => {
                "experimental_dynamic_in_context_learning"
            }
        }
    }

    /// The namespace the variant belongs to (`None`: every namespace and the base).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::ChatCompletion(v) | Self::ExperimentalChainOfThought(v) => v.namespace.as_deref(),
            Self::ExperimentalBestOfN(v) => v.namespace.as_deref(),
            Self::ExperimentalMixtureOfN(v) => v.namespace.as_deref(),
            Self::ExperimentalDynamicInContextLearning(v) => v.namespace.as_deref(),
        }
    }

    /// The sampling weight (`None` when unset).
    pub fn weight(&self) -> Option<f64> {
        match self {
            Self::ChatCompletion(v) | Self::ExperimentalChainOfThought(v) => v.weight,
            Self::ExperimentalBestOfN(v) => v.weight,
            Self::ExperimentalMixtureOfN(v) => v.weight,
            Self::ExperimentalDynamicInContextLearning(v) => v.weight,
        }
    }

    /// The timeouts of a variant that can be a candidate (`chat_completion`, chain of thought).
    fn candidate_timeouts_mut(&mut self) -> Option<&mut TimeoutsConfig> {
        match self {
            Self::ChatCompletion(v) | Self::ExperimentalChainOfThought(v) => Some(&mut v.timeouts),
            _ => None,
        }
    }

    /// The variant's own timeouts.
    pub fn timeouts(&self) -> &TimeoutsConfig {
        match self {
            Self::ChatCompletion(v) | Self::ExperimentalChainOfThought(v) => &v.timeouts,
            Self::ExperimentalBestOfN(v) => &v.timeouts,
            Self::ExperimentalMixtureOfN(v) => &v.timeouts,
            Self::ExperimentalDynamicInContextLearning(v) => &v.timeouts,
        }
    }
}

/// `type = "chat_completion"` (and `experimental_chain_of_thought`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionConfig {
    /// A configured model name or a shorthand such as `openai::gpt-4o-mini`.
    pub model: String,
    /// Deprecated sampling weight (how variants are sampled: the README's *Sampling*).
    pub weight: Option<f64>,
    /// Reachable only from `experimentation.namespaces.NS` with this name.
    pub namespace: Option<String>,
    /// MiniJinja template for the system message.
    pub system_template: Option<PathBuf>,
    /// MiniJinja template for user messages.
    pub user_template: Option<PathBuf>,
    /// MiniJinja template for assistant messages.
    pub assistant_template: Option<PathBuf>,
    /// Named MiniJinja templates (`templates.NAME.path`); `system`, `user` and `assistant`
    /// are the roles' own.
    #[serde(default)]
    pub templates: BTreeMap<String, FileEntry>,
    /// Deprecated, undocumented plain-text wrappers (`input_wrappers.ROLE`): a role's
    /// template in the legacy form (the message's text is `ROLE_text`); they may not be set
    /// beside a template or schema of the same role.
    #[serde(default)]
    pub input_wrappers: InputWrappers,
    /// A file of static system instructions.
    pub system_instructions: Option<PathBuf>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// JSON handling: optional; a json function's variants default to `strict`, a chat
    /// function's to `off` (TensorZero 2026's rule; the seed's "required for json, forbidden for
    /// chat" never matched TensorZero's code).
    pub json_mode: Option<JsonMode>,
    /// Stop sequences.
    pub stop_sequences: Option<Vec<String>>,
    /// Reasoning effort for reasoning models.
    pub reasoning_effort: Option<String>,
    /// Service tier.
    pub service_tier: Option<String>,
    /// Thinking budget for models that take one.
    pub thinking_budget_tokens: Option<u32>,
    /// Verbosity for models that take it.
    pub verbosity: Option<String>,
    /// Retries of the whole model call.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Limits for the whole variant.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Edits to the provider request body.
    #[serde(default)]
    pub extra_body: Vec<ExtraBodyEntry>,
    /// Edits to the provider request headers.
    #[serde(default)]
    pub extra_headers: Vec<ExtraHeaderEntry>,
}

/// `input_wrappers` of a chat completion.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputWrappers {
    /// The system message's wrapper.
    pub system: Option<PathBuf>,
    /// User messages' wrapper.
    pub user: Option<PathBuf>,
    /// Assistant messages' wrapper.
    pub assistant: Option<PathBuf>,
}

impl InputWrappers {
    /// The wrapper of a role, if set.
    pub fn of(&self, role: &str) -> Option<&PathBuf> {
        match role {
            "system" => self.system.as_ref(),
            "user" => self.user.as_ref(),
            "assistant" => self.assistant.as_ref(),
            _ => None,
        }
    }
}

/// The `evaluator` of best-of-n and the `fuser` of mixture-of-n: a chat completion without `type`.
pub type SubVariantConfig = ChatCompletionConfig;

impl ChatCompletionConfig {
    /// The template of `name`, from either form, with the key that set it:
    /// `templates.NAME.path`, or for the three roles the legacy `ROLE_template`. (Setting both
    /// for one role is a configuration error.)
    pub fn template(&self, name: &str) -> Option<(String, &PathBuf)> {
        if let Some(entry) = self.templates.get(name) {
            return Some((format!("templates.{name}.path"), &entry.path));
        }
        let legacy = match name {
            "system" => self.system_template.as_ref(),
            "user" => self.user_template.as_ref(),
            "assistant" => self.assistant_template.as_ref(),
            _ => None,
        };
        legacy
            .map(|path| (format!("{name}_template"), path))
            .or_else(|| {
                self.input_wrappers
                    .of(name)
                    .map(|path| (format!("input_wrappers.{name}"), path))
            })
    }

    /// Every template's name (the roles' legacy keys under their role's name), sorted.
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.templates.keys().cloned().collect();
        for (name, legacy) in [
            ("system", &self.system_template),
            ("user", &self.user_template),
            ("assistant", &self.assistant_template),
        ] {
            let wrapped = self.input_wrappers.of(name).is_some();
            if (legacy.is_some() || wrapped) && !self.templates.contains_key(name) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        names
    }
}

/// `type = "experimental_best_of_n_sampling"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestOfNConfig {
    /// Variant names that produce candidates.
    pub candidates: Vec<String>,
    /// The model that picks the best candidate.
    pub evaluator: SubVariantConfig,
    /// Deprecated: how long each candidate may take, in seconds; copied onto the candidates'
    /// timeouts at load (no default).
    pub timeout_s: Option<f64>,
    /// Limits for the whole variant.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Sampling weight.
    pub weight: Option<f64>,
    /// Reachable only from `experimentation.namespaces.NS` with this name.
    pub namespace: Option<String>,
}

/// `type = "experimental_mixture_of_n"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixtureOfNConfig {
    /// Variant names that produce candidates.
    pub candidates: Vec<String>,
    /// The model that combines the candidates.
    pub fuser: SubVariantConfig,
    /// Deprecated: how long each candidate may take, in seconds; copied onto the candidates'
    /// timeouts at load (no default).
    pub timeout_s: Option<f64>,
    /// Limits for the whole variant.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Sampling weight.
    pub weight: Option<f64>,
    /// Reachable only from `experimentation.namespaces.NS` with this name.
    pub namespace: Option<String>,
}

/// `type = "experimental_dynamic_in_context_learning"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiclConfig {
    /// The embedding model used to find examples.
    pub embedding_model: String,
    /// How many examples to include.
    pub k: u32,
    /// Examples farther than this are left out.
    pub max_distance: Option<f64>,
    /// The chat model.
    pub model: String,
    /// A file of static system instructions.
    pub system_instructions: Option<PathBuf>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// JSON handling.
    pub json_mode: Option<JsonMode>,
    /// Stop sequences.
    pub stop_sequences: Option<Vec<String>>,
    /// Reasoning effort, as for `chat_completion`.
    pub reasoning_effort: Option<String>,
    /// Thinking budget, as for `chat_completion`.
    pub thinking_budget_tokens: Option<i32>,
    /// Output verbosity, as for `chat_completion` (DICL has no `service_tier`).
    pub verbosity: Option<String>,
    /// Retries of the whole model call.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Limits for the whole variant.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Edits to the provider request body.
    #[serde(default)]
    pub extra_body: Vec<ExtraBodyEntry>,
    /// Edits to the provider request headers.
    #[serde(default)]
    pub extra_headers: Vec<ExtraHeaderEntry>,
    /// Sampling weight.
    pub weight: Option<f64>,
    /// Reachable only from `experimentation.namespaces.NS` with this name.
    pub namespace: Option<String>,
}

/// `[tools.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// What the tool does, for the model.
    pub description: String,
    /// A JSON Schema file for the arguments.
    pub parameters: PathBuf,
    /// Ask for strict argument generation where the provider supports it.
    #[serde(default)]
    pub strict: bool,
    /// The name sent to the model (default: the tool's key).
    pub name: Option<String>,
}

/// `[metrics.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// `inference` or `episode`.
    pub level: MetricLevel,
    /// `max` or `min`.
    pub optimize: MetricOptimize,
    /// `boolean` or `float`.
    #[serde(rename = "type")]
    pub metric_type: MetricType,
    /// What the metric measures (free text; Autopilot reads it).
    pub description: Option<String>,
}

/// What a metric is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricLevel {
    /// One inference.
    Inference,
    /// A whole episode.
    Episode,
}

/// Which direction is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricOptimize {
    /// Larger is better.
    Max,
    /// Smaller is better.
    Min,
}

/// A metric's value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// true / false.
    Boolean,
    /// A number.
    Float,
}
