//! What the store keeps of an inference, in TensorZero 2026.4's JSON shapes: the input before
//! templates (StoredInput), the answer with its tool calls checked (or a json inference's
//! `{raw, parsed}`), and the tool columns. Built here, where the inference types live; the
//! observability rows only carry them (their shared blocks come from `observability::rows`).

use serde_json::{Map, Value, json};

use crate::inference::functions::{OutputCheck, checked_tool_call};
use crate::inference::input::{Input, InputBlock, SystemInput};
use crate::model_call::OutputBlock;
use crate::observability::files::Files;
use crate::observability::rows::{
    InferenceKind, content_block, role, thought_block, tool, tool_choice,
};

/// StoredInput: the request's input before templates.
pub fn stored_input(input: &Input, files: &Files) -> Value {
    let mut out = Map::new();
    match &input.system {
        Some(SystemInput::Text(text)) => {
            out.insert("system".into(), Value::String(text.clone()));
        }
        Some(SystemInput::Arguments(arguments)) => {
            out.insert("system".into(), Value::Object(arguments.clone()));
        }
        None => {}
    }
    let messages: Vec<Value> = input
        .messages
        .iter()
        .map(|m| {
            let content: Vec<Value> = m
                .content
                .iter()
                .map(|block| match block {
                    InputBlock::Text(text) => json!({"type": "text", "text": text}),
                    InputBlock::Template { name, arguments } => {
                        json!({"type": "template", "name": name, "arguments": arguments})
                    }
                    InputBlock::RawText(value) => json!({"type": "raw_text", "value": value}),
                    InputBlock::Other(block) => content_block(block, files),
                })
                .collect();
            json!({"role": role(m.role), "content": content})
        })
        .collect();
    out.insert("messages".into(), Value::Array(messages));
    Value::Object(out)
}

/// ContentBlockChatOutput array: a chat inference's answer, tool calls checked against the
/// tools offered (`name`/`arguments` null when they do not pass).
pub fn chat_output(content: &[OutputBlock], check: &OutputCheck) -> Value {
    Value::Array(
        content
            .iter()
            .map(|block| match block {
                OutputBlock::Text(text) => json!({"type": "text", "text": text}),
                OutputBlock::ToolCall(call) => {
                    let (name, arguments) = checked_tool_call(check, &call.name, &call.arguments);
                    json!({
                        "type": "tool_call",
                        "id": call.id,
                        "raw_name": call.name,
                        "raw_arguments": call.arguments,
                        "name": name,
                        "arguments": arguments,
                    })
                }
                OutputBlock::Thought(thought) => thought_block(thought),
            })
            .collect(),
    )
}

/// A json inference's `output` (`{raw, parsed}`) and `auxiliary_content` (its thoughts).
pub fn json_output(content: &[OutputBlock], check: &OutputCheck) -> (Value, Value) {
    let raw = super::functions::output_text(content);
    let parsed = super::functions::parsed_json(check, &raw);
    let auxiliary: Vec<Value> = content
        .iter()
        .filter_map(|block| match block {
            OutputBlock::Thought(thought) => Some(thought_block(thought)),
            _ => None,
        })
        .collect();
    (
        json!({"raw": raw, "parsed": parsed}),
        Value::Array(auxiliary),
    )
}

/// What a function contributes to the tool columns.
#[derive(Clone, Debug)]
pub struct FunctionTools {
    /// Its tools' names.
    pub names: Vec<String>,
    /// Its `tool_choice`, as stored.
    pub choice: Value,
    /// Its `parallel_tool_calls`.
    pub parallel: Option<bool>,
}

impl FunctionTools {
    /// A function's.
    pub fn of(f: &super::functions::FunctionInfo) -> Self {
        use crate::config::FunctionConfig;
        use crate::config::functions::ToolChoiceConfig;
        let (choice, parallel) = match &f.config {
            FunctionConfig::Chat(c) => (
                match &c.tool_choice {
                    ToolChoiceConfig::None => json!("none"),
                    ToolChoiceConfig::Auto => json!("auto"),
                    ToolChoiceConfig::Required => json!("required"),
                    ToolChoiceConfig::Specific(name) => json!({ "specific": name }),
                },
                c.parallel_tool_calls,
            ),
            FunctionConfig::Json(_) => (json!("auto"), None),
        };
        Self {
            names: f.tools.iter().map(|t| t.def.name.clone()).collect(),
            choice,
            parallel,
        }
    }
}

/// The tool columns of a chat row: all empty/NULL when neither the function nor the request
/// has tools; otherwise `allowed_tools` and `tool_choice` are always set (the function's tools
/// plus the request's, `function_default`, unless the request restricted them: `explicit`).
pub fn tool_columns(
    function: Option<&FunctionTools>,
    request: &super::DynamicToolParams,
) -> InferenceKind {
    let dynamic: Vec<Value> = request.additional_tools.iter().map(tool).collect();
    let function_tools = function.map_or(&[][..], |f| &f.names[..]);
    if dynamic.is_empty() && function_tools.is_empty() && request.allowed_tools.is_none() {
        return InferenceKind::Chat {
            dynamic_tools: json!([]),
            dynamic_provider_tools: json!([]),
            allowed_tools: None,
            tool_choice: None,
            parallel_tool_calls: None,
        };
    }
    let allowed = match &request.allowed_tools {
        Some(names) => json!({"tools": names, "choice": "explicit"}),
        None => {
            let names: Vec<&str> = function_tools
                .iter()
                .map(String::as_str)
                .chain(request.additional_tools.iter().map(|t| t.name.as_str()))
                .collect();
            json!({"tools": names, "choice": "function_default"})
        }
    };
    let choice = match &request.tool_choice {
        Some(c) => tool_choice(c),
        None => function.map_or(json!("auto"), |f| f.choice.clone()),
    };
    InferenceKind::Chat {
        dynamic_tools: Value::Array(dynamic),
        dynamic_provider_tools: json!([]),
        allowed_tools: Some(allowed),
        tool_choice: Some(choice),
        parallel_tool_calls: request
            .parallel_tool_calls
            .or_else(|| function.and_then(|f| f.parallel)),
    }
}
