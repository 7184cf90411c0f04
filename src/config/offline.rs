//! Sections that drive work outside the gateway (evaluations, optimisation jobs, Autopilot):
//! `[functions.F.evaluators.E]`, `[evaluations]`, `[optimizers]` and `[autopilot]`.
//!
//! TensorZero rejects unknown top-level sections, so configs written for it carry these; the
//! gateway parses them with TensorZero's rules (unknown keys are errors where TensorZero's are,
//! paths resolve against the file that names them) and says once at start-up that they are
//! loaded but not used by the gateway.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::common::{ExtraBodyEntry, ExtraHeaderEntry, JsonMode, RetryConfig, TimeoutsConfig};

/// `[functions.F.evaluators.E]` and `[evaluations.N.evaluators.E]`, by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvaluatorConfig {
    /// `exact_match`: the output equals the reference.
    ExactMatch(ExactMatchEvaluator),
    /// `llm_judge`: a model grades the output.
    LlmJudge(LlmJudgeEvaluator),
    /// `tool_use`: which tools the output called.
    ToolUse(ToolUseEvaluator),
    /// `regex`: the output matches (or does not match) a pattern.
    Regex(RegexEvaluator),
    /// `typescript`: a script grades the output.
    Typescript(TypescriptEvaluator),
}

/// `type = "exact_match"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactMatchEvaluator {
    /// Deprecated in TensorZero.
    pub cutoff: Option<f32>,
}

/// `boolean` or `float`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeOutputType {
    /// Pass or fail.
    Boolean,
    /// A score.
    Float,
}

/// `min` or `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimize {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// `type = "llm_judge"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmJudgeEvaluator {
    /// What the judge's score means.
    pub output_type: JudgeOutputType,
    /// Which way is better.
    pub optimize: Optimize,
    /// `serialized` (default) or `messages`.
    pub input_format: Option<JudgeInputFormat>,
    /// What the judge sees besides the output.
    pub include: Option<JudgeInclude>,
    /// What the judge checks (only `llm_judge` takes it).
    pub description: Option<String>,
    /// Deprecated in TensorZero.
    pub cutoff: Option<f32>,
    /// The judge's own variants.
    #[serde(default)]
    pub variants: BTreeMap<String, JudgeVariantConfig>,
}

/// `serialized` or `messages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeInputFormat {
    /// The input as one serialized document.
    Serialized,
    /// The input as messages.
    Messages,
}

/// `include = { reference_output = ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeInclude {
    /// Show the judge the reference output.
    #[serde(default)]
    pub reference_output: bool,
}

/// `[...evaluators.E.variants.V]` of an `llm_judge`, by `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JudgeVariantConfig {
    /// `chat_completion`.
    ChatCompletion(JudgeChatCompletion),
    /// `experimental_chain_of_thought` (the same keys).
    ExperimentalChainOfThought(JudgeChatCompletion),
    /// `experimental_best_of_n_sampling` (alias `experimental_best_of_n`).
    #[serde(
        rename = "experimental_best_of_n_sampling",
        alias = "experimental_best_of_n"
    )]
    ExperimentalBestOfN(JudgeEnsemble),
    /// `experimental_mixture_of_n`.
    ExperimentalMixtureOfN(JudgeEnsemble),
    /// `experimental_dynamic_in_context_learning`: kept as written.
    ExperimentalDynamicInContextLearning(BTreeMap<String, Value>),
}

/// A judge's `chat_completion` variant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeChatCompletion {
    /// Whether the evaluations run this variant.
    pub active: Option<bool>,
    /// The judge's model.
    pub model: String,
    /// The judge's instructions (a file; required).
    pub system_instructions: PathBuf,
    /// Required for judges.
    pub json_mode: JsonMode,
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
    /// Stop sequences.
    pub stop_sequences: Option<Vec<String>>,
    /// Reasoning effort.
    pub reasoning_effort: Option<String>,
    /// Service tier.
    pub service_tier: Option<String>,
    /// Thinking budget.
    pub thinking_budget_tokens: Option<u32>,
    /// Verbosity.
    pub verbosity: Option<String>,
    /// Retries.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Limits.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Body edits.
    #[serde(default)]
    pub extra_body: Vec<ExtraBodyEntry>,
    /// Header edits.
    #[serde(default)]
    pub extra_headers: Vec<ExtraHeaderEntry>,
}

