//! OpenAI chat messages and tools, turned into the gateway's input.

use super::*;

pub(super) fn convert_messages(messages: &[Value]) -> Result<Input, Error> {
    let bad = |i: usize, m: &str| Error::InvalidOpenAiRequest(format!("`messages[{i}]`: {m}"));
    let mut system_texts: Vec<String> = Vec::new();
    let mut system_arguments: Option<Map<String, Value>> = None;
    let mut out: Vec<InputMessage> = Vec::new();
    let mut tool_names: BTreeMap<String, String> = BTreeMap::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(i, "needs a `role`"))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                let blocks = content_blocks(content, "system").map_err(|e| bad(i, &e))?;
                for block in blocks {
                    match block {
                        InputBlock::Text(t) | InputBlock::RawText(t) => system_texts.push(t),
                        InputBlock::Template { name, arguments } if name == "system" => {
                            if system_arguments.replace(arguments).is_some() {
                                return Err(bad(
                                    i,
                                    "only one system message may hold template arguments",
                                ));
                            }
                        }
                        InputBlock::Template { name, .. } => {
                            return Err(bad(
                                i,
                                &format!(
                                    "a system message can only fill the `system` template, not `{name}`"
                                ),
                            ));
                        }
                        InputBlock::Other(_) => {
                            return Err(bad(
                                i,
                                "a system message's content must be text or a `tensorzero::template` block",
                            ));
                        }
                    }
                }
            }
            "user" => {
                if content.is_null() {
                    return Err(bad(i, "a user message needs `content`"));
                }
                out.push(InputMessage {
                    role: Role::User,
                    content: content_blocks(content, "user").map_err(|e| bad(i, &e))?,
                });
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if !content.is_null() {
                    for block in content_blocks(content, "assistant").map_err(|e| bad(i, &e))? {
                        match &block {
                            InputBlock::Text(t) if t.is_empty() => {}
                            InputBlock::Other(_) => {
                                return Err(bad(
                                    i,
                                    "an assistant message's content must be text or template blocks",
                                ));
                            }
                            _ => blocks.push(block),
                        }
                    }
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let id = call
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(i, "a tool call needs an `id`"))?;
                    let f = call
                        .get("function")
                        .ok_or_else(|| bad(i, "a tool call needs a `function`"))?;
                    let name = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(i, "a tool call needs a `function.name`"))?;
                    let arguments = match f.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "{}".to_owned(),
                    };
                    tool_names.insert(id.to_owned(), name.to_owned());
                    blocks.push(InputBlock::Other(ContentBlock::ToolCall(ToolCall {
                        id: id.to_owned(),
                        name: name.to_owned(),
                        arguments,
                    })));
                }
                out.push(InputMessage {
                    role: Role::Assistant,
                    content: blocks,
                });
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(i, "a tool message needs a `tool_call_id`"))?;
                let result = text_content(content)
                    .ok_or_else(|| bad(i, "a tool message's content must be text"))?;
                let name = tool_names.get(id).cloned().unwrap_or_default();
                out.push(InputMessage {
                    role: Role::User,
                    content: vec![InputBlock::Other(ContentBlock::ToolResult(ToolResult {
                        id: id.to_owned(),
                        name,
                        result,
                    }))],
                });
            }
            other => {
                return Err(bad(
                    i,
                    &format!(
                        "unknown role `{other}` (use system, developer, user, assistant or tool)"
                    ),
                ));
            }
        }
    }
    let system = match (system_arguments, system_texts.is_empty()) {
        (Some(arguments), true) => Some(SystemInput::Arguments(arguments)),
        (Some(_), false) => {
            return Err(Error::InvalidOpenAiRequest(
                "system messages hold both text and template arguments; send one or the other"
                    .into(),
            ));
        }
        (None, true) => None,
        (None, false) => Some(SystemInput::Text(system_texts.join("\n"))),
    };
    Ok(Input {
        system,
        messages: out,
    })
}

/// Text content: a string, or a list of text parts joined.
pub(super) fn text_content(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join("")),
        _ => None,
    }
}

