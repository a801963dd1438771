//! What every request passes through first: a request id, a tracing span carrying it,
//! HTTP metrics by route template, the JSON error shape, and the concurrency limit.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::error::{json_errors, ApiError};
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
        .map_or_else(|| crate::ids::uuid_v7().to_string().into(), Arc::from)
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
/// request by its route template (never the raw path: label sets stay bounded).
pub async fn observe(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(req.method());
    let span = tracing::info_span!("request", id = %id, method, route = %route);
    let mut resp = CURRENT_ID
        .scope(
            Arc::clone(&id),
            async move { json_errors(next.run(req).await) }.instrument(span.clone()),
        )
        .await;
    let status = resp.status();
    let seconds = started.elapsed().as_secs_f64();
    metrics
        .http_requests
        .with_label_values(&[&route, method, status_class(status)])
        .inc();
    metrics
        .http_seconds
        .with_label_values(&[&route, method])
        .observe(seconds);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    span.in_scope(|| {
        tracing::debug!(
            target: "trove::access",
            status = status.as_u16(),
            ms = seconds * 1000.0,
            "request served"
        )
    });
    resp
}

/// Caps the requests served at once: over the cap the answer is an immediate 503
/// `overloaded` (with `Retry-After`), never an unbounded queue of waiting sockets.
pub async fn concurrency_limit(
    State(permits): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            let mut resp = ApiError::http(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many requests in flight on this instance (TROVE_MAX_CONCURRENT_REQUESTS)",
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
            resp
        }
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
