//! Typed request and response extensions: the only way layers and handlers pass data to each
//! other.
//!
//! | extension | on | written by | read by |
//! |---|---|---|---|
//! | [`RequestId`] | HTTP request | `request_log` | handlers |
//! | [`InferenceInfo`] | HTTP response | inference handlers | `request_log` (the log line) |
//! | [`DynamicCredentials`] | model call | inference handlers | `credentials`, the relay client |
//! | [`ProviderKey`] | model call | `credentials` | provider adapters, the relay client |
//! | [`Tags`] | model call | inference handlers | the relay client (rate limits, later) |
//! | [`ClientAddr`] | HTTP request | the server (per connection) | `auth` (the brute-force shield) |
//! | [`ApiKeyPublicId`] | HTTP request | `auth` | handlers (tag, rate-limit scope) |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::secret::Secret;

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

/// The request's `credentials` map (`tensorzero::credentials` on the OpenAI route): fills
/// `dynamic::NAME` key locations, and is forwarded whole to a relay.
#[derive(Clone, Debug, Default)]
pub struct DynamicCredentials(pub Arc<BTreeMap<String, Secret>>);

/// The key the credentials layer resolved for the provider about to be called (`None`: send no
/// key).
#[derive(Clone, Debug)]
pub struct ProviderKey(pub Option<Secret>);

/// The request's user tags (never keys starting with `tensorzero::`).
#[derive(Clone, Debug, Default)]
pub struct Tags(pub Arc<BTreeMap<String, String>>);

/// The address of the client's TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The public id of the API key that authenticated the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyPublicId(pub Arc<str>);

/// The route a response belongs to (`/inference`, ...), set by the router for metrics: a fixed
/// set of names, never the raw path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteName(pub &'static str);
