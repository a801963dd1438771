//! One shard: a lazy pool plus a health flag, so requests fail fast while the server is down
//! instead of each waiting out the pool's acquire timeout, and a probe that brings it back.
//! A shard may be a replicated group of hosts: the pool connects to the group's primary only,
//! and the probe finds the primary again after a failover.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;
use sqlx::{ConnectOptions, Connection};

use super::group::Watched;
use super::hosts::{host_of, host_urls, redact};
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
    /// The servers of the shard's group, in the URL's order (one for a plain shard).
    hosts: Arc<[Host]>,
    /// Where the group's primary is, shared with the shard's derived copies (its other
    /// pools): whichever finds a new primary first moves them all.
    found: Arc<Found>,
    pool_options: PoolSettings,
    /// The pool and the host it connects to; rebuilt when `primary` moves.
    pool: RwLock<(usize, PgPool)>,
    down: AtomicBool,
    probing: AtomicBool,
    /// Requests waiting for a pooled connection right now (sqlx does not count them).
    waiting: AtomicUsize,
    /// How stale a read from a standby may be (`None`: never from a standby).
    read_staleness: Option<Duration>,
}

/// Where a group's primary is, as last found.
#[derive(Default)]
struct Found {
    primary: AtomicUsize,
    /// Times the primary was found on another host than before.
    failovers: AtomicU64,
    /// Whether the primary has been found at all yet.
    located: AtomicBool,
    /// What the group's watcher saw last.
    watched: Watched,
}

/// One server of a shard's group.
#[derive(Clone)]
struct Host {
    /// `host:port`, for logs, metrics and `trove shards`.
    name: String,
    options: PgConnectOptions,
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
        let invalid =
            |e: String| Error::invalid("invalid_config", format!("shard {index} URL: {e}"));
        let hosts = host_urls(url)
            .map_err(invalid)?
            .iter()
            .map(|host_url| {
                let options = host_url
                    .parse::<PgConnectOptions>()
                    .map_err(|e| invalid(e.to_string()))?
                    .options([(
                        "statement_timeout",
                        settings.statement_timeout.as_millis().to_string(),
                    )])
                    .log_statements(tracing::log::LevelFilter::Trace);
                Ok(Host {
                    name: host_of(host_url).to_owned(),
                    options,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pool_options = PoolSettings {
            size: settings.pool_size.max(1),
            acquire_timeout: settings.acquire_timeout,
        };
        let mut shard = Shard::with_pool(
            index,
            redact(url),
            hosts.into(),
            Arc::default(),
            pool_options,
        );
        shard.read_staleness = settings.read_staleness;
        Ok(shard)
    }

    /// A shard, up until proven down, with a lazy pool to its primary (nothing connects yet).
    fn with_pool(
        index: usize,
        display_url: String,
        hosts: Arc<[Host]>,
        found: Arc<Found>,
        pool_options: PoolSettings,
    ) -> Shard {
        let host = found.primary.load(Ordering::Acquire);
        let pool = build_pool(&hosts, host, pool_options);
        Shard {
            index,
            display_url,
            hosts,
            found,
            pool: RwLock::new((host, pool)),
            pool_options,
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            read_staleness: None,
        }
    }

    /// The same shard with a pool of its own (`size` connections, extra session `settings`)
    /// and its own health flag: a separate pool for one kind of work never queues behind
    /// another.
    pub(super) fn derived(&self, size: u32, settings: &[(&str, &str)]) -> Shard {
        let hosts: Vec<Host> = self
            .hosts
            .iter()
            .map(|h| Host {
                name: h.name.clone(),
                options: h.options.clone().options(settings.iter().copied()),
            })
            .collect();
        let pool_options = PoolSettings {
            size: size.max(1),
            ..self.pool_options
        };
        let mut shard = Shard::with_pool(
            self.index,
            self.display_url.clone(),
            hosts.into(),
            Arc::clone(&self.found),
            pool_options,
        );
        shard.read_staleness = self.read_staleness;
        shard
    }

    /// How stale a read from a standby may be, if reads may go to one.
    pub(super) fn read_staleness(&self) -> Option<Duration> {
        self.read_staleness.filter(|_| self.hosts.len() > 1)
    }

    /// The `host:port` of each server of the shard's group, in the URL's order.
    pub fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    /// Each host's name and connection options, in the URL's order.
    pub(super) fn host_options(&self) -> impl Iterator<Item = (&str, &PgConnectOptions)> {
        self.hosts.iter().map(|h| (h.name.as_str(), &h.options))
    }

    /// The host the shard's writes go to (the primary, as last found).
    pub fn primary_host(&self) -> &str {
        &self.hosts[self.found.primary.load(Ordering::Acquire)].name
    }

    pub(super) fn watched(&self) -> &Watched {
        &self.found.watched
    }

    /// Times this shard's primary was found on another host than before.
    pub fn failovers(&self) -> u64 {
        self.found.failovers.load(Ordering::Relaxed)
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

    /// The pool to the primary as last found (a new one when another copy of this shard
    /// found the primary on another host).
    pub(super) fn current_pool(&self) -> PgPool {
        let primary = self.found.primary.load(Ordering::Acquire);
        {
            let pool = self.pool.read().unwrap_or_else(|p| p.into_inner());
            if pool.0 == primary {
                return pool.1.clone();
            }
        }
        self.renew_pool(primary, false)
    }

    /// Points the pool at host `primary`, closing the old one: always, or (`always` false)
    /// unless it already is.
    fn renew_pool(&self, primary: usize, always: bool) -> PgPool {
        let mut pool = self.pool.write().unwrap_or_else(|p| p.into_inner());
        if always || pool.0 != primary {
            let fresh = build_pool(&self.hosts, primary, self.pool_options);
            let (_, old) = std::mem::replace(&mut *pool, (primary, fresh));
            tokio::spawn(async move { old.close().await });
        }
        pool.1.clone()
    }

    /// Finds the group's primary now (at start-up: the URL's first host may be a standby).
    pub async fn locate_primary(&self) {
        if self.hosts.len() > 1 {
            if let Some(primary) = self.find_primary().await {
                self.note_primary(primary);
            }
        }
    }

    /// Records where the primary is, counting a move to another host as a failover.
    fn note_primary(&self, primary: usize) {
        let before = self.found.primary.swap(primary, Ordering::AcqRel);
        // Finding it the first time is no failover, even when the URL lists a standby first.
        let located_before = self.found.located.swap(true, Ordering::AcqRel);
        if before != primary && located_before {
            self.found.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                shard = self.index,
                from = %self.hosts[before].name,
                to = %self.hosts[primary].name,
                "the shard's primary is on another host now"
            );
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
                if let Some(primary) = shard.find_primary().await {
                    shard.note_primary(primary);
                    // Connections in the old pool died with the server (or are on a server
                    // that is no longer the primary): start a fresh pool.
                    shard.renew_pool(primary, true);
                    shard.down.store(false, Ordering::Release);
                    shard.probing.store(false, Ordering::Release);
                    tracing::info!(shard = shard.index, "shard is reachable again");
                    return;
                }
            }
        });
    }

    /// A dedicated connection outside the pool (the realtime tail holds one per shard), to
    /// the group's primary: where it was last found, else where it is found now.
    pub async fn connect(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        let first = self
            .connect_to(self.found.primary.load(Ordering::Acquire))
            .await;
        match first {
            Err(_) if self.hosts.len() > 1 => match self.find_primary().await {
                Some(primary) => {
                    self.note_primary(primary);
                    self.connect_to(primary).await
                }
                None => first,
            },
            _ => first,
        }
    }

    async fn connect_to(&self, i: usize) -> Result<sqlx::PgConnection, sqlx::Error> {
        let host = &self.hosts[i];
        let mut conn = host.options.connect().await?;
        if self.hosts.len() > 1 {
            refuse_standby(&mut conn, &host.name).await?;
        }
        Ok(conn)
    }

    /// Whether the shard answers (a fresh connection to its primary, bounded by a second).
    pub async fn ping(&self) -> bool {
        let attempt = async {
            let mut conn = self.connect().await?;
            conn.ping().await?;
            conn.close().await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), attempt).await,
            Ok(Ok(()))
        )
    }

    /// The group's primary: the host that answers and is not in recovery, trying the one
    /// last found first. A plain shard's one host, if it answers.
    async fn find_primary(&self) -> Option<usize> {
        let current = self.found.primary.load(Ordering::Acquire);
        let order = (0..self.hosts.len()).map(|i| (current + i) % self.hosts.len());
        for i in order {
            let host = &self.hosts[i];
            let attempt = async {
                let mut conn = host.options.connect().await?;
                let standby = self.hosts.len() > 1 && in_recovery(&mut conn).await?;
                conn.close().await?;
                Ok::<bool, sqlx::Error>(standby)
            };
            match tokio::time::timeout(Duration::from_secs(1), attempt).await {
                Ok(Ok(false)) => return Some(i),
                Ok(Ok(true)) => tracing::debug!(shard = self.index, host = %host.name, "a standby"),
                Ok(Err(e)) => {
                    tracing::debug!(shard = self.index, host = %host.name, error = %e, "no answer")
                }
                Err(_) => {
                    tracing::debug!(shard = self.index, host = %host.name, "no answer within 1s")
                }
            }
        }
        None
    }
}

