//! Who is calling. One parser reads the bearer token (`Authorization: Bearer …`, the scheme
//! in any case as RFC 9110 allows, or `?token=` where a router group accepts it), and the
//! gate (`gate.rs`) verifies it, once per request, before the rate limit and the handler,
//! which reads the result from the request's extensions.

use std::borrow::Cow;

use axum::extract::{FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Uri};
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

/// What authentication found for a request.
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

/// How a router group authenticates (the gate's first step).
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

impl Authenticator {
    /// What authentication finds for `req` when it needs no waiting (no token, a malformed
    /// one, one verified before); otherwise the token to verify with [`Authenticator::verify`].
    pub fn at_once(&self, req: &Request) -> Result<Auth, String> {
        let header = bearer(req.headers());
        let token: Option<Result<Cow<'_, str>, ()>> = match (header, self.sources) {
            (Some(Ok(t)), _) => Some(Ok(Cow::Borrowed(t))),
            (header, TokenSources::HeaderOrQuery) => query_token(req.uri())
                .map(|t| Ok(Cow::Owned(t)))
                .or(header.map(|h| h.map(Cow::Borrowed))),
            (header, TokenSources::Header) => header.map(|h| h.map(Cow::Borrowed)),
        };
        match token {
            None => Ok(Auth::Missing),
            Some(Err(())) => Ok(Auth::Rejected {
                code: "invalid_token",
                message: "Authorization must be Bearer <token>".into(),
            }),
            Some(Ok(token)) => match self.keys.cached(&token) {
                Some(caller) => Ok(Auth::Caller(caller)),
                None => Err(token.into_owned()),
            },
        }
    }

    /// Verifies a token [`Authenticator::at_once`] handed back.
    pub async fn verify(&self, token: &str) -> Auth {
        match self.keys.verify_fresh(token).await {
            Ok(caller) => Auth::Caller(caller),
            Err(Error::Unauthorized { code, message }) => Auth::Rejected { code, message },
            Err(e) => Auth::Rejected {
                code: "invalid_token",
                message: e.to_string(),
            },
        }
    }

    /// Records the outcome in the request for the handler's [`Caller`] extractor, with where
    /// this group takes tokens from (its "missing token" hint names them).
    pub fn record(&self, req: &mut Request, found: Auth) {
        req.extensions_mut().insert(Authenticated {
            auth: found,
            sources: self.sources,
        });
    }
}

/// What the gate recorded in the request's extensions (one extension, not two: each is an
/// allocation).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub auth: Auth,
    pub sources: TokenSources,
}

/// The authenticated caller, as the authentication layer verified it.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let found = parts.extensions.get::<Authenticated>();
        let hint = match found.map(|f| f.sources) {
            Some(TokenSources::HeaderOrQuery) => {
                "send Authorization: Bearer <token> or ?token=<token>"
            }
            _ => "send Authorization: Bearer <token>",
        };
        match found.map(|f| &f.auth) {
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
