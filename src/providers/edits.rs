//! `extra_body` and `extra_headers`: the edits that apply to one provider attempt.

use serde_json::Value;

use crate::error::Error;
use crate::model_call::{BodyEdit, HeaderEdit};

/// The edits that apply to one provider attempt, in order: the variant's, the provider's, then
/// the request's that target this provider (later ones win).
pub struct Edits<'a> {
    /// Body edits.
    pub body: Vec<&'a BodyEdit>,
    /// Header edits.
    pub headers: Vec<&'a HeaderEdit>,
}

/// Sets (or with `None`, removes) the value at a JSON Pointer, creating objects on the way.
pub fn apply_body_edit(body: &mut Value, edit: &BodyEdit) {
    let tokens: Vec<String> = edit
        .pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        if let Some(v) = &edit.value {
            *body = v.clone();
        }
        return;
    };
    let mut node = body;
    for token in parents {
        node = match node {
            Value::Object(map) => {
                if edit.value.is_none() && !map.contains_key(token) {
                    return;
                }
                map.entry(token.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            {
                Some(v) => v,
                None => return,
            },
            other => {
                if edit.value.is_none() {
                    return;
                }
                *other = Value::Object(Default::default());
                other
                    .as_object_mut()
                    .expect("just made an object")
                    .entry(token.clone())
                    .or_insert(Value::Null)
            }
        };
    }
    match (node, &edit.value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.clone(), v.clone());
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), value) => {
            if let Ok(i) = last.parse::<usize>() {
                match value {
                    Some(v) if i < items.len() => items[i] = v.clone(),
                    Some(v) if i == items.len() => items.push(v.clone()),
                    None if i < items.len() => {
                        items.remove(i);
                    }
                    _ => {}
                }
            } else if last == "-" {
                if let Some(v) = value {
                    items.push(v.clone());
                }
            }
        }
        (other, Some(v)) => {
            let mut map = serde_json::Map::new();
            map.insert(last.clone(), v.clone());
            *other = Value::Object(map);
        }
        (_, None) => {}
    }
}

/// Applies `extra_headers` edits to an outgoing request.
pub fn apply_header_edits(
    headers: &mut http::HeaderMap,
    edits: &[&HeaderEdit],
) -> Result<(), Error> {
    for edit in edits {
        let name = http::HeaderName::from_bytes(edit.name.as_bytes()).map_err(|_| {
            Error::InvalidRequest(format!(
                "`extra_headers`: `{}` is not a valid header name",
                edit.name
            ))
        })?;
        match &edit.value {
            Some(v) => {
                let value = http::HeaderValue::from_str(v).map_err(|_| {
                    Error::InvalidRequest(format!(
                        "`extra_headers`: the value of `{}` is not a valid header value",
                        edit.name
                    ))
                })?;
                headers.insert(name, value);
            }
            None => {
                headers.remove(name);
            }
        }
    }
    Ok(())
}
