//! Redis, for what may be lost and rebuilt (leaderboards, rate limits) and nothing else: it
//! never decides who owns a chest, and Trove keeps working when it is slow or gone.
//!
//! # Key scheme (every key starts with `TROVE_REDIS_PREFIX`, default `trove`)
//! - `{prefix}:rl:{class}:{subject}`: a token bucket (hash `tokens`, `ts`); class is
//!   `claims`, `reads`, `ws` or `anon`, subject a player id or `ip:{address}`.
//! - `{prefix}:lb:{board}:global` and `{prefix}:lb:{board}:zone:{zone}`: leaderboards (sorted
//!   sets, member = player); board is `chests` or `loot_value`.
//! - `{prefix}:lb:cursor:{shard}`: how far along each shard's ledger the boards are.
//! - `{prefix}:lb:rebuild-lock`, `{prefix}:lbtmp:{run}:…`: a rebuild in progress (value: its
//!   run id; renewed while it runs; while it exists, no follower applies to the boards).
//!
//! Scripts touch keys they compute, so Trove needs a standalone Redis (or one primary), not
//! Redis Cluster.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::{Config as PoolConfig, Connection, Pool, Runtime};

use crate::error::{Error, Result};

/// Where Redis is and how long a call may take (`TROVE_REDIS_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    /// Prefix of every key, so several deployments can share one Redis.
    pub prefix: String,
    /// Calls slower than this count as failures.
    pub timeout: Duration,
}

/// A Redis call failed or took too long.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
}

/// After a failure, Redis is not asked again for this long (callers get an instant error).
const BACKOFF: Duration = Duration::from_millis(500);
/// At most one warning per this interval, however many calls fail.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A pooled Redis with a short timeout on every call and a brief back-off after a failure.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    epoch: Instant,
    /// ms since `epoch` until which calls fail fast.
    down_until: AtomicU64,
    last_log: AtomicU64,
    /// Failed calls (timeouts, connection errors, script errors).
    pub errors: AtomicU64,
}

impl Redis {
    /// A lazy pool: nothing connects until the first call.
    pub fn new(settings: &Settings) -> Result<Redis> {
        let mut cfg = PoolConfig::from_url(&settings.url);
        let timeout = settings.timeout;
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: 32,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..Default::default()
        });
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| Error::invalid("invalid_config", format!("TROVE_REDIS_URL: {e}")))?;
        Ok(Redis {
            inner: Arc::new(Inner {
                pool,
                prefix: settings.prefix.clone(),
                timeout,
                epoch: Instant::now(),
                down_until: AtomicU64::new(0),
                last_log: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        })
    }

    /// `{prefix}:{part}:{part}…`
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.inner.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Runs one Redis operation on a pooled connection, bounded by the timeout. Failures are
    /// counted, logged at most every ten seconds, and make the next calls fail fast briefly.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = deadpool_redis::redis::RedisResult<T>>,
    {
        if self.now_ms() < self.inner.down_until.load(Ordering::Relaxed) {
            return Err(RedisError::Unavailable(
                "backing off after a failure".into(),
            ));
        }
        let attempt = async {
            let conn = self.inner.pool.get().await.map_err(|e| e.to_string())?;
            op(conn).await.map_err(|e| e.to_string())
        };
        let outcome = match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => format!("timed out after {:?}", self.inner.timeout),
        };
        self.failed(&outcome);
        Err(RedisError::Unavailable(outcome))
    }

    /// True when Redis answers PING within the timeout (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.call(|mut conn| async move {
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
        })
        .await
        .is_ok()
    }

    /// Like `call` but without the short timeout, for long batch work (rebuilds).
    pub async fn call_long<T, F, Fut>(&self, op: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = deadpool_redis::redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.inner.pool.get().await.map_err(|e| e.to_string())?;
            op(conn).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(60), attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.failed(&e);
                Err(RedisError::Unavailable(e))
            }
            Err(_) => {
                self.failed("timed out");
                Err(RedisError::Unavailable("timed out".into()))
            }
        }
    }

    fn failed(&self, why: &str) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        self.inner
            .down_until
            .store(now + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        let last = self.inner.last_log.load(Ordering::Relaxed);
        if (now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64 || last == 0)
            && self
                .inner
                .last_log
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = why,
                total_errors = self.errors(),
                "redis call failed (logged at most every 10 s)"
            );
        }
    }
}
