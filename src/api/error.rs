//! The one error shape of the HTTP API: `{"error": "snake_code", "message": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// An engine error or an HTTP-level one (bad JSON, wrong method, body too large ...).
#[derive(Debug)]
pub enum ApiError {
    Engine(Error),
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    pub fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Http {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::http(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Engine(e)
    }
}

/// The status code of an engine error.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::ZoneNotFound(_)
        | Error::LootTableNotFound(_)
        | Error::ChestNotFound { .. }
        | Error::PlayerNotRanked(_)
        | Error::EpochNotFound { .. } => StatusCode::NOT_FOUND,
        Error::ZoneExhausted(_)
        | Error::ChestAlreadyOpened { .. }
        | Error::Conflict(_)
        | Error::EpochNotRevealed { .. }
        | Error::RebuildRunning
        | Error::RebuildLockLost => StatusCode::CONFLICT,
        Error::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::ShardUnavailable { .. } | Error::Unavailable { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::RateLimited { .. } | Error::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error body, with the request's id (also in the log lines of the request).
pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    let id = super::observe::current_request_id();
    let body = super::openapi::ErrorBody {
        error: code,
        message,
        request_id: id.as_deref(),
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Http {
                status,
                code,
                message,
            } => error_body(status, code, &message),
            ApiError::Engine(e) => {
                let status = status_of(&e);
                let expected = matches!(
                    e,
                    Error::ShardUnavailable { .. } | Error::Unavailable { .. }
                );
                let message = if status.is_server_error() && !expected {
                    // Internal details go to the log, never to the client.
                    tracing::error!(error = %e, "request failed");
                    "internal error; it has been logged".to_owned()
                } else {
                    e.to_string()
                };
                let mut resp = error_body(status, e.code(), &message);
                match &e {
                    Error::ShardUnavailable { retry_after, .. } => {
                        let secs = retry_after.as_secs().max(1).to_string();
                        if let Ok(v) = HeaderValue::from_str(&secs) {
                            resp.headers_mut().insert(header::RETRY_AFTER, v);
                        }
                    }
                    Error::RateLimited { retry_after_secs } => {
                        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(&1).to_string())
                        {
                            resp.headers_mut().insert(header::RETRY_AFTER, v);
                        }
                    }
                    Error::Unavailable { .. } => {
                        resp.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    }
                    Error::Unauthorized { .. } => {
                        resp.headers_mut()
                            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    }
                    _ => {}
                }
                resp
            }
        }
    }
}

/// Gives every error response the JSON shape, including the ones axum and tower produce
/// themselves (unknown route, wrong method, timeout, body limit, caught panic).
pub fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this route")
        }
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is over the limit"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send application/json"),
        s if s.is_server_error() => ("internal_error", "internal error; it has been logged"),
        _ => ("bad_request", "bad request"),
    };
    let mut out = error_body(status, code, message);
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
