//! The request type of the model-call stack.

use std::sync::Arc;

use http::Extensions;

/// One model call as it travels down the model-call stack: the payload (shared, so that
/// retries and fallbacks clone it for free) and typed extensions that layers read and write.
#[derive(Debug)]
pub struct Call<T> {
    /// What to ask the model.
    pub payload: Arc<T>,
    /// Per-call data layers pass each other (see [`crate::ext`]).
    pub extensions: Extensions,
}

impl<T> Clone for Call<T> {
    fn clone(&self) -> Self {
        Self {
            payload: self.payload.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

impl<T> Call<T> {
    /// A call with no extensions.
    pub fn new(payload: T) -> Self {
        Self {
            payload: Arc::new(payload),
            extensions: Extensions::new(),
        }
    }
}

/// What the layers need to know about a payload.
pub trait Payload {
    /// Whether the answer is streamed (it selects the streaming timeouts).
    fn is_streaming(&self) -> bool;
}
