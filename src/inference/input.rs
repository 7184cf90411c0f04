//! A request's input before templates: plain text, template arguments and everything else, the
//! checks against the function's input schemas, and the rendering through one variant's
//! templates into the messages a model sees.
//!
//! Templates and schemas have names. `system`, `user` and `assistant` are the roles' own (set
//! as `templates.user.path` or the legacy `user_template`, `schemas.user.path` or
//! `user_schema`); any other name is addressed by a template block (`{"type": "template",
//! "name": ...}`). The rules follow the TensorZero Gateway:
//! - a name with a schema takes template arguments, checked against the schema;
//! - a role's template without a schema takes plain text, as the variable `system_text`,
//!   `user_text` or `assistant_text` (and no other variable: checked at start-up);
//! - `raw_text` blocks skip templates; files, tool calls and results pass through;
//! - template arguments without a schema need a variant with a template of that name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::schema::JsonSchema;
use super::templates::Templates;
use crate::error::Error;
use crate::model_call::{ContentBlock, Message, Role};

/// The system part of the input.
#[derive(Clone, Debug, PartialEq)]
pub enum SystemInput {
    /// Plain text.
    Text(String),
    /// Arguments for the `system` template.
    Arguments(Map<String, Value>),
}

/// One message of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputMessage {
    /// The speaker.
    pub role: Role,
    /// The blocks, in order.
    pub content: Vec<InputBlock>,
}

/// A block of input content.
#[derive(Clone, Debug, PartialEq)]
pub enum InputBlock {
    /// Text, wrapped by the role's template when the variant has one.
    Text(String),
    /// Arguments for a named template (`system`, `user` or `assistant`).
    Template {
        /// The template's name.
        name: String,
        /// Its variables.
        arguments: Map<String, Value>,
    },
    /// Text that no template touches.
    RawText(String),
    /// Anything else (files, tool calls and results, thoughts), passed to the model as is.
    Other(ContentBlock),
}

/// The input of one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Input {
    /// The system prompt or its template arguments.
    pub system: Option<SystemInput>,
    /// The conversation.
    pub messages: Vec<InputMessage>,
}

