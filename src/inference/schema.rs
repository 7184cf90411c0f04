//! JSON Schemas: function input schemas, json functions' output schemas and tool parameters,
//! compiled once (at start-up for config files, per request for inference-time schemas).
//!
//! No `$ref` leaves the document: the validator is built without file or HTTP retrieval, so a
//! schema sent with a request cannot make the gateway read files or call URLs.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// How many rule violations an error message lists before it stops.
const MAX_REPORTED_VIOLATIONS: usize = 5;

/// A compiled JSON Schema and the document it came from.
#[derive(Clone)]
pub struct JsonSchema {
    validator: Arc<jsonschema::Validator>,
    document: Arc<Value>,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.document).finish()
    }
}

impl JsonSchema {
    /// Compiles `document`; the error says which rule of JSON Schema it breaks.
    pub fn compile(document: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&document).map_err(|e| {
            format!(
                "not a valid JSON Schema: {} (at `{}`)",
                e.masked(),
                display_pointer(e.instance_path().as_str())
            )
        })?;
        Ok(Self {
            validator: Arc::new(validator),
            document: Arc::new(document),
        })
    }

    /// Reads and compiles a schema file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))?;
        Self::compile(document).map_err(|e| format!("`{}` is {e}", path.display()))
    }

    /// The schema as written.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Checks `instance`. The error lists each broken rule with where in the instance it broke
    /// (a JSON Pointer; the value itself is left out, so logs carry no prompt content).
    pub fn validate(&self, instance: &Value) -> Result<(), SchemaViolations> {
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        let mut violations = Vec::new();
        let mut more = 0;
        for error in self.validator.iter_errors(instance) {
            if violations.len() < MAX_REPORTED_VIOLATIONS {
                violations.push(format!(
                    "at `{}`: {}",
                    display_pointer(error.instance_path().as_str()),
                    error.masked()
                ));
            } else {
                more += 1;
            }
        }
        Err(SchemaViolations { violations, more })
    }
}

/// Why an instance does not follow a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolations {
    violations: Vec<String>,
    more: usize,
}

impl fmt::Display for SchemaViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.violations.join("; "))?;
        if self.more > 0 {
            write!(f, "; and {} more", self.more)?;
        }
        Ok(())
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_place_and_the_rule_but_not_the_value() {
        let schema = JsonSchema::compile(json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
            "required": ["name"],
            "additionalProperties": false
        }))
        .unwrap();
        assert!(schema.validate(&json!({"name": "Ada", "age": 36})).is_ok());
        let err = schema
            .validate(&json!({"age": -1, "secret": "hunter2"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at `/age`"), "{err}");
        assert!(err.contains("`/`"), "{err}");
        assert!(err.contains("name"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn an_invalid_schema_is_refused() {
        let err = JsonSchema::compile(json!({"type": "no-such-type"})).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }

    #[test]
    fn remote_references_are_not_fetched() {
        assert!(JsonSchema::compile(json!({"$ref": "http://127.0.0.1:9/x.json"})).is_err());
        assert!(JsonSchema::compile(json!({"$ref": "file:///etc/passwd"})).is_err());
    }
}
