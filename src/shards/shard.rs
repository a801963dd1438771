//! One shard: a lazy pool plus a health flag, so requests fail fast while the server is down
//! instead of each waiting out the pool's acquire timeout, and a probe that brings it back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;
use sqlx::{ConnectOptions, Connection};

use super::Settings;
use crate::error::{Error, Result};

/// How long callers are told to wait before retrying a shard that is down.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often a down shard is probed for recovery.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// One PostgreSQL shard: a pool plus a health flag that lets requests fail fast while it is
/// down instead of each waiting out the pool's acquire timeout.
pub struct Shard {
    pub index: usize,
    /// The URL with any password removed, for logs and `trove shards`.
    pub display_url: String,
    options: PgConnectOptions,
    pool_options: PoolSettings,
    pool: RwLock<PgPool>,
    down: AtomicBool,
    probing: AtomicBool,
    /// Requests waiting for a pooled connection right now (sqlx does not count them).
    waiting: AtomicUsize,
}

/// A shard pool's occupancy, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub max: u32,
    pub open: u32,
    pub idle: usize,
    pub waiting: usize,
}

#[derive(Clone, Copy)]
struct PoolSettings {
    size: u32,
    acquire_timeout: Duration,
}

impl Shard {
    pub(super) fn new(index: usize, url: &str, settings: &Settings) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()
            .map_err(|e| Error::invalid("invalid_config", format!("shard {index} URL: {e}")))?
            .options([(
                "statement_timeout",
                settings.statement_timeout.as_millis().to_string(),
            )])
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool_options = PoolSettings {
            size: settings.pool_size.max(1),
            acquire_timeout: settings.acquire_timeout,
        };
        Ok(Shard::with_pool(index, redact(url), options, pool_options))
    }

    /// A shard, up until proven down, with a lazy pool (nothing connects yet).
    fn with_pool(
        index: usize,
        display_url: String,
        options: PgConnectOptions,
        pool_options: PoolSettings,
    ) -> Shard {
        Shard {
            index,
            display_url,
            pool: RwLock::new(build_pool(&options, pool_options)),
            options,
            pool_options,
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The same shard with a pool of its own (`size` connections, extra session `settings`)
    /// and its own health flag: a separate pool for one kind of work never queues behind
    /// another.
    pub(super) fn derived(&self, size: u32, settings: &[(&str, &str)]) -> Shard {
        let options = self.options.clone().options(settings.iter().copied());
        let pool_options = PoolSettings {
            size: size.max(1),
            ..self.pool_options
        };
        Shard::with_pool(self.index, self.display_url.clone(), options, pool_options)
    }

    /// The shard's pool, or `ShardUnavailable` at once while the shard is known to be down.
    pub fn pool(&self) -> Result<PgPool> {
        if self.down.load(Ordering::Acquire) {
            return Err(self.unavailable());
        }
        Ok(self.current_pool())
    }

    /// A pooled connection, counted as waiting while it is acquired; errors as `db_error`.
    pub async fn acquire(self: &Arc<Self>) -> Result<PoolConnection<Postgres>> {
        let pool = self.pool()?;
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let conn = pool.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        conn.map_err(|e| self.db_error(e))
    }

    pub fn pool_stats(&self) -> PoolStats {
        let pool = self.current_pool();
        PoolStats {
            max: self.pool_options.size,
            open: pool.size(),
            idle: pool.num_idle(),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    pub(super) fn current_pool(&self) -> PgPool {
        match self.pool.read() {
            Ok(pool) => pool.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    fn unavailable(&self) -> Error {
        Error::ShardUnavailable {
            shard: self.index,
            retry_after: RETRY_AFTER,
        }
    }

    /// Turns a database error into the engine's error. Connection-class failures mark the
    /// shard down (a probe brings it back) and become `ShardUnavailable`; an overrun statement
    /// timeout is also a 503, without marking the shard down.
    pub fn db_error(self: &Arc<Self>, err: sqlx::Error) -> Error {
        if matches!(err, sqlx::Error::PoolTimedOut) {
            // Every connection busy: overload, or a server that stopped while none was open
            // (sqlx keeps retrying refused connects until the timeout). One fresh connection
            // tells which; only a dead server marks the shard down.
            tracing::warn!(
                shard = self.index,
                "timed out waiting for a shard connection"
            );
            if !self.probing.load(Ordering::Acquire) {
                let shard = Arc::clone(self);
                tokio::spawn(async move {
                    if !shard.ping().await {
                        shard.mark_down();
                    }
                });
            }
            return self.unavailable();
        }
        if is_connection_error(&err) {
            tracing::warn!(shard = self.index, error = %err, "shard unreachable; failing fast until it answers again");
            self.mark_down();
            return self.unavailable();
        }
        if let sqlx::Error::Database(db) = &err {
            if db.code().as_deref() == Some("57014") {
                tracing::warn!(shard = self.index, "statement timeout");
                return self.unavailable();
            }
        }
        Error::Database(err)
    }

    fn mark_down(self: &Arc<Self>) {
        self.down.store(true, Ordering::Release);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shard = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                if shard.ping().await {
                    // Connections in the old pool died with the server: start a fresh pool.
                    let fresh = build_pool(&shard.options, shard.pool_options);
                    let old = match shard.pool.write() {
                        Ok(mut pool) => std::mem::replace(&mut *pool, fresh),
                        Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), fresh),
                    };
                    tokio::spawn(async move { old.close().await });
                    shard.down.store(false, Ordering::Release);
                    shard.probing.store(false, Ordering::Release);
                    tracing::info!(shard = shard.index, "shard is reachable again");
                    return;
                }
            }
        });
    }

    /// A dedicated connection outside the pool (the realtime tail holds one per shard).
    pub async fn connect(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        self.options.connect().await
    }

    /// One fresh connection and `SELECT 1`, bounded by a second; true if the shard answers.
    pub async fn ping(&self) -> bool {
        let attempt = async {
            let mut conn = self.options.connect().await?;
            conn.ping().await?;
            conn.close().await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), attempt).await,
            Ok(Ok(()))
        )
    }
}

fn build_pool(options: &PgConnectOptions, settings: PoolSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.size)
        .acquire_timeout(settings.acquire_timeout)
        // A ping per checkout would double the round trips of every claim; a dead connection
        // fails its statement instead and marks the shard down.
        .test_before_acquire(false)
        .connect_lazy_with(options.clone())
}

fn is_connection_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
        ),
        _ => false,
    }
}

/// Removes the password from a connection URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://trove:s3cret@db:5432/trove"),
            "postgres://trove:***@db:5432/trove"
        );
        assert_eq!(
            redact("postgres://trove@db/trove"),
            "postgres://trove@db/trove"
        );
    }
}
