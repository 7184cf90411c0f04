//! Credential injection: resolve the provider's key for this call and hand it on.
//!
//! # Layer placement
//!
//! Inside fallback, directly above the provider adapter: each provider of a model has its own
//! key location, so the key is chosen per attempt. It writes [`ProviderKey`] into the call's
//! extensions and reads [`DynamicCredentials`] for `dynamic::` locations. It never touches the
//! client's own `Authorization`: that header is not part of a model call at all.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::credentials::{CredentialLayer, CredentialSource, MissingCredential};
//! use switchyard_layers::{call::Call, ext::ProviderKey, Secret};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio_test_block_on(async {
//! let layer = CredentialLayer::new(CredentialSource::Static(Secret::new("sk-1")), "openai");
//! let svc = layer.layer(tower::service_fn(|call: Call<()>| async move {
//!     let key = call.extensions.get::<ProviderKey>().unwrap().0.clone();
//!     Ok::<_, MissingCredential>(key.unwrap().expose().to_owned())
//! }));
//! assert_eq!(svc.oneshot(Call::new(())).await.unwrap(), "sk-1");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready};
use tower::{Layer, Service};

use crate::call::Call;
use crate::ext::{DynamicCredentials, ProviderKey};
use crate::secret::Secret;

/// Where a provider's key comes from, once start-up has read what it can.
#[derive(Clone, Debug)]
pub enum CredentialSource {
    /// A key read at start-up (environment variable or file).
    Static(Secret),
    /// `credentials[NAME]` of each request.
    Dynamic(String),
    /// Send no key.
    None,
    /// Try the first; when it cannot be had, use the second.
    WithFallback(Box<CredentialSource>, Box<CredentialSource>),
    /// A key that could not be loaded: calls fail with this reason (names only, no values).
    Missing(String),
}

impl CredentialSource {
    /// The key for one call; `Ok(None)` means send no key.
    pub fn resolve(&self, dynamic: Option<&DynamicCredentials>) -> Result<Option<Secret>, String> {
        self.resolve_with_origin(dynamic).map(|(key, _)| key)
    }

    /// The key for one call and where it came from: a key from the request may go where the
    /// request says; one from the configuration only where the configuration says.
    pub fn resolve_with_origin(
        &self,
        dynamic: Option<&DynamicCredentials>,
    ) -> Result<(Option<Secret>, KeyOrigin), String> {
        match self {
            CredentialSource::Dynamic(name) => dynamic
                .and_then(|d| d.0.get(name))
                .cloned()
                .map(|key| (Some(key), KeyOrigin::Request))
                .ok_or_else(|| {
                    format!("Dynamic api key `{name}` is missing; send it in the request's `credentials` map")
                }),
            CredentialSource::WithFallback(default, fallback) => {
                match default.resolve_with_origin(dynamic) {
                    Ok(found) => Ok(found),
                    Err(reason) => {
                        tracing::warn!(
                            "default credential unavailable ({reason}); using the fallback"
                        );
                        fallback.resolve_with_origin(dynamic)
                    }
                }
            }
            CredentialSource::Static(s) => Ok((Some(s.clone()), KeyOrigin::Configuration)),
            CredentialSource::None => Ok((None, KeyOrigin::Configuration)),
            CredentialSource::Missing(reason) => Err(reason.clone()),
        }
    }
}

/// Where a resolved key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The configuration (an environment variable, a file, or no key at all).
    Configuration,
    /// The request's `credentials` map.
    Request,
}

/// A call needed a key that could not be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingCredential {
    /// Who needed it (e.g. "`openai` of model `gpt`").
    pub provider: Arc<str>,
    /// What is missing, by name.
    pub reason: String,
}

impl fmt::Display for MissingCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "API key missing for provider {}: {}",
            self.provider, self.reason
        )
    }
}

impl std::error::Error for MissingCredential {}

/// Builds [`Credentials`] services.
#[derive(Clone, Debug)]
pub struct CredentialLayer {
    source: Arc<CredentialSource>,
    provider: Arc<str>,
}