/// A pool to host `primary` of `hosts`. In a group, every new connection checks that its
/// server is not in recovery, so writes never go to a standby (after a failover the old
/// primary may come back as one).
fn build_pool(hosts: &Arc<[Host]>, primary: usize, settings: PoolSettings) -> PgPool {
    let options = PgPoolOptions::new()
        .max_connections(settings.size)
        .acquire_timeout(settings.acquire_timeout)
        // A ping per checkout would double the round trips of every claim; a dead connection
        // fails its statement instead and marks the shard down.
        .test_before_acquire(false);
    let host = &hosts[primary];
    let options = if hosts.len() > 1 {
        let name: Arc<str> = host.name.as_str().into();
        options.after_connect(move |conn, _| {
            let name = Arc::clone(&name);
            Box::pin(async move { refuse_standby(conn, &name).await })
        })
    } else {
        options
    };
    options.connect_lazy_with(host.options.clone())
}

async fn in_recovery(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_file_scalar!("sql/in_recovery.sql")
        .fetch_one(conn)
        .await
        .map(|r| r.unwrap_or(true))
}

/// An error (of the connection class, so the shard is marked down and its primary found
/// again) when the connection's server is a standby.
async fn refuse_standby(conn: &mut sqlx::PgConnection, host: &str) -> Result<(), sqlx::Error> {
    if in_recovery(conn).await? {
        return Err(sqlx::Error::Protocol(format!(
            "{host} is a standby (in recovery), not the shard's primary"
        )));
    }
    Ok(())
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
            // 25006: a read-only server (a primary demoted since the connection was made).
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
        ),
        _ => false,
    }
}
