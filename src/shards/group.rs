//! A replicated shard, watched: every second each host's role and lag, and whether the
//! primary's commits wait for a standby, kept for the metrics. A primary that stops waiting
//! (a failover engine degrading to asynchronous commit, which Trove's documented topology
//! never does) is logged and counted: claims acknowledged then may be on one server only.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;

use super::replicas::Freshness;
use super::{HostRole, Shard, ShardSet};

/// How often a group's hosts are asked (more often with reads from standbys: a quarter of
/// the staleness bound, at least every 100 ms).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

const SYNCHRONOUS: u8 = 1;
const ASYNCHRONOUS: u8 = 2;

/// What the last look at a group found (shared by the shard's copies); `synchronous` is 0
/// until a primary answered.
#[derive(Default)]
pub(super) struct Watched {
    hosts: Mutex<Vec<HostRole>>,
    synchronous: AtomicU8,
    degraded: AtomicU64,
    freshness: Mutex<Freshness>,
    replica_pools: OnceLock<Vec<PgPool>>,
    /// Reads a standby served.
    standby_reads: AtomicU64,
}

impl Watched {
    pub(super) fn freshness(&self) -> MutexGuard<'_, Freshness> {
        self.freshness.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn replica_pools(&self, init: impl FnOnce() -> Vec<PgPool>) -> &[PgPool] {
        self.replica_pools.get_or_init(init)
    }

    pub(super) fn count_standby_read(&self) {
        self.standby_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn standby_reads(&self) -> u64 {
        self.standby_reads.load(Ordering::Relaxed)
    }
}

impl ShardSet {
    /// Watches every replicated shard until `stop` changes.
    pub fn watch_groups(&self, stop: tokio::sync::watch::Receiver<bool>) {
        for shard in self.all().iter().filter(|s| s.host_names().len() > 1) {
            let (shard, mut stop) = (Arc::clone(shard), stop.clone());
            let every = shard.read_staleness().map_or(WATCH_INTERVAL, |bound| {
                (bound / 4).clamp(Duration::from_millis(100), WATCH_INTERVAL)
            });
            tokio::spawn(async move {
                let mut conns = Vec::new();
                loop {
                    shard.look(&mut conns).await;
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                }
            });
        }
    }
}

impl Shard {
    async fn look(&self, conns: &mut Vec<Option<sqlx::PgConnection>>) {
        let started = Instant::now();
        let hosts = self.host_roles_with(conns).await;
        let watched = self.watched();
        watched.freshness().note(started, &hosts);
        let primary = hosts.iter().find(|h| h.role == "primary");
        if let Some(p) = primary.and_then(|p| p.synchronous.map(|s| (p, s))) {
            let (host, now) = (&p.0.host, if p.1 { SYNCHRONOUS } else { ASYNCHRONOUS });
            let before = watched.synchronous.swap(now, Ordering::Relaxed);
            if now == ASYNCHRONOUS && before != ASYNCHRONOUS {
                watched.degraded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    shard = self.index,
                    %host,
                    "the shard's primary commits without waiting for a standby: claims acknowledged now may be lost in a failover"
                );
            } else if now == SYNCHRONOUS && before == ASYNCHRONOUS {
                tracing::info!(
                    shard = self.index,
                    %host,
                    "the shard's primary waits for a standby again"
                );
            }
        }
        *watched.hosts.lock().unwrap_or_else(|p| p.into_inner()) = hosts;
    }

    /// Each standby's lag in WAL bytes at the last look (empty for a plain shard).
    pub fn standby_lags(&self) -> Vec<(String, u64)> {
        let hosts = self
            .watched()
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        hosts
            .iter()
            .filter_map(|h| h.lag_bytes.map(|lag| (h.host.clone(), lag)))
            .collect()
    }

    /// Whether the primary's commits waited for a standby at the last look (None: a plain
    /// shard, or not known yet).
    pub fn synchronous(&self) -> Option<bool> {
        match self.watched().synchronous.load(Ordering::Relaxed) {
            SYNCHRONOUS => Some(true),
            ASYNCHRONOUS => Some(false),
            _ => None,
        }
    }

    /// Times the primary was seen to stop waiting for a standby.
    pub fn degradations(&self) -> u64 {
        self.watched().degraded.load(Ordering::Relaxed)
    }
}
