//! Relay-or-skip routing: a model call goes to the relay, or to the model's own providers.
//!
//! # Layer placement
//!
//! Below retries and the model timeout (both also cover relayed calls, as in the TensorZero
//! Gateway), above fallback (a relayed call has no providers of ours). The choice is made once
//! per model when the stack is built: a relay is configured and the model does not set
//! `skip_relay = true`.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::route::RelayOrSkip;
//!
//! let relay = tower::service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>("relayed") });
//! let direct = tower::service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>("direct") });
//! let route = RelayOrSkip::new(Some(relay), false, direct);
//! assert!(route.is_relayed());
//! ```

use std::task::{Context, Poll};

use futures_util::future::Either;
use tower::Service;

/// Sends every call to the relay or to the direct path.
#[derive(Clone, Debug)]
pub enum RelayOrSkip<R, D> {
    /// Relay mode, and the model does not skip it.
    Relay(R),
    /// No relay, or `skip_relay = true`.
    Direct(D),
}

impl<R, D> RelayOrSkip<R, D> {
    /// Chooses the route: the relay when there is one and the model does not skip it.
    pub fn new(relay: Option<R>, skip_relay: bool, direct: D) -> Self {
        match relay {
            Some(relay) if !skip_relay => RelayOrSkip::Relay(relay),
            _ => RelayOrSkip::Direct(direct),
        }
    }

    /// Whether calls go to the relay.
    pub fn is_relayed(&self) -> bool {
        matches!(self, RelayOrSkip::Relay(_))
    }
}

impl<R, D, Req> Service<Req> for RelayOrSkip<R, D>
where
    R: Service<Req>,
    D: Service<Req, Response = R::Response, Error = R::Error>,
{
    type Response = R::Response;
    type Error = R::Error;
    type Future = Either<R::Future, D::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            RelayOrSkip::Relay(r) => r.poll_ready(cx),
            RelayOrSkip::Direct(d) => d.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self {
            RelayOrSkip::Relay(r) => Either::Left(r.call(req)),
            RelayOrSkip::Direct(d) => Either::Right(d.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn answer(
        s: &'static str,
    ) -> impl Service<(), Response = &'static str, Error = (), Future = impl Send> + Clone {
        tower::service_fn(move |_: ()| async move { Ok::<_, ()>(s) })
    }

    #[tokio::test]
    async fn routes_by_relay_presence_and_skip_relay() {
        assert_eq!(
            RelayOrSkip::new(Some(answer("relay")), false, answer("direct"))
                .oneshot(())
                .await,
            Ok("relay")
        );
        assert_eq!(
            RelayOrSkip::new(Some(answer("relay")), true, answer("direct"))
                .oneshot(())
                .await,
            Ok("direct")
        );
        assert_eq!(
            RelayOrSkip::<_, _>::new(
                None::<
                    tower::util::ServiceFn<fn(()) -> std::future::Ready<Result<&'static str, ()>>>,
                >,
                false,
                answer("direct")
            )
            .oneshot(())
            .await,
            Ok("direct")
        );
    }
}
