//! Typed request and response extensions: the only way layers and handlers pass data to each
//! other.
//!
//! | extension | written by | read by |
//! |---|---|---|
//! | [`RequestId`] (request) | `request_log` | handlers (error bodies, upstream `x-request-id`) |
//! | [`InferenceInfo`] (response) | inference handlers | `request_log` (the per-request log line) |

use std::fmt;
use std::sync::Arc;

/// The id of one inbound request: the client's `x-request-id` when it sent a usable one,
/// otherwise a fresh UUIDv7. It is echoed in the response's `x-request-id` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// Wraps an id that has already been checked to be a safe header value.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an inference handler tells the request log about the call it made.
///
/// Handlers put this in the *response* extensions; the log line is written when the response
/// body ends, so a stream's line carries its full duration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InferenceInfo {
    /// The model the request resolved to (configured name or shorthand).
    pub model: Option<Arc<str>>,
    /// The provider that answered (the last one tried when all failed).
    pub provider: Option<Arc<str>>,
    /// The function the request named, if any.
    pub function: Option<Arc<str>>,
    /// The variant that was used, if any.
    pub variant: Option<Arc<str>>,
}
