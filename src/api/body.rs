//! Bodies over `TROVE_BODY_LIMIT` get a 413 the client can read. Answering at once and
//! closing, as the body limit alone does, resets the connection under a client that writes
//! its whole body before it reads (most HTTP libraries), so it never sees the answer. A body
//! that declares its length and is at most [`DISCARD_BOUND`] is read and thrown away first
//! (within the request timeout); a longer one is answered at once and the connection closed.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

/// The most of an oversized body read (and discarded) so its 413 can be read.
pub const DISCARD_BOUND: u64 = 16 * 1024 * 1024;

/// The length a request declares, when it is over `limit`.
pub fn oversized(req: &Request, limit: usize) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > limit as u64)
}

/// The 413 for a body of `length` over the limit, after reading it if it is short enough.
pub async fn refuse_oversized(req: Request, length: u64) -> Response {
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
