//! Shards: which PostgreSQL owns a zone, one pool per shard, and failing fast when one is down.
//!
//! # The sharding scheme
//! `shard = jump_consistent_hash(fnv1a_32(name), shard_count)` (`hash`): appending shard `n+1`
//! moves only `1/(n+1)` of the zones and never one between two old shards. Shards are
//! therefore only ever appended to `TROVE_SHARDS`, never reordered or removed. Loot tables use
//! the same function on their name to find their home shard, which numbers their versions.

mod hash;
mod shard;
mod status;

use std::sync::Arc;
use std::time::Duration;

pub use hash::{fnv1a_32, jump_consistent_hash, shard_index};
pub use shard::{PoolStats, Shard};
pub use status::{latest_migration, report, ShardReadiness, ShardStatus, MIGRATOR};

use crate::error::{Error, Result};

/// What the shards need from the configuration (`TROVE_SHARDS`, `TROVE_DB_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// PostgreSQL URLs, in shard order.
    pub urls: Vec<String>,
    /// Connections per shard pool (API reads and writes).
    pub pool_size: u32,
    /// How long a request waits for a pooled connection before `ShardUnavailable`.
    pub acquire_timeout: Duration,
    /// Server-side statement timeout on every connection.
    pub statement_timeout: Duration,
}

/// All shards, in configuration order.
#[derive(Clone)]
pub struct ShardSet {
    shards: Arc<Vec<Arc<Shard>>>,
}

impl ShardSet {
    /// Builds a lazy pool per shard: nothing connects yet, so Trove starts (and serves the
    /// healthy shards) even when one shard is down.
    pub fn new(settings: &Settings) -> Result<Self> {
        if settings.urls.is_empty() {
            return Err(Error::invalid("invalid_config", "no shard URLs configured"));
        }
        let shards = settings
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| Shard::new(i, url.trim(), settings).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(ShardSet {
            shards: Arc::new(shards),
        })
    }

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
        }
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
