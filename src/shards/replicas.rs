//! Reads from standbys: with `TROVE_READ_REPLICA_STALENESS_MS` set, read-heavy routes (zone
//! totals, chest listings) may be served by a standby of a replicated shard, but only by one
//! known to hold everything its primary had committed at most that long ago, else by the
//! primary. The watcher knows: each look notes the primary's WAL position (stamped with the
//! look's start, so every commit acknowledged before that instant is at or below it) and each
//! standby's replayed position; a standby that has replayed past a noted position holds every
//! commit acknowledged before its stamp.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Postgres;

use super::{HostRole, Shard};

/// Primary positions kept: enough to date a standby that far behind (it is not used then).
const KEPT: usize = 256;

/// How fresh each standby is, from the watcher's looks.
#[derive(Default)]
pub(super) struct Freshness {
    /// The primary's WAL position at recent looks, oldest first, each with the look's start.
    primary: VecDeque<(Instant, u64)>,
    /// Per host: the latest instant before which the standby holds every commit.
    as_of: Vec<Option<Instant>>,
}

impl Freshness {
    /// Takes a look's answers (`hosts` in the URL's order), begun at `started`.
    pub(super) fn note(&mut self, started: Instant, hosts: &[HostRole]) {
        let primary = hosts
            .iter()
            .find(|h| h.role == "primary")
            .and_then(|h| h.lsn);
        if let Some(lsn) = primary {
            self.primary.push_back((started, lsn));
            while self.primary.len() > KEPT {
                self.primary.pop_front();
            }
        }
        self.as_of = hosts
            .iter()
            .map(|h| match (h.role, h.lsn) {
                ("standby", Some(replayed)) => self
                    .primary
                    .iter()
                    .rev()
                    .find(|(_, p)| *p <= replayed)
                    .map(|(at, _)| *at),
                _ => None,
            })
            .collect();
    }

    /// The standby that is freshest, if it is within `bound` now.
    fn freshest(&self, bound: Duration) -> Option<usize> {
        let now = Instant::now();
        self.as_of
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (i, at)))
            .filter(|(_, at)| now.saturating_duration_since(*at) <= bound)
            .max_by_key(|(_, at)| *at)
            .map(|(i, _)| i)
    }
}

impl Shard {
    /// A connection to the freshest standby within the staleness bound, for a read that may
    /// be that stale; None when reads from standbys are off, none is within the bound, or it
    /// does not answer (the caller reads from the primary).
    pub async fn standby_connection(&self) -> Option<PoolConnection<Postgres>> {
        let bound = self.read_staleness()?;
        let freshest = self.watched().freshness().freshest(bound)?;
        match self.replica_pool(freshest).acquire().await {
            Ok(conn) => {
                self.watched().count_standby_read();
                Some(conn)
            }
            Err(e) => {
                tracing::debug!(shard = self.index, error = %e, "a standby read; the primary answers");
                None
            }
        }
    }

    /// Reads a standby served.
    pub fn standby_reads(&self) -> u64 {
        self.watched().standby_reads()
    }

    /// Host `i`'s pool for reads (lazy: nothing connects until a read is sent there).
    fn replica_pool(&self, i: usize) -> PgPool {
        let pools = self.watched().replica_pools(|| {
            self.host_options()
                .map(|(_, options)| {
                    PgPoolOptions::new()
                        .max_connections(REPLICA_POOL_SIZE)
                        .acquire_timeout(Duration::from_secs(1))
                        .test_before_acquire(false)
                        .connect_lazy_with(options.clone())
                })
                .collect()
        });
        pools[i].clone()
    }
}

/// Connections per standby for reads.
const REPLICA_POOL_SIZE: u32 = 8;
