//! Shards: which PostgreSQL owns a zone, one pool per shard, and failing fast when one is down.
//!
//! # The sharding scheme
//! `shard = jump_consistent_hash(fnv1a_32(name), shard_count)`. FNV-1a (32-bit) is stable
//! across Rust versions, platforms and languages (unlike `DefaultHasher`), and jump consistent
//! hashing (Lamping & Veach, 2014) moves only `1/(n+1)` of the zones when shard `n+1` is
//! appended, and never moves a zone between two old shards. Shards are therefore only ever
//! appended to `TROVE_SHARDS`, never reordered or removed. Loot tables use the same function
//! on their name to find their home shard, which numbers their versions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;
use crate::error::{Error, Result};

/// The schema every shard carries; also runnable with plain `sqlx migrate run`.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// How long callers are told to wait before retrying a shard that is down.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often a down shard is probed for recovery.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// 32-bit FNV-1a of the bytes of `name`.
pub fn fnv1a_32(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Jump consistent hash: maps `key` to a bucket in `0..buckets` (buckets >= 1).
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// The shard index that owns `name` among `shard_count` shards.
pub fn shard_index(name: &str, shard_count: usize) -> usize {
    jump_consistent_hash(u64::from(fnv1a_32(name)), shard_count as u32) as usize
}

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
    fn new(index: usize, url: &str, config: &Config) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()
            .map_err(|e| Error::invalid("invalid_config", format!("shard {index} URL: {e}")))?
            .options([(
                "statement_timeout",
                config.statement_timeout().as_millis().to_string(),
            )])
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool_options = PoolSettings {
            size: config.db_pool_size.max(1),
            acquire_timeout: config.acquire_timeout(),
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
    fn derived(&self, size: u32, settings: &[(&str, &str)]) -> Shard {
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

    fn current_pool(&self) -> PgPool {
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

/// All shards, in configuration order.
#[derive(Clone)]
pub struct ShardSet {
    shards: Arc<Vec<Arc<Shard>>>,
    /// How claims are batched per shard (from the config).
    pub batching: crate::claims::Batching,
}

impl ShardSet {
    /// The same shards with their own pools of `size` connections and extra session
    /// `settings`: realtime reads and claim statements each get theirs, so neither ever
    /// queues behind the other or behind API reads.
    pub fn derived(&self, size: u32, settings: &[(&str, &str)]) -> Self {
        ShardSet {
            shards: Arc::new(
                self.shards
                    .iter()
                    .map(|s| Arc::new(s.derived(size, settings)))
                    .collect(),
            ),
            batching: self.batching,
        }
    }

    /// Builds a lazy pool per shard: nothing connects yet, so Trove starts (and serves the
    /// healthy shards) even when one shard is down.
    pub fn new(config: &Config) -> Result<Self> {
        if config.shards.is_empty() {
            return Err(Error::invalid("invalid_config", "no shard URLs configured"));
        }
        let shards = config
            .shards
            .iter()
            .enumerate()
            .map(|(i, url)| Shard::new(i, url.trim(), config).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardSet {
            shards: Arc::new(shards),
            batching: crate::claims::Batching {
                max: usize::from(config.claim_batch_max),
                in_flight: usize::from(config.claim_concurrency),
            },
        })
    }

    pub fn all(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard that owns a zone.
    pub fn for_zone(&self, zone: &str) -> &Arc<Shard> {
        &self.shards[shard_index(zone, self.shards.len())]
    }

    /// The home shard of a loot table: it numbers the table's versions.
    pub fn for_loot_table(&self, name: &str) -> &Arc<Shard> {
        &self.shards[shard_index(name, self.shards.len())]
    }
}

/// One shard's part of `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ShardReadiness {
    pub shard: usize,
    /// `up`, `down` or `not_migrated` (reachable but behind this binary's migrations).
    pub status: &'static str,
    pub migration_version: Option<i64>,
    pub expected_version: i64,
    pub error: Option<String>,
}

/// The newest migration this binary carries.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What `trove migrate` and `trove shards` report per shard.
#[derive(Debug, serde::Serialize)]
pub struct ShardStatus {
    pub shard: usize,
    pub url: String,
    pub reachable: bool,
    pub migration_version: Option<i64>,
    pub zones: Option<i64>,
    pub error: Option<String>,
}

impl ShardSet {
    /// Applies `migrations/` to every shard, in order; stops at the first failure.
    pub async fn migrate(&self) -> Result<Vec<ShardStatus>> {
        for shard in self.all() {
            let pool = shard.current_pool();
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| Error::Internal(format!("migrating shard {}: {e}", shard.index)))?;
        }
        Ok(self.status().await)
    }

    /// Whether each shard answers (within `bound`) and carries every migration this binary
    /// knows. Shards are asked at once; a shard already known to be down is not asked.
    pub async fn readiness(&self, bound: Duration) -> Vec<ShardReadiness> {
        let expected = latest_migration();
        let checks = self.all().iter().map(|shard| async move {
            let version = if shard.is_up() {
                let ask = async {
                    let mut conn = shard.acquire().await?;
                    sqlx::query_file!("sql/shard_status.sql")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(|e| shard.db_error(e))
                };
                match tokio::time::timeout(bound, ask).await {
                    Ok(Ok(row)) => Ok(row.version.unwrap_or(0)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {bound:?}")),
                }
            } else {
                Err("shard is down".to_owned())
            };
            let (status, migration_version, error) = match version {
                Ok(v) if v >= expected => ("up", Some(v), None),
                Ok(v) => (
                    "not_migrated",
                    Some(v),
                    Some("run `trove migrate`".to_owned()),
                ),
                Err(e) => ("down", None, Some(e)),
            };
            ShardReadiness {
                shard: shard.index,
                status,
                migration_version,
                expected_version: expected,
                error,
            }
        });
        futures_util::future::join_all(checks).await
    }

    /// Reachability, migration version and zone count of every shard.
    pub async fn status(&self) -> Vec<ShardStatus> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.all() {
            let pool = shard.current_pool();
            let row = sqlx::query_file!("sql/shard_status.sql")
                .fetch_one(&pool)
                .await;
            out.push(match row {
                Ok(row) => ShardStatus {
                    shard: shard.index,
                    url: shard.display_url.clone(),
                    reachable: true,
                    migration_version: row.version,
                    zones: Some(row.zones),
                    error: None,
                },
                Err(e) => ShardStatus {
                    shard: shard.index,
                    url: shard.display_url.clone(),
                    reachable: shard.ping().await,
                    migration_version: None,
                    zones: None,
                    error: Some(e.to_string()),
                },
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values of 32-bit FNV-1a; pinned so the scheme can never drift silently.
        assert_eq!(fnv1a_32(""), 0x811c_9dc5);
        assert_eq!(fnv1a_32("a"), 0xe40c_292c);
        assert_eq!(fnv1a_32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn jump_hash_is_pinned_and_moves_few_keys() {
        // Pinned assignments: changing these silently would move live zones between shards.
        let pinned: Vec<usize> = ["meadow", "caves", "dragon-lair", "town:square", "zone-42"]
            .iter()
            .map(|z| shard_index(z, 2))
            .collect();
        // Cross-checked against a Python port of FNV-1a + jump hash.
        assert_eq!(pinned, vec![1, 1, 0, 0, 1]);

        let keys: Vec<String> = (0..10_000).map(|i| format!("zone-{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| shard_index(k, 4) != shard_index(k, 5))
            .count();
        // Ideal is 1/5 of the keys; every moved key must go to the new shard.
        assert!((1500..2500).contains(&moved), "moved {moved}");
        assert!(keys
            .iter()
            .filter(|k| shard_index(k, 4) != shard_index(k, 5))
            .all(|k| shard_index(k, 5) == 4));
        for n in 1..8 {
            assert!(keys.iter().all(|k| shard_index(k, n) < n));
        }
    }

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
