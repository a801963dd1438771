//! What every request passes through first: a request id, a tracing span carrying it,
//! HTTP metrics by route template, and the JSON error shape.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{self, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::BoxError;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::Instrument;

use super::error::json_errors;
use crate::metrics::Metrics;

pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    static CURRENT_ID: Arc<str>;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    CURRENT_ID.try_with(Arc::clone).ok()
}

/// The caller's `X-Request-Id` when it is a sane token (a proxy such as nginx may set one,
/// so one id follows the request through every hop), else a new UUIDv7.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(
            || {
                let mut buf = uuid::Uuid::encode_buffer();
                Arc::from(&*crate::ids::uuid_v7().hyphenated().encode_lower(&mut buf))
            },
            Arc::from,
        )
}

/// A bounded method label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The outermost layer: runs the request inside a span and a task-local holding its id (so
/// error bodies and log lines carry it), echoes the id as `X-Request-Id`, and counts the
/// request by its route template (never the raw path: label sets stay bounded). A plain
/// service with its own future: as a `from_fn` layer each request boxed a clone of the
/// whole router and two futures.
#[derive(Clone)]
pub struct ObserveLayer(pub Metrics);

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            metrics: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    metrics: Metrics,
    inner: S,
}

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = http::Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(req.headers());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = method_label(req.method());
        let span = tracing::info_span!(
            "request",
            id = %id,
            method,
            route = route.as_ref().map_or("unmatched", MatchedPath::as_str)
        );
        let inner = CURRENT_ID.sync_scope(Arc::clone(&id), || {
            let _entered = span.enter();
            self.inner.call(req)
        });
        Observed {
            inner: CURRENT_ID.scope(Arc::clone(&id), inner).instrument(span),
            id,
            route,
            method,
            started,
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    /// A request's future inside its span and request id; counts it when it is answered.
    pub struct Observed<F> {
        #[pin]
        inner: Instrumented<TaskLocalFuture<Arc<str>, F>>,
        id: Arc<str>,
        route: Option<MatchedPath>,
        method: &'static str,
        started: Instant,
        metrics: Metrics,
    }
}

impl<F, B> Future for Observed<F>
where
    F: Future<Output = Result<http::Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let resp = match ready!(this.inner.as_mut().poll(cx)) {
            Ok(resp) => resp.map(Body::new),
            Err(never) => match never {},
        };
        let mut resp = CURRENT_ID.sync_scope(Arc::clone(this.id), || json_errors(resp));
        let status = resp.status();
        let seconds = this.started.elapsed().as_secs_f64();
        let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        this.metrics
            .http_requests
            .with_label_values(&[route, this.method, status_class(status)])
            .inc();
        this.metrics
            .http_seconds
            .with_label_values(&[route, this.method])
            .observe(seconds);
        if let Ok(v) = HeaderValue::from_str(this.id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        this.inner.span().in_scope(|| {
            tracing::debug!(
                target: "trove::access",
                status = status.as_u16(),
                ms = seconds * 1000.0,
                "request served"
            )
        });
        Poll::Ready(Ok(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(&*request_id(&h), "abc-123_x.y:z");
        for bad in ["has space", "", "quote\"d"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(REQUEST_ID, v);
            }
            let id = request_id(&h);
            assert_ne!(&*id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        let long = "a".repeat(129);
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_str(&long).expect("header"));
        assert_ne!(&*request_id(&h), long.as_str());
    }
}