/// Message content as input blocks: a string, or a list of parts (`text`, with `text` or
/// `tensorzero::arguments` for the `role`'s template; `tensorzero::raw_text`;
/// `tensorzero::template`; `image_url`; `file`).
pub(super) fn content_blocks(content: &Value, role: &str) -> Result<Vec<InputBlock>, String> {
    let arguments = |v: Option<&Value>, what: &str| match v {
        Some(Value::Object(map)) => Ok(map.clone()),
        _ => Err(format!("{what} needs an object of template arguments")),
    };
    match content {
        Value::String(s) => Ok(vec![InputBlock::Text(s.clone())]),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => match (p.get("text"), p.get("tensorzero::arguments")) {
                    (Some(Value::String(t)), None) => Ok(InputBlock::Text(t.clone())),
                    (None, Some(a)) => Ok(InputBlock::Template {
                        name: role.to_owned(),
                        arguments: arguments(Some(a), "a text part with `tensorzero::arguments`")?,
                    }),
                    _ => Err(
                        "a text part needs a string `text` (or `tensorzero::arguments`)".to_owned(),
                    ),
                },
                Some("tensorzero::raw_text") => p
                    .get("value")
                    .and_then(Value::as_str)
                    .map(|t| InputBlock::RawText(t.to_owned()))
                    .ok_or_else(|| "a raw_text part needs `value`".to_owned()),
                Some("tensorzero::template") => Ok(InputBlock::Template {
                    name: p
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| "a `tensorzero::template` part needs a `name`".to_owned())?
                        .to_owned(),
                    arguments: arguments(p.get("arguments"), "a `tensorzero::template` part")?,
                }),
                Some("image_url") => {
                    let url = p
                        .get("image_url")
                        .and_then(|i| i.get("url"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| "an image_url part needs `image_url.url`".to_owned())?;
                    Ok(InputBlock::Other(ContentBlock::File(file_from_url(url))))
                }
                Some("file") => {
                    let data = p
                        .get("file")
                        .and_then(|f| f.get("file_data"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            "a file part needs `file.file_data` (a data: URL)".to_owned()
                        })?;
                    Ok(InputBlock::Other(ContentBlock::File(file_from_url(data))))
                }
                Some(other) => Err(format!("content parts of type `{other}` are not supported")),
                None => Err("every content part needs a `type`".to_owned()),
            })
            .collect(),
        Value::Null => Err("the message needs `content`".to_owned()),
        _ => Err("`content` must be a string or a list of parts".to_owned()),
    }
}

pub(in crate::api) fn file_from_url(url: &str) -> FileInput {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((mime, data)) = rest.split_once(";base64,") {
            return FileInput::Base64 {
                mime_type: mime.to_owned(),
                data: data.to_owned(),
            };
        }
    }
    FileInput::Url {
        url: url.to_owned(),
        mime_type: None,
    }
}

pub(super) fn tool_def(i: usize, tool: &Value) -> Result<ToolDef, Error> {
    let bad = |m: &str| Error::InvalidOpenAiRequest(format!("`tools[{i}]`: {m}"));
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(bad("only `type: \"function\"` tools are supported"));
    }
    let f = tool
        .get("function")
        .ok_or_else(|| bad("needs a `function`"))?;
    Ok(ToolDef {
        name: f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("needs `function.name`"))?
            .to_owned(),
        description: f
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        parameters: f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
        strict: f.get("strict").and_then(Value::as_bool).unwrap_or(false),
    })
}

pub(super) fn tool_choice(v: &Value) -> Result<ToolChoice, Error> {
    match v {
        Value::String(s) if s == "none" => Ok(ToolChoice::None),
        Value::String(s) if s == "auto" => Ok(ToolChoice::Auto),
        Value::String(s) if s == "required" => Ok(ToolChoice::Required),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Specific(n.to_owned()))
            .ok_or_else(|| Error::InvalidOpenAiRequest("`tool_choice` object needs `function.name`".into())),
        _ => Err(Error::InvalidOpenAiRequest(
            "`tool_choice` must be `none`, `auto`, `required` or `{\"type\": \"function\", \"function\": {\"name\": ...}}`".into(),
        )),
    }
}
