//! Rate limits: a token bucket per player (per client IP without a valid token) and route
//! class, kept in Redis and updated atomically by one Lua script using Redis's clock, so every
//! Trove instance shares the same buckets. Admin tokens (trusted back ends) are not limited.
//! When Redis cannot answer within `TROVE_REDIS_TIMEOUT_MS`, requests pass (fail open) unless
//! `TROVE_RATE_LIMIT_FAIL_CLOSED` is set (then 503); either way it is counted and logged.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_redis::redis::Script;

use crate::api::error::ApiError;
use crate::api::AppState;
use crate::auth::Role;
use crate::config::Config;
use crate::error::Error;
use crate::redis_client::Redis;

/// `RATE/BURST`: tokens added per second and bucket size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub rate: f64,
    pub burst: f64,
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rate, burst) = s
            .split_once('/')
            .ok_or_else(|| format!("expected RATE/BURST, got {s:?}"))?;
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("bad rate in {s:?}"))?;
        let burst: f64 = burst
            .trim()
            .parse()
            .map_err(|_| format!("bad burst in {s:?}"))?;
        if !(rate > 0.0 && burst >= 1.0 && rate.is_finite() && burst.is_finite()) {
            return Err(format!("need rate > 0 and burst >= 1 in {s:?}"));
        }
        Ok(RateSpec { rate, burst })
    }
}

/// Route classes with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Claims,
    Reads,
    Ws,
    Anon,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Claims => "claims",
            Class::Reads => "reads",
            Class::Ws => "ws",
            Class::Anon => "anon",
        }
    }

    /// The class of an API request; None for routes that are never limited.
    fn of(method: &Method, path: &str) -> Option<Class> {
        if !path.starts_with("/v1/") {
            return None;
        }
        if path == "/v1/ws" {
            Some(Class::Ws)
        } else if method == Method::POST && (path.ends_with("/claims") || path.ends_with("/claim"))
        {
            Some(Class::Claims)
        } else {
            Some(Class::Reads)
        }
    }
}

const BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait_ms}
";

/// Shared by all requests of an instance.
#[derive(Clone)]
pub struct RateLimiter {
    redis: Option<Redis>,
    claims: RateSpec,
    reads: RateSpec,
    ws: RateSpec,
    anon: RateSpec,
    fail_closed: bool,
    /// `TROVE_TRUST_FORWARDED_FOR`: the client IP is the last X-Forwarded-For hop.
    trust_forwarded_for: bool,
    script: Arc<Script>,
    /// Requests let through because Redis could not be asked.
    pub fail_open: Arc<AtomicU64>,
    /// Requests refused with 503 because Redis could not be asked (fail closed).
    pub refused_closed: Arc<AtomicU64>,
    /// Requests refused with 429.
    pub limited: Arc<AtomicU64>,
}

impl RateLimiter {
    pub fn new(config: &Config, redis: Option<Redis>) -> Self {
        RateLimiter {
            redis,
            claims: config.rate_claims,
            reads: config.rate_reads,
            ws: config.rate_ws,
            anon: config.rate_anon,
            fail_closed: config.rate_limit_fail_closed,
            trust_forwarded_for: config.trust_forwarded_for,
            script: Arc::new(Script::new(BUCKET)),
            fail_open: Arc::new(AtomicU64::new(0)),
            refused_closed: Arc::new(AtomicU64::new(0)),
            limited: Arc::new(AtomicU64::new(0)),
        }
    }

    fn spec(&self, class: Class) -> RateSpec {
        match class {
            Class::Claims => self.claims,
            Class::Reads => self.reads,
            Class::Ws => self.ws,
            Class::Anon => self.anon,
        }
    }

    /// Takes one token from `subject`'s bucket of `class`.
    pub async fn check(&self, class: Class, subject: &str) -> Result<(), Error> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        let spec = self.spec(class);
        let key = redis.key(&["rl", class.name(), subject]);
        let script = Arc::clone(&self.script);
        let answer: Result<(i64, i64), _> = redis
            .call(|mut conn| async move {
                script
                    .key(key)
                    .arg(spec.rate)
                    .arg(spec.burst)
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
        match answer {
            Ok((1, _)) => Ok(()),
            Ok((_, wait_ms)) => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                Err(Error::RateLimited {
                    retry_after_secs: (wait_ms.max(1) as u64).div_ceil(1000),
                })
            }
            Err(e) if self.fail_closed => {
                self.refused_closed.fetch_add(1, Ordering::Relaxed);
                Err(Error::Unavailable {
                    code: "rate_limiter_unavailable",
                    message: format!("rate limits cannot be checked: {e}"),
                })
            }
            Err(_) => {
                self.fail_open.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// Middleware: limits every `/v1` request by its class and caller before the handler runs.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(class) = Class::of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query_token = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    let caller = header_token
        .or(query_token)
        .and_then(|t| state.keys.verify(t.trim()).ok());
    let (class, subject) = match caller {
        Some(c) if c.role == Role::Admin => return next.run(req).await,
        Some(c) => (class, c.player),
        None => (
            Class::Anon,
            format!("ip:{}", client_ip(&req, state.limiter.trust_forwarded_for)),
        ),
    };
    match state.limiter.check(class, &subject).await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            if class == Class::Claims && matches!(e, Error::RateLimited { .. }) {
                // `/v1/zones/{zone}/…`: count the refused claim on its zone's shard.
                let zone = req.uri().path().split('/').nth(3).unwrap_or_default();
                let shard = state.engine.shards.for_zone(zone).index;
                state.metrics.claim("rate_limited", shard, None, false);
            }
            ApiError::from(e).into_response()
        }
    }
}

/// The caller's address: the TCP peer, or behind a trusted proxy the last X-Forwarded-For
/// entry (the one that proxy appended; earlier entries are the client's to invent).
fn client_ip(req: &Request, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    let peer = || {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip())
    };
    forwarded
        .or_else(peer)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_specs_parse_and_reject_nonsense() {
        assert_eq!(
            "10/20".parse::<RateSpec>().ok(),
            Some(RateSpec {
                rate: 10.0,
                burst: 20.0
            })
        );
        assert_eq!(
            "0.5/1".parse::<RateSpec>().ok(),
            Some(RateSpec {
                rate: 0.5,
                burst: 1.0
            })
        );
        for bad in ["10", "0/5", "5/0", "x/1", "-1/3", "inf/2"] {
            assert!(bad.parse::<RateSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn classes_follow_routes() {
        assert_eq!(
            Class::of(&Method::POST, "/v1/zones/a/claims"),
            Some(Class::Claims)
        );
        assert_eq!(
            Class::of(&Method::POST, "/v1/zones/a/chests/3/claim"),
            Some(Class::Claims)
        );
        assert_eq!(Class::of(&Method::GET, "/v1/zones/a"), Some(Class::Reads));
        assert_eq!(Class::of(&Method::GET, "/v1/ws"), Some(Class::Ws));
        assert_eq!(Class::of(&Method::GET, "/healthz"), None);
    }
}