impl CredentialLayer {
    /// `provider` labels error messages.
    pub fn new(source: CredentialSource, provider: impl Into<Arc<str>>) -> Self {
        Self {
            source: Arc::new(source),
            provider: provider.into(),
        }
    }
}

impl<S> Layer<S> for CredentialLayer {
    type Service = Credentials<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Credentials {
            inner,
            source: self.source.clone(),
            provider: self.provider.clone(),
        }
    }
}

/// Resolves the key and writes [`ProviderKey`] before calling the provider.
#[derive(Clone, Debug)]
pub struct Credentials<S> {
    inner: S,
    source: Arc<CredentialSource>,
    provider: Arc<str>,
}

impl<S, T> Service<Call<T>> for Credentials<S>
where
    S: Service<Call<T>>,
    S::Error: From<MissingCredential>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call<T>) -> Self::Future {
        match self
            .source
            .resolve_with_origin(call.extensions.get::<DynamicCredentials>())
        {
            Ok((key, origin)) => {
                call.extensions.insert(ProviderKey(key));
                call.extensions.insert(origin);
                Either::Left(self.inner.call(call))
            }
            Err(reason) => Either::Right(futures_util::future::ready(Err(MissingCredential {
                provider: self.provider.clone(),
                reason,
            }
            .into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tower_test::mock;

    fn with_dynamic(pairs: &[(&str, &str)]) -> Call<()> {
        let mut call = Call::new(());
        let map: BTreeMap<String, Secret> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(*v)))
            .collect();
        call.extensions.insert(DynamicCredentials(Arc::new(map)));
        call
    }

    #[tokio::test]
    async fn static_keys_are_injected() {
        let (mut svc, mut handle) = mock::spawn_layer::<Call<()>, (), _>(CredentialLayer::new(
            CredentialSource::Static(Secret::new("k")),
            "p",
        ));
        handle.allow(1);
        tokio_test::assert_ready_ok!(svc.poll_ready());
        let fut = svc.call(Call::new(()));
        let (call, send) = handle.next_request().await.unwrap();
        assert_eq!(
            call.extensions
                .get::<ProviderKey>()
                .unwrap()
                .0
                .as_ref()
                .unwrap()
                .expose(),
            "k"
        );
        send.send_response(());
        fut.await.unwrap();
    }

    #[tokio::test]
    async fn dynamic_keys_come_from_the_call_and_a_missing_one_is_an_error() {
        let (mut svc, mut handle) = mock::spawn_layer::<Call<()>, (), _>(CredentialLayer::new(
            CredentialSource::Dynamic("customer".into()),
            "`p` of model `m`",
        ));
        handle.allow(2);
        tokio_test::assert_ready_ok!(svc.poll_ready());
        let err = svc.call(Call::new(())).await.unwrap_err();
        let err = err
            .downcast_ref::<MissingCredential>()
            .expect("a MissingCredential");
        assert_eq!(
            err.reason,
            "Dynamic api key `customer` is missing; send it in the request's `credentials` map"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "API key missing for provider `p` of model `m`: {}",
                err.reason
            )
        );

        tokio_test::assert_ready_ok!(svc.poll_ready());
        let fut = svc.call(with_dynamic(&[("customer", "c-1")]));
        let (call, send) = handle.next_request().await.unwrap();
        assert_eq!(
            call.extensions
                .get::<ProviderKey>()
                .unwrap()
                .0
                .as_ref()
                .unwrap()
                .expose(),
            "c-1"
        );
        send.send_response(());
        fut.await.unwrap();
    }

    #[test]
    fn fallback_and_none() {
        let src = CredentialSource::WithFallback(
            Box::new(CredentialSource::Dynamic("x".into())),
            Box::new(CredentialSource::None),
        );
        assert_eq!(src.resolve(None).unwrap(), None);
        let src = CredentialSource::WithFallback(
            Box::new(CredentialSource::Missing(
                "Environment variable `A` is missing".into(),
            )),
            Box::new(CredentialSource::Static(Secret::new("b"))),
        );
        assert_eq!(src.resolve(None).unwrap().unwrap().expose(), "b");
    }
}
