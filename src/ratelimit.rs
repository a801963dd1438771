//! Rate limits: a token bucket per player (per client IP without a valid token) and route
//! class, kept in Redis and updated atomically by one Lua script using Redis's clock, so every
//! Trove instance shares the same buckets. Admin tokens (trusted back ends) are not limited.
//! When Redis cannot answer within `TROVE_REDIS_TIMEOUT_MS`, requests pass (fail open) unless
//! `TROVE_RATE_LIMIT_FAIL_CLOSED` is set (then 503); either way it is counted and logged.
//!
//! Which class a request belongs to is the HTTP layer's business (`api::limits` sets it per
//! router group); this module only keeps the buckets.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deadpool_redis::redis::Script;

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
}

/// The limits (`TROVE_RATE_*`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub claims: RateSpec,
    pub reads: RateSpec,
    pub ws: RateSpec,
    /// Per client IP, for requests without a valid token.
    pub anon: RateSpec,
    /// Refuse (503) rather than let requests through when Redis cannot be asked.
    pub fail_closed: bool,
}

/// The token bucket, with Redis's own clock (every instance shares it).
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
    settings: Settings,
    script: Arc<Script>,
    /// Requests let through because Redis could not be asked.
    pub fail_open: Arc<AtomicU64>,
    /// Requests refused with 503 because Redis could not be asked (fail closed).
    pub refused_closed: Arc<AtomicU64>,
    /// Requests refused with 429.
    pub limited: Arc<AtomicU64>,
}

impl RateLimiter {
    /// Limits kept in `redis`; without it every request passes.
    pub fn new(settings: Settings, redis: Option<Redis>) -> Self {
        RateLimiter {
            redis,
            settings,
            script: Arc::new(Script::new(BUCKET)),
            fail_open: Arc::new(AtomicU64::new(0)),
            refused_closed: Arc::new(AtomicU64::new(0)),
            limited: Arc::new(AtomicU64::new(0)),
        }
    }

    fn spec(&self, class: Class) -> RateSpec {
        let s = &self.settings;
        match class {
            Class::Claims => s.claims,
            Class::Reads => s.reads,
            Class::Ws => s.ws,
            Class::Anon => s.anon,
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
            Err(e) if self.settings.fail_closed => {
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
}
