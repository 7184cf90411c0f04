//! Functions as start-up prepares them: schemas compiled, tool definitions read, every variant's
//! templates compiled and checked against the schemas. And, per request, the tools a model call
//! gets and the checks its output goes through (tool arguments, json output).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::DynamicToolParams;
use super::input::{InputSchema, InputSchemas, Prompt, TemplateRef, text_variable};
use super::schema::JsonSchema;
use super::templates::Templates;
use crate::config::{
    ChatCompletionConfig, Config, FunctionConfig, ToolChoiceConfig, VariantConfig,
};
use crate::error::Error;
use crate::model_call::{OutputBlock, ToolChoice, ToolConfig, ToolDef};

/// A tool with its compiled parameter schema.
#[derive(Clone, Debug)]
pub struct Tool {
    /// What the model is told.
    pub def: ToolDef,
    /// What its arguments must follow.
    pub schema: JsonSchema,
}

/// A variant with its prompt (for `chat_completion` and chain-of-thought variants: their own;
/// for best-of-n: the evaluator's; for mixture-of-n: the fuser's).
#[derive(Debug)]
pub struct Variant {
    /// The variant as configured.
    pub config: VariantConfig,
    /// How it renders input.
    pub prompt: Prompt,
}

/// A function ready to serve.
#[derive(Debug)]
pub struct FunctionInfo {
    /// The function as configured.
    pub config: FunctionConfig,
    /// Its configured tools.
    pub tools: Vec<Tool>,
    /// Its input schemas.
    pub schemas: InputSchemas,
    /// Its output schema (json functions); `None` accepts any JSON.
    pub output_schema: Option<JsonSchema>,
    /// Its variants, prepared.
    pub variants: BTreeMap<String, Variant>,
    /// Which variants run, in what order, per namespace.
    pub sampler: super::sampling::Sampler,
    /// The template names at least one variant has.
    template_names: HashSet<String>,
}

impl FunctionInfo {
    /// Prepares function `name`, registering its templates in `templates`. Every problem is
    /// returned, each naming its TOML path.
    pub fn build(
        name: &str,
        config: &Config,
        function: &FunctionConfig,
        templates: &mut Templates,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let at = format!("functions.{name}");
        let schema = |key: &str, path: Option<&std::path::PathBuf>, errors: &mut Vec<String>| {
            path.and_then(|p| match JsonSchema::from_file(p) {
                Ok(s) => Some(s),
                Err(e) => {
                    errors.push(format!("`{at}.{key}`: {e}"));
                    None
                }
            })
        };
        let output = match function {
            FunctionConfig::Chat(_) => None,
            FunctionConfig::Json(f) => f.output_schema.as_ref(),
        };
        let mut schemas = InputSchemas::default();
        for name in function.input_schema_names() {
            if let Some((key, path)) = function.input_schema(&name)
                && let Some(compiled) = schema(&key, Some(path), &mut errors)
            {
                schemas.0.insert(
                    name,
                    InputSchema {
                        key,
                        schema: compiled,
                    },
                );
            }
        }
        let output_schema = schema("output_schema", output, &mut errors);
        let mut tools = Vec::new();
        if let FunctionConfig::Chat(chat) = function {
            for tool_name in &chat.tools {
                let Some(tool) = config.tools.get(tool_name) else {
                    errors.push(format!("`{at}.tools`: tool `{tool_name}` is not defined"));
                    continue;
                };
                match JsonSchema::from_file(&tool.parameters) {
                    Ok(schema) => tools.push(Tool {
                        def: ToolDef {
                            name: tool.name.clone().unwrap_or_else(|| tool_name.clone()),
                            description: tool.description.clone(),
                            parameters: schema.document().clone(),
                            strict: tool.strict,
                        },
                        schema,
                    }),
                    Err(e) => errors.push(format!("`tools.{tool_name}.parameters`: {e}")),
                }
            }
        }
        let mut variants = BTreeMap::new();
        let mut template_names = HashSet::new();
        for (variant_name, variant) in function.variants() {
            let vat = format!("{at}.variants.{variant_name}");
            let prompt = match variant {
                VariantConfig::ChatCompletion(cc)
                | VariantConfig::ExperimentalChainOfThought(cc) => {
                    prompt(&vat, cc, &schemas, templates, &mut errors)
                }
                VariantConfig::ExperimentalBestOfN(b) => prompt(
                    &format!("{vat}.evaluator"),
                    &b.evaluator,
                    &schemas,
                    templates,
                    &mut errors,
                ),
                VariantConfig::ExperimentalMixtureOfN(m) => prompt(
                    &format!("{vat}.fuser"),
                    &m.fuser,
                    &schemas,
                    templates,
                    &mut errors,
                ),
                VariantConfig::ExperimentalDynamicInContextLearning(d) => Prompt {
                    system_instructions: d
                        .system_instructions
                        .as_deref()
                        .and_then(|p| instructions(&vat, p, &mut errors)),
                    ..Prompt::default()
                },
            };
            template_names.extend(prompt.templates.keys().cloned());
            variants.insert(
                variant_name.clone(),
                Variant {
                    config: variant.clone(),
                    prompt,
                },
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            config: function.clone(),
            tools,
            schemas,
            output_schema,
            variants,
            sampler: super::sampling::Sampler::new(function),
            template_names,
        })
    }

