//! Bodies over `TROVE_BODY_LIMIT` get a 413 the client can read. Answering at once and
//! closing, as the body limit alone does, resets the connection under a client that writes
//! its whole body before it reads (most HTTP libraries), so it never sees the answer. A body
//! that declares its length and is at most [`DISCARD_BOUND`] is read and thrown away first
//! (within the request timeout); a longer one is answered at once and the connection closed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

/// The most of an oversized body read (and discarded) so its 413 can be read.
pub const DISCARD_BOUND: u64 = 16 * 1024 * 1024;

pub async fn discard_oversized(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = declared.filter(|&n| n > limit as u64) else {
        return next.run(req).await;
    };
    if length <= DISCARD_BOUND {
        let mut body = Body::into_data_stream(req.into_body());
        while let Some(Ok(_)) = body.next().await {}
    }
    let mut response = super::extract::body_too_large().into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
