//! The rate limit, the gate's last step: each router group names its class (claims, reads,
//! WebSocket connects), and the caller authentication verified picks the bucket: a player's
//! own, none for admins (trusted back ends), or the client IP's for requests without a
//! valid token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::auth::Auth;
use super::error::ApiError;
use super::AppState;
use crate::auth::Role;
use crate::error::Error;
use crate::ratelimit::Class;

/// One group's rate limit.
#[derive(Clone)]
pub struct Limit {
    pub state: AppState,
    pub class: Class,
    /// `TROVE_TRUST_FORWARDED_FOR`: the client IP is the last X-Forwarded-For hop.
    pub trust_forwarded_for: bool,
}

impl Limit {
    /// Callers no bucket applies to: admins (trusted back ends).
    pub fn exempt(auth: &Auth) -> bool {
        matches!(auth, Auth::Caller(c) if c.role == Role::Admin)
    }

    /// Takes one token from the caller's bucket of the group's class before the handler
    /// runs: the request back to go on, or the 429 (or 503 when failing closed) to answer.
    pub async fn check(&self, auth: &Auth, req: Request) -> Result<Request, Response> {
        if Self::exempt(auth) {
            return Ok(req);
        }
        let (class, subject) = match auth {
            Auth::Caller(c) => (self.class, c.player.clone()),
            _ => (
                Class::Anon,
                format!("ip:{}", client_ip(&req, self.trust_forwarded_for)),
            ),
        };
        let state = &self.state;
        let Err(e) = state.limiter.check(class, &subject).await else {
            return Ok(req);
        };
        if class == Class::Claims && matches!(e, Error::RateLimited { .. }) {
            // Count the refused claim on its zone's shard.
            let (mut parts, _) = req.into_parts();
            let params = RawPathParams::from_request_parts(&mut parts, &()).await;
            let zone = params
                .ok()
                .and_then(|p| {
                    p.iter()
                        .find(|(k, _)| *k == "zone")
                        .map(|(_, v)| v.to_owned())
                })
                .unwrap_or_default();
            let shard = state.engine.shards.zone_shard_label(&zone);
            state.metrics.claim("rate_limited", shard, None, false);
        }
        Err(ApiError::from(e).into_response())
    }
}

/// The caller's address: the TCP peer, or behind a trusted proxy the last X-Forwarded-For
/// entry (the one that proxy appended; earlier entries are the client's to invent).
pub(super) fn client_addr(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    forwarded.or(peer.map(|p| p.ip()))
}

fn client_ip(req: &Request, trust_forwarded_for: bool) -> String {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0);
    client_addr(req.headers(), peer, trust_forwarded_for)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}