/// The variable a role's template without a schema receives the text in (`system_text`,
/// `user_text`, `assistant_text`); `None` for a name that is not a role's.
pub fn text_variable(name: &str) -> Option<&'static str> {
    match name {
        "system" => Some("system_text"),
        "user" => Some("user_text"),
        "assistant" => Some("assistant_text"),
        _ => None,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// One input schema, with the key that set it (for messages).
#[derive(Clone, Debug)]
pub struct InputSchema {
    /// `schemas.NAME.path`, or a role's legacy `ROLE_schema`.
    pub key: String,
    /// The compiled schema.
    pub schema: JsonSchema,
}

/// A function's input schemas, by template name.
#[derive(Clone, Debug, Default)]
pub struct InputSchemas(pub BTreeMap<String, InputSchema>);

impl InputSchemas {
    /// The schema of template `name`, when the function has one.
    pub fn by_name(&self, name: &str) -> Option<&InputSchema> {
        self.0.get(name)
    }
}

impl Input {
    /// Calls `f` with every file in the conversation.
    pub fn for_each_file(&self, mut f: impl FnMut(&crate::model_call::FileInput)) {
        for message in &self.messages {
            for block in &message.content {
                if let InputBlock::Other(ContentBlock::File(file)) = block {
                    f(file);
                }
            }
        }
    }

    /// Checks the input against the function's schemas. `has_template(name)` says whether any
    /// variant has a template of that name (template arguments need one).
    pub fn validate(
        &self,
        schemas: &InputSchemas,
        has_template: impl Fn(&str) -> bool,
    ) -> Result<(), Error> {
        // The value is built only when a schema will read it: most functions have none.
        let check = |what: &dyn Fn() -> String,
                     name: &str,
                     value: &dyn Fn() -> Value,
                     is_text: bool| match schemas.by_name(name) {
            Some(schema) => schema.schema.validate(&value()).map_err(|v| {
                Error::InvalidRequest(format!(
                    "{} does not follow the function's `{}`: {v}",
                    what(),
                    schema.key
                ))
            }),
            None if !is_text && !has_template(name) => Err(Error::InvalidRequest(format!(
                "{} holds template arguments, but no variant of this function has a `{name}` template (and the function has no schema of that name); send text instead",
                what()
            ))),
            None => Ok(()),
        };
        let system = || "The system input".to_owned();
        match &self.system {
            None => {}
            Some(SystemInput::Text(t)) => {
                check(&system, "system", &|| Value::String(t.clone()), true)?
            }
            Some(SystemInput::Arguments(a)) => {
                check(&system, "system", &|| Value::Object(a.clone()), false)?
            }
        }
        for (i, message) in self.messages.iter().enumerate() {
            for (j, block) in message.content.iter().enumerate() {
                let what = || format!("Message {i} ({}), block {j},", role_name(message.role));
                match block {
                    InputBlock::Text(t) => check(
                        &what,
                        role_name(message.role),
                        &|| Value::String(t.clone()),
                        true,
                    )?,
                    InputBlock::Template { name, arguments } => {
                        check(&what, name, &|| Value::Object(arguments.clone()), false)?
                    }
                    InputBlock::RawText(_) | InputBlock::Other(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The input without templates: text as text. Used where no variant templates apply (the
    /// default function of `model_name`); template arguments are refused.
    pub fn untemplated(&self) -> Result<(Option<String>, Vec<Message>), Error> {
        let has_arguments = matches!(self.system, Some(SystemInput::Arguments(_)))
            || self.messages.iter().any(|m| {
                m.content
                    .iter()
                    .any(|b| matches!(b, InputBlock::Template { .. }))
            });
        if has_arguments {
            return Err(Error::InvalidRequest(
                "The input holds template arguments, but a `model_name` call has no templates to render them; send text, or call a function whose variants have templates".into(),
            ));
        }
        Prompt::default().render(self, None)
    }
}

/// One of a variant's templates.
#[derive(Clone, Debug)]
pub struct TemplateRef {
    /// The key in [`Templates`] (its TOML path).
    pub key: String,
    /// For a role's template without a schema: the variable the text arrives in (`user_text`,
    /// ...).
    pub text_variable: Option<&'static str>,
}

/// How one variant (or a best-of-n evaluator, a mixture-of-n fuser) turns input into messages.
#[derive(Clone, Debug, Default)]
pub struct Prompt {
    /// The templates, by name (`system`, `user`, `assistant` and any other).
    pub templates: BTreeMap<String, TemplateRef>,
    /// The text of `system_instructions`, put before the system message.
    pub system_instructions: Option<Arc<str>>,
}

impl Prompt {
    /// The template of `name`.
    pub fn by_name(&self, name: &str) -> Option<&TemplateRef> {
        self.templates.get(name)
    }

    /// Renders `input` into a system prompt and messages.
    pub fn render(
        &self,
        input: &Input,
        templates: Option<&Templates>,
    ) -> Result<(Option<String>, Vec<Message>), Error> {
        let render = |template: &TemplateRef, context: &Value| -> Result<String, Error> {
            let templates = templates.ok_or_else(|| {
                Error::Internal(format!(
                    "template `{}` without a template set",
                    template.key
                ))
            })?;
            templates
                .render(&template.key, context)
                .map_err(|e| Error::InvalidRequest(format!("Failed to render a template: {e}")))
        };
        let system = match (self.by_name("system"), &input.system) {
            (Some(t), system) => {
                let context = match (t.text_variable, system) {
                    (Some(var), None) => json!({ var: null }),
                    (Some(var), Some(SystemInput::Text(text))) => json!({ var: text }),
                    (Some(_), Some(SystemInput::Arguments(_))) => {
                        return Err(Error::InvalidRequest(
                            "The system input holds template arguments, but this variant's system template takes text (`system_text`); give the function a `system` schema (`schemas.system.path`) to use arguments".into(),
                        ));
                    }
                    (None, None) => Value::Object(Map::new()),
                    (None, Some(SystemInput::Text(text))) => Value::String(text.clone()),
                    (None, Some(SystemInput::Arguments(a))) => Value::Object(a.clone()),
                };
                Some(render(t, &context)?)
            }
            (None, None) => None,
            (None, Some(SystemInput::Text(text))) => Some(text.clone()),
            (None, Some(SystemInput::Arguments(_))) => {
                return Err(Error::InvalidRequest(
                    "The system input holds template arguments, but there is no system template to render them (send text, or call a function whose variants have a `system` template)".into(),
                ));
            }
        };
        let system = match (&self.system_instructions, system) {
            (Some(instructions), Some(system)) => Some(format!("{instructions}\n\n{system}")),
            (Some(instructions), None) => Some(instructions.to_string()),
            (None, system) => system,
        };
        let mut messages = Vec::with_capacity(input.messages.len());
        for message in &input.messages {
            let role = role_name(message.role);
            let mut content = Vec::with_capacity(message.content.len());
            for block in &message.content {
                content.push(match block {
                    InputBlock::Text(text) => match self.by_name(role) {
                        Some(t) => {
                            let var = t.text_variable.or(text_variable(role)).unwrap_or_default();
                            ContentBlock::Text(render(t, &json!({ var: text }))?)
                        }
                        None => ContentBlock::Text(text.clone()),
                    },
                    InputBlock::Template { name, arguments } => {
                        let Some(t) = self.by_name(name) else {
                            return Err(Error::InvalidRequest(format!(
                                "Template `{name}` not found: this variant has no template named `{name}` (`templates.{name}.path`); send text, or pin a variant that has one"
                            )));
                        };
                        if let Some(var) = t.text_variable {
                            return Err(Error::InvalidRequest(format!(
                                "A message holds arguments for template `{name}`, but this variant's `{name}` template takes text (`{var}`); give the function a schema named `{name}` to use arguments"
                            )));
                        }
                        ContentBlock::Text(render(t, &Value::Object(arguments.clone()))?)
                    }
                    InputBlock::RawText(text) => ContentBlock::Text(text.clone()),
                    InputBlock::Other(block) => block.clone(),
                });
            }
            messages.push(Message {
                role: message.role,
                content,
            });
        }
        Ok((system, messages))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn untemplated_input_passes_text_and_refuses_arguments() {
        let input = Input {
            system: Some(SystemInput::Text("be brief".into())),
            messages: vec![InputMessage {
                role: Role::User,
                content: vec![
                    InputBlock::Text("hi".into()),
                    InputBlock::RawText("raw".into()),
                ],
            }],
        };
        let (system, messages) = input.untemplated().unwrap();
        assert_eq!(system.as_deref(), Some("be brief"));
        assert_eq!(
            messages[0].content,
            vec![
                ContentBlock::Text("hi".into()),
                ContentBlock::Text("raw".into())
            ]
        );
        let input = Input {
            system: Some(SystemInput::Arguments(args(json!({"x": 1})))),
            messages: vec![],
        };
        assert!(matches!(
            input.untemplated(),
            Err(Error::InvalidRequest(m)) if m.contains("no templates")
        ));
    }

    #[test]
    fn schemas_check_arguments_and_text() {
        let schemas = InputSchemas(BTreeMap::from([(
            "user".to_owned(),
            InputSchema {
                key: "user_schema".into(),
                schema: JsonSchema::compile(json!({
                    "type": "object", "required": ["topic"],
                    "properties": {"topic": {"type": "string"}}
                }))
                .unwrap(),
            },
        )]));
        let message = |block| Input {
            system: None,
            messages: vec![InputMessage {
                role: Role::User,
                content: vec![block],
            }],
        };
        let ok = message(InputBlock::Template {
            name: "user".into(),
            arguments: args(json!({"topic": "rust"})),
        });
        assert!(ok.validate(&schemas, |_| true).is_ok());
        let wrong = message(InputBlock::Template {
            name: "user".into(),
            arguments: args(json!({"topic": 7})),
        });
        let err = wrong.validate(&schemas, |_| true).unwrap_err().to_string();
        assert!(
            err.contains("`user_schema`") && err.contains("/topic"),
            "{err}"
        );
        let text = message(InputBlock::Text("plain".into()));
        assert!(text.validate(&schemas, |_| true).is_err());
        let no_template = message(InputBlock::Template {
            name: "other".into(),
            arguments: args(json!({})),
        });
        let err = no_template
            .validate(&schemas, |_| false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no variant of this function has a `other` template"),
            "{err}"
        );
    }
}
