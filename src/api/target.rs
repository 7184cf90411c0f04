//! What the `model` field of the agent-facing routes (`/openai/v1/responses`,
//! `/anthropic/v1/messages`) names.
//!
//! Coding agents send bare names (`gpt-5-codex`, `claude-sonnet-4-5`), so besides TensorZero's
//! prefixed forms a bare name resolves, in order, to a configured model of that name, a
//! function of that name, or a shorthand (`openai::gpt-5`); anything else is a 404 that says
//! how to configure it.

use crate::error::Error;
use crate::inference::Engine;

/// `tensorzero::function_name::F`.
pub(super) const FUNCTION_PREFIX: &str = "tensorzero::function_name::";
/// `tensorzero::model_name::M`.
pub(super) const MODEL_PREFIX: &str = "tensorzero::model_name::";

/// What a request's `model` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// A function.
    Function(String),
    /// A model (configured or shorthand).
    Model(String),
}

impl Target {
    /// The `function_name` and `model_name` of an inference request for this target.
    pub(super) fn into_names(self) -> (Option<String>, Option<String>) {
        match self {
            Target::Function(f) => (Some(f), None),
            Target::Model(m) => (None, Some(m)),
        }
    }
}

/// Resolves `model` as the agent routes do.
pub(super) fn resolve(model: &str, engine: &Engine) -> Result<Target, Error> {
    let prefixed = |name: &str| {
        if name.is_empty() {
            Err(Error::InvalidRequest(
                "the function or model name after the `tensorzero::` prefix is empty".into(),
            ))
        } else {
            Ok(name.to_owned())
        }
    };
    if let Some(f) = model.strip_prefix(FUNCTION_PREFIX) {
        return prefixed(f).map(Target::Function);
    }
    if let Some(m) = model.strip_prefix(MODEL_PREFIX) {
        return prefixed(m).map(Target::Model);
    }
    if model.is_empty() {
        return Err(Error::InvalidRequest("`model` is empty".into()));
    }
    if engine.has_model(model) {
        Ok(Target::Model(model.to_owned()))
    } else if engine.has_function(model) {
        Ok(Target::Function(model.to_owned()))
    } else if engine.knows_model(model) {
        Ok(Target::Model(model.to_owned()))
    } else {
        Err(Error::UnknownModel(model.to_owned()))
    }
}
