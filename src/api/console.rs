//! The web console at `/console`: three static files built from `console/` (see its README)
//! and embedded in the binary, so it works wherever Trove runs, with nothing else to install.
//! Served outside `/v1` (the page itself needs no token: it asks for one and sends it with
//! every API call) under a strict Content-Security-Policy: every script, style and socket is
//! Trove's own.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::AppState;

/// No inline script or style, nothing from elsewhere, no framing, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: OnceLock<HeaderValue>,
}

static INDEX: Asset = Asset::new(
    include_str!("../../console/dist/index.html"),
    "text/html; charset=utf-8",
);
static SCRIPT: Asset = Asset::new(
    include_str!("../../console/dist/app.js"),
    "text/javascript; charset=utf-8",
);
static STYLE: Asset = Asset::new(
    include_str!("../../console/dist/app.css"),
    "text/css; charset=utf-8",
);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|h: HeaderMap| async move { INDEX.serve(&h) }),
        )
        .route(
            "/console/",
            get(|h: HeaderMap| async move { INDEX.serve(&h) }),
        )
        .route(
            "/console/app.js",
            get(|h: HeaderMap| async move { SCRIPT.serve(&h) }),
        )
        .route(
            "/console/app.css",
            get(|h: HeaderMap| async move { STYLE.serve(&h) }),
        )
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Self {
        Asset {
            body,
            content_type,
            etag: OnceLock::new(),
        }
    }

    /// The file, or 304 when the browser's copy is current (`no-cache`: it always asks, so a
    /// new binary's console is never mixed with an old one's script).
    fn serve(&self, request: &HeaderMap) -> Response {
        let etag = self.etag.get_or_init(|| {
            let digest = hex::encode(&Sha256::digest(self.body.as_bytes())[..16]);
            HeaderValue::from_str(&format!("\"{digest}\""))
                .unwrap_or(HeaderValue::from_static("\"\""))
        });
        let headers = [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, etag.clone()),
        ];
        if request.get(header::IF_NONE_MATCH) == Some(etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let content_type = [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        )];
        (headers, content_type, self.body).into_response()
    }
}