    /// Whether some variant has a template called `name`.
    pub fn has_template(&self, name: &str) -> bool {
        self.template_names.contains(name)
    }

    /// Whether this is a json function.
    pub fn is_json(&self) -> bool {
        matches!(self.config, FunctionConfig::Json(_))
    }
}

/// Compiles a chat-completion-shaped config's templates under `at` and checks them against the
/// function's schemas: every schema needs a template of its name, and a role's template without
/// a schema may only use the role's text variable.
fn prompt(
    at: &str,
    cc: &ChatCompletionConfig,
    schemas: &InputSchemas,
    templates: &mut Templates,
    errors: &mut Vec<String>,
) -> Prompt {
    let mut prompt = Prompt::default();
    for (name, schema) in &schemas.0 {
        if cc.template(name).is_none() {
            let legacy = if text_variable(name).is_some() {
                format!(" (or `{name}_template`)")
            } else {
                String::new()
            };
            errors.push(format!(
                "`{at}.templates.{name}.path`{legacy} is required: the function has a `{name}` schema (`{}`), and its arguments need a template of that name to become a prompt",
                schema.key
            ));
        }
    }
    for name in cc.template_names() {
        let Some((key_suffix, path)) = cc.template(&name) else {
            continue;
        };
        let key = format!("{at}.{key_suffix}");
        if let Err(e) = templates.add(&key, path) {
            errors.push(format!("`{key}`: {e}"));
            continue;
        }
        // A role's template without a schema takes the message's text; any other template
        // without a schema takes whatever arguments the request sends.
        let text_variable = match (schemas.by_name(&name), text_variable(&name)) {
            (None, Some(allowed)) => {
                let mut others: Vec<String> = templates
                    .variables(&key)
                    .into_iter()
                    .filter(|v| v != allowed)
                    .collect();
                if !others.is_empty() {
                    others.sort();
                    errors.push(format!(
                        "`{key}` uses the variables [{}], but without a `{name}` schema a template can only use `{allowed}` (the message text); add `schemas.{name}.path` (or `{name}_schema`) to the function",
                        others.join(", ")
                    ));
                }
                Some(allowed)
            }
            _ => None,
        };
        prompt
            .templates
            .insert(name, TemplateRef { key, text_variable });
    }
    prompt.system_instructions = cc
        .system_instructions
        .as_deref()
        .and_then(|p| instructions(at, p, errors));
    prompt
}

fn instructions(at: &str, path: &Path, errors: &mut Vec<String>) -> Option<Arc<str>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.into()),
        Err(e) => {
            errors.push(format!(
                "`{at}.system_instructions`: cannot read `{}`: {e}",
                path.display()
            ));
            None
        }
    }
}

