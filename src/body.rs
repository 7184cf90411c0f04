//! The response body type every handler returns, and helpers to build it.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// A response body: a whole buffer or a stream of SSE events. Errors never travel in the body;
/// a stream reports them as events. (Unsync because provider streams are `Send` only.)
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}
