//! The gate every `/v1` request passes before its handler: the concurrency cap, the early
//! 413 of an oversized body, authentication and the rate limit, as one tower service.
//!
//! As four `from_fn` layers each request boxed a clone of the chain inside each layer and a
//! future per layer, and moved those futures about as they were polled (~15 allocations
//! and ~5 % of Trove's CPU in `memmove` in a claim storm). Here a request that needs no
//! waiting (an admin's token verified before: a claim storm's case) goes straight on to the
//! handler's future; only one that must wait (a token not seen before, a player's bucket in
//! Redis, an oversized body to read) boxes one future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::auth::Authenticator;
use super::body;
use super::error::ApiError;
use super::limits::Limit;

/// What one router group's gate checks, shared by every request through it.
pub struct Gate {
    /// `TROVE_MAX_CONCURRENT_REQUESTS`, shared by all groups.
    pub permits: Arc<Semaphore>,
    /// `TROVE_BODY_LIMIT`.
    pub body_limit: usize,
    pub auth: Authenticator,
    pub limit: Limit,
}

/// Puts a [`Gate`] in front of a group's routes.
#[derive(Clone)]
pub struct GateLayer(pub Arc<Gate>);

impl<S> Layer<S> for GateLayer {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            gate: Arc::clone(&self.0),
            inner,
        }
    }
}

/// A route behind its group's gate.
#[derive(Clone)]
pub struct Gated<S> {
    gate: Arc<Gate>,
    inner: S,
}

impl<S> Service<Request> for Gated<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let gate = &self.gate;
        // Over the cap the answer is an immediate 503, never a queue of waiting sockets.
        let Ok(permit) = Arc::clone(&gate.permits).try_acquire_owned() else {
            return GateFuture::boxed(None, std::future::ready(Ok(overloaded())));
        };
        if let Some(length) = body::oversized(&req, gate.body_limit) {
            let refused = async move { Ok(body::refuse_oversized(req, length).await) };
            return GateFuture::boxed(Some(permit), refused);
        }
        match gate.auth.at_once(&req) {
            Ok(found) if Limit::exempt(&found) => {
                gate.auth.record(&mut req, found);
                GateFuture {
                    inner: Either::Left(self.inner.call(req)),
                    _permit: Some(permit),
                }
            }
            found => {
                // The ready service goes with the future; a fresh clone stays for the next.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let gate = Arc::clone(gate);
                GateFuture::boxed(Some(permit), async move {
                    let found = match found {
                        Ok(found) => found,
                        Err(token) => gate.auth.verify(&token).await,
                    };
                    let mut req = match gate.limit.check(&found, req).await {
                        Ok(req) => req,
                        Err(refused) => return Ok(refused),
                    };
                    gate.auth.record(&mut req, found);
                    inner.call(req).await
                })
            }
        }
    }
}

/// 503 `overloaded` with `Retry-After`.
fn overloaded() -> Response {
    let mut resp = ApiError::http(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many requests in flight on this instance (TROVE_MAX_CONCURRENT_REQUESTS)",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

pin_project! {
    /// The handler's future, or a boxed one that waits first; holds the request's permit
    /// until it is dropped.
    pub struct GateFuture<F> {
        #[pin]
        inner: Either<F, BoxFuture<'static, Result<Response, Infallible>>>,
        _permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F> GateFuture<F> {
    fn boxed(
        permit: Option<OwnedSemaphorePermit>,
        fut: impl Future<Output = Result<Response, Infallible>> + Send + 'static,
    ) -> Self {
        GateFuture {
            inner: Either::Right(Box::pin(fut)),
            _permit: permit,
        }
    }
}

impl<F> Future for GateFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
