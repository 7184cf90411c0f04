//! The last line of defence: a panic while serving a request becomes a 500 answer instead of a
//! connection that closes with no reply.
//!
//! # Layer placement
//!
//! Right inside the request log and the metrics, so that a rescued request is logged and
//! counted with status 500 like any other failure, and around everything that runs per request
//! (auth, routing, handlers, model calls), so that nothing below can end a connection silently.
//! A panic is a bug: the answer says so generically, and the log line has the panic's message.
//!
//! ```
//! use switchyard_layers::rescue::RescueLayer;
//! let layer = RescueLayer::new(|_uri: &http::Uri| http::Response::new(String::from("bug")));
//! # let _ = layer;
//! ```

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use http::{Request, Response, Uri};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// Makes the answer to a request (known by its URI) whose handling panicked.
pub trait Respond<B>: Clone {
    /// The answer.
    fn respond(&self, uri: &Uri) -> Response<B>;
}

impl<B, F: Fn(&Uri) -> Response<B> + Clone> Respond<B> for F {
    fn respond(&self, uri: &Uri) -> Response<B> {
        self(uri)
    }
}

/// Builds [`Rescue`] services; `respond` makes the answer for a request (by its URI) that
/// panicked.
#[derive(Clone)]
pub struct RescueLayer<F> {
    respond: F,
}

impl<F> RescueLayer<F> {
    /// A layer answering panics with `respond(uri)`.
    pub fn new(respond: F) -> Self {
        Self { respond }
    }
}

impl<S, F: Clone> Layer<S> for RescueLayer<F> {
    type Service = Rescue<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Rescue {
            inner,
            respond: self.respond.clone(),
        }
    }
}

/// Turns a panic of the inner service (in `call` or in its future) into `respond(uri)`.
#[derive(Clone)]
pub struct Rescue<S, F> {
    inner: S,
    respond: F,
}

impl<S, F, ReqB, ResB> Service<Request<ReqB>> for Rescue<S, F>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    F: Respond<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RescueFuture<S::Future, F, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let uri = req.uri().clone();
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => RescueFuture::Running {
                future: AssertUnwindSafe(future).catch_unwind(),
                uri: Some(uri),
                respond: self.respond.clone(),
            },
            Err(panic) => {
                log_panic(&uri, panic.as_ref());
                RescueFuture::Panicked {
                    response: Some(self.respond.respond(&uri)),
                }
            }
        }
    }
}

pin_project! {
    /// The future of [`Rescue`].
    #[project = RescueProj]
    #[allow(missing_docs)] // pin_project_lite takes no docs on enum fields
    pub enum RescueFuture<Fut, F, ResB> {
        /// The inner service's future, watched for panics.
        Running {
            #[pin]
            future: CatchUnwind<AssertUnwindSafe<Fut>>,
            uri: Option<Uri>,
            respond: F,
        },
        /// `call` itself panicked.
        Panicked {
            response: Option<Response<ResB>>,
        },
    }
}

impl<Fut, F, ResB, E> Future for RescueFuture<Fut, F, ResB>
where
    Fut: Future<Output = Result<Response<ResB>, E>>,
    F: Respond<ResB>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RescueProj::Running {
                future,
                uri,
                respond,
            } => match future.poll(cx) {
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                Poll::Ready(Err(panic)) => {
                    let uri = uri.take().unwrap_or_default();
                    log_panic(&uri, panic.as_ref());
                    Poll::Ready(Ok(respond.respond(&uri)))
                }
                Poll::Pending => Poll::Pending,
            },
            RescueProj::Panicked { response } => Poll::Ready(Ok(response
                .take()
                .expect("a rescue future is not polled after it completes"))),
        }
    }
}

fn log_panic(uri: &Uri, panic: &(dyn Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(
        path = uri.path(),
        panic = message,
        "a bug: serving this request panicked; it is answered with 500"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn respond(_: &Uri) -> Response<&'static str> {
        let mut r = Response::new("rescued");
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    }

    #[tokio::test]
    async fn panics_in_the_future_become_the_rescue_answer() {
        let svc = RescueLayer::new(respond).layer(tower::service_fn(|_req: Request<()>| async {
            let n: Option<u8> = None;
            Ok::<_, std::convert::Infallible>(Response::new(if n.is_none() {
                panic!("boom")
            } else {
                "never"
            }))
        }));
        let r = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(*r.body(), "rescued");
    }

    #[tokio::test]
    async fn panics_in_call_become_the_rescue_answer() {
        #[derive(Clone)]
        struct Bad;
        impl Service<Request<()>> for Bad {
            type Response = Response<&'static str>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                panic!("boom in call")
            }
        }
        let r = RescueLayer::new(respond)
            .layer(Bad)
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
    }
}