/// Prepares every function of `config`, and the templates they use. `include_base` is the
/// directory `{% include %}` may read from (`template_filesystem_access.base_path`); `None`
/// turns includes off.
pub fn build_all(
    config: &Config,
    include_base: Option<&Path>,
) -> Result<(HashMap<String, FunctionInfo>, Templates), Vec<String>> {
    let mut templates = Templates::new(include_base).map_err(|e| vec![e])?;
    let mut functions = HashMap::new();
    let mut errors = Vec::new();
    for (name, function) in &config.functions {
        match FunctionInfo::build(name, config, function, &mut templates) {
            Ok(info) => {
                functions.insert(name.clone(), info);
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok((functions, templates))
    } else {
        Err(errors)
    }
}

/// The tools of one model call: the function's (narrowed by `allowed_tools`), plus the
/// request's own; and the checks tool calls in the answer go through.
pub fn tool_config(
    function: Option<&FunctionInfo>,
    dynamic: &DynamicToolParams,
    compiled: &[JsonSchema],
) -> Result<(Option<ToolConfig>, Vec<Tool>), Error> {
    let (configured, choice, parallel) = match function.map(|f| (&f.config, f)) {
        Some((FunctionConfig::Chat(chat), f)) => (
            f.tools.as_slice(),
            match &chat.tool_choice {
                ToolChoiceConfig::None => ToolChoice::None,
                ToolChoiceConfig::Auto => ToolChoice::Auto,
                ToolChoiceConfig::Required => ToolChoice::Required,
                ToolChoiceConfig::Specific(t) => ToolChoice::Specific(
                    // The config names the tool by its key; the model knows it by its name.
                    f.tools
                        .iter()
                        .zip(&chat.tools)
                        .find(|(_, key)| *key == t)
                        .map_or_else(|| t.clone(), |(tool, _)| tool.def.name.clone()),
                ),
            },
            chat.parallel_tool_calls,
        ),
        _ => (&[][..], ToolChoice::Auto, None),
    };
    let mut tools: Vec<Tool> = match &dynamic.allowed_tools {
        None => configured.to_vec(),
        Some(allowed) => {
            for name in allowed {
                if !configured.iter().any(|t| &t.def.name == name) {
                    return Err(Error::InvalidRequest(format!(
                        "`allowed_tools` names `{name}`, which is not a tool of this function"
                    )));
                }
            }
            configured
                .iter()
                .filter(|t| allowed.contains(&t.def.name))
                .cloned()
                .collect()
        }
    };
    // A set keeps the uniqueness check linear in the number of tools.
    let mut names: std::collections::HashSet<String> =
        tools.iter().map(|t| t.def.name.clone()).collect();
    for (i, tool) in dynamic.additional_tools.iter().enumerate() {
        if !names.insert(tool.name.clone()) {
            return Err(Error::InvalidRequest(format!(
                "two tools are named `{}`; tool names must be unique in one request",
                tool.name
            )));
        }
        let schema = match compiled.get(i) {
            Some(schema) => schema.clone(),
            // Not compiled ahead (a request the gateway built itself): compile it here.
            None => JsonSchema::compile(tool.parameters.clone()).map_err(|e| {
                Error::InvalidRequest(format!("the parameters of tool `{}` are {e}", tool.name))
            })?,
        };
        tools.push(Tool {
            def: tool.clone(),
            schema,
        });
    }
    let tool_choice = dynamic.tool_choice.clone().unwrap_or(choice);
    if let ToolChoice::Specific(name) = &tool_choice {
        if !tools.iter().any(|t| &t.def.name == name) {
            return Err(Error::InvalidRequest(format!(
                "`tool_choice` names `{name}`, but no tool of that name is available"
            )));
        }
    }
    if tools.is_empty() {
        return Ok((None, tools));
    }
    let config = ToolConfig {
        tools: tools.iter().map(|t| t.def.clone()).collect(),
        tool_choice,
        parallel_tool_calls: dynamic.parallel_tool_calls.or(parallel),
    };
    Ok((Some(config), tools))
}

/// How an answer is checked before it reaches the client.
#[derive(Clone, Debug, Default)]
pub enum OutputCheck {
    /// A chat answer: tool calls are checked against the tools the call offered.
    #[default]
    Chat,
    /// Chat with tools.
    Tools(Arc<Vec<Tool>>),
    /// A json function's answer, checked against this schema (`None`: any JSON).
    Json(Option<JsonSchema>),
}

/// A tool call's `name` and `arguments` as the client sees them: `None` when the model named
/// a tool it was not offered, or wrote arguments that are not JSON or break the schema.
pub fn checked_tool_call(
    check: &OutputCheck,
    name: &str,
    arguments: &str,
) -> (Option<String>, Option<Value>) {
    let parsed = serde_json::from_str::<Value>(arguments).ok();
    let OutputCheck::Tools(tools) = check else {
        return (Some(name.to_owned()), parsed.filter(Value::is_object));
    };
    let Some(tool) = tools.iter().find(|t| t.def.name == name) else {
        tracing::warn!(tool = %name, "the model called a tool it was not offered");
        return (None, None);
    };
    let arguments = parsed.filter(|args| match tool.schema.validate(args) {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(tool = %name, reason = %why, "tool call arguments do not follow the tool's schema");
            false
        }
    });
    (Some(name.to_owned()), arguments)
}

/// A json answer's parsed value: `None` when the text is not JSON or breaks the schema (the
/// reason is logged, not the text).
pub fn parsed_json(check: &OutputCheck, raw: &str) -> Option<Value> {
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(reason = %e, "the json function's output is not valid JSON");
            return None;
        }
    };
    if let OutputCheck::Json(Some(schema)) = check {
        if let Err(why) = schema.validate(&value) {
            tracing::warn!(reason = %why, "the json function's output does not follow its output schema");
            return None;
        }
    }
    Some(value)
}

/// The text of an answer (a json function's raw output).
pub fn output_text(content: &[OutputBlock]) -> String {
    content
        .iter()
        .filter_map(|b| match b {
            OutputBlock::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}