/// A judge's best-of-n or mixture-of-n variant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeEnsemble {
    /// Whether the evaluations run this variant.
    pub active: Option<bool>,
    /// Deprecated in TensorZero.
    pub timeout_s: Option<f64>,
    /// Limits.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// The judge variants that produce candidates.
    pub candidates: Vec<String>,
    /// Best-of-n: the model that picks (chat-completion keys, kept as written).
    pub evaluator: Option<BTreeMap<String, Value>>,
    /// Mixture-of-n: the model that combines (chat-completion keys, kept as written).
    pub fuser: Option<BTreeMap<String, Value>>,
}

/// `tool_use.behavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolUseBehavior {
    /// No tool called.
    None,
    /// None of `tools` called.
    NoneOf,
    /// Some tool called.
    Any,
    /// Some of `tools` called.
    AnyOf,
    /// All of `tools` called.
    AllOf,
}

impl ToolUseBehavior {
    /// Whether this behaviour names its tools (`none_of`, `any_of`, `all_of`).
    pub fn takes_tools(self) -> bool {
        matches!(self, Self::NoneOf | Self::AnyOf | Self::AllOf)
    }
}

/// `type = "tool_use"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolUseEvaluator {
    /// What counts as a pass.
    pub behavior: ToolUseBehavior,
    /// The tools `none_of`, `any_of` and `all_of` name.
    pub tools: Option<Vec<String>>,
}

/// `type = "regex"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexEvaluator {
    /// The output must match this.
    pub must_match: Option<String>,
    /// The output must not match this.
    pub must_not_match: Option<String>,
}

/// `type = "typescript"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypescriptEvaluator {
    /// The script (relative to the file that names it).
    pub typescript_file: PathBuf,
    /// What the script's score means.
    pub output_type: JudgeOutputType,
    /// Which way is better.
    pub optimize: Optimize,
}

/// `[evaluations.NAME]` (deprecated in TensorZero: evaluators now live on functions).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// `inference` (`static` is its deprecated alias).
    #[serde(rename = "type")]
    pub kind: EvaluationType,
    /// The function evaluated.
    pub function_name: String,
    /// What the evaluation is for.
    pub description: Option<String>,
    /// Its evaluators.
    #[serde(default)]
    pub evaluators: BTreeMap<String, EvaluatorConfig>,
}

/// `evaluations.N.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationType {
    /// Evaluate inferences.
    Inference,
    /// The deprecated spelling of `inference`.
    Static,
}

/// `[optimizers.NAME]`: a job definition, kept as written apart from its `type` (each type has
/// its own fields, which only the job runner reads).
#[derive(Clone, Debug, Deserialize)]
pub struct OptimizerConfig {
    /// `dicl`, `openai_sft`, `openai_rft`, `fireworks_sft`, `gcp_vertex_gemini_sft`, `gepa` or
    /// `together_sft`.
    #[serde(rename = "type")]
    pub kind: OptimizerType,
    /// The type's own fields.
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

/// `optimizers.N.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerType {
    /// Dynamic in-context learning.
    Dicl,
    /// OpenAI supervised fine-tuning.
    OpenaiSft,
    /// OpenAI reinforcement fine-tuning.
    OpenaiRft,
    /// Fireworks supervised fine-tuning.
    FireworksSft,
    /// Vertex Gemini supervised fine-tuning.
    GcpVertexGeminiSft,
    /// Prompt optimisation.
    Gepa,
    /// Together supervised fine-tuning.
    TogetherSft,
}

/// `[autopilot]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutopilotConfig {
    /// Tools Autopilot may run without approval.
    pub tool_whitelist: Option<Vec<String>>,
}
