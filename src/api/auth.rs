//! Who is calling. One parser reads the bearer token (`Authorization: Bearer …`, the scheme
//! in any case as RFC 9110 allows, or `?token=` where a router group accepts it), and one
//! layer verifies it, once per request, before the rate limits and the handler: both read
//! the result from the request's extensions.

use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use crate::auth::{Caller, JwtKeys};
use crate::error::Error;

/// Where a router group takes its token from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSources {
    /// `Authorization: Bearer <token>` only.
    Header,
    /// The header, or `?token=` for clients that cannot set headers (browsers' WebSockets).
    HeaderOrQuery,
}

/// What the authentication layer found, kept in the request's extensions.
#[derive(Debug, Clone)]
pub enum Auth {
    Caller(Caller),
    /// No token was sent.
    Missing,
    /// A token was sent and refused (malformed, forged, expired).
    Rejected {
        code: &'static str,
        message: String,
    },
}

/// The state of the authentication layer.
#[derive(Clone)]
pub struct Authenticator {
    pub keys: JwtKeys,
    pub sources: TokenSources,
}

/// The token of `Authorization: Bearer <token>`: Some(Err) for a header that is not one.
pub fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    Some(token.ok_or(()))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn query_token(uri: &Uri) -> Option<String> {
    Query::<TokenQuery>::try_from_uri(uri).ok()?.0.token
}

/// Middleware: verifies the request's token (if any) and records the outcome as `Auth`.
pub async fn authenticate(
    State(auth): State<Authenticator>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = bearer(req.headers()).map(|t| t.map(str::to_owned));
    let token = match (header, auth.sources) {
        (Some(Ok(t)), _) => Some(Ok(t)),
        (header, TokenSources::HeaderOrQuery) => query_token(req.uri()).map(Ok).or(header),
        (header, TokenSources::Header) => header,
    };
    let found = match token {
        None => Auth::Missing,
        Some(Err(())) => Auth::Rejected {
            code: "invalid_token",
            message: "Authorization must be Bearer <token>".into(),
        },
        Some(Ok(token)) => match auth.keys.verify(&token).await {
            Ok(caller) => Auth::Caller(caller),
            Err(Error::Unauthorized { code, message }) => Auth::Rejected { code, message },
            Err(e) => Auth::Rejected {
                code: "invalid_token",
                message: e.to_string(),
            },
        },
    };
    req.extensions_mut().insert(found);
    // The handler's "missing token" hint names where this group takes tokens from.
    req.extensions_mut().insert(auth.sources);
    next.run(req).await
}

/// The authenticated caller, as the authentication layer verified it.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let hint = match parts.extensions.get::<TokenSources>() {
            Some(TokenSources::HeaderOrQuery) => {
                "send Authorization: Bearer <token> or ?token=<token>"
            }
            _ => "send Authorization: Bearer <token>",
        };
        match parts.extensions.get::<Auth>() {
            Some(Auth::Caller(c)) => Ok(c.clone()),
            Some(Auth::Rejected { code, message }) => {
                Err(Error::unauthorized(code, message.clone()).into())
            }
            Some(Auth::Missing) | None => Err(Error::unauthorized("missing_token", hint).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_passes() {
        for ok in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer  abc "] {
            assert_eq!(bearer(&headers(ok)), Some(Ok("abc")), "{ok}");
        }
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(bearer(&headers(bad)), Some(Err(())), "{bad}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
