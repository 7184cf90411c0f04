//! Whether a provider's stream has ended, and whose failure ends it: the state every stream
//! reader (OpenAI chat and Responses, Anthropic, Bedrock) keeps.

use crate::error::{Error, Fault};
use crate::model_call::ModelChunk;

/// Whether a provider's stream has ended, and whose it is: a failure ends it with an error that
/// names the provider. Every stream reader keeps one.
#[derive(Debug)]
pub struct StreamStatus {
    finished: bool,
    provider_type: &'static str,
    provider: String,
}

impl StreamStatus {
    /// A running stream of `provider`.
    pub fn of(provider: &super::ProviderSpec) -> Self {
        Self {
            finished: false,
            provider_type: provider.provider_type.as_str(),
            provider: provider.name.to_string(),
        }
    }

    /// Whether the stream has ended (nothing more is read from it).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Ends the stream.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Ends the stream with `fault`, as the provider's failure.
    pub fn fail(&mut self, fault: impl Into<Fault>) -> Option<Result<ModelChunk, Error>> {
        self.finished = true;
        Some(Err(Error::provider_failure(
            self.provider_type,
            &self.provider,
            fault,
        )))
    }
}
