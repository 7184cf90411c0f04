//! A provider's side of the upstream exchange: sending through [`crate::upstream::Upstream`]
//! with the call's trace, and the provider's own error for a refusal; and the credential
//! headers the codecs write.

use bytes::Bytes;

use super::{CallContext, ProviderSpec};
use crate::error::Error;
use crate::upstream::{Peer, Refused};
use switchyard_layers::Secret;

/// Sends one provider request; a non-2xx answer becomes the provider's error (its status, its
/// message and any `Retry-After`), an unreachable one a failure naming the URL.
pub async fn send(
    provider: &ProviderSpec,
    cx: &CallContext<'_>,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Error> {
    let request = match cx.tap.as_ref().filter(|tap| tap.records()) {
        Some(tap) => {
            use http_body_util::BodyExt;
            let (parts, body) = request.into_parts();
            // A `Full` body is already in memory: collecting it only takes its bytes.
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            tap.request(&bytes);
            http::Request::from_parts(parts, http_body_util::Full::new(bytes))
        }
        None => request,
    };
    cx.upstream
        .exchange(request, cx.trace)
        .await
        .map_err(|refused| provider.refused(refused))
}

impl ProviderSpec {
    /// Who this provider's exchanges are with.
    pub fn peer(&self) -> Peer {
        Peer::Provider {
            provider_type: self.provider_type.as_str(),
            name: self.name.clone(),
            url: None,
        }
    }

    /// The provider's error for an exchange that produced no answer.
    pub fn refused(&self, refused: Refused) -> Error {
        self.peer().refused(refused)
    }
}

/// Marks a key as sensitive so that no header dump can show it.
pub fn sensitive_header(value: &str) -> Result<http::HeaderValue, Error> {
    let mut v = http::HeaderValue::from_str(value).map_err(|_| {
        Error::InvalidRequest(
            "a credential contains characters that cannot go in an HTTP header".into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A key as an `Authorization: Bearer` value.
pub fn bearer(key: &Secret) -> Result<http::HeaderValue, Error> {
    sensitive_header(&format!("Bearer {}", key.expose()))
}
