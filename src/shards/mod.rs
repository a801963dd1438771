//! Shards: which PostgreSQL owns a zone, one pool per shard, and failing fast when one is down.
//!
//! # The sharding scheme
//! A zone lives where the catalog says (`placement`): where it was created, whatever the
//! hash says today. `jump_consistent_hash(fnv1a_32(name), shard_count)` (`hash`) only
//! proposes a shard for a new zone or loot table. Shards are registered (`registry`): each
//! knows its identity, and TROVE_SHARDS lists them in ordinal order, only ever appended.

pub mod cli;
mod group;
mod hash;
mod hosts;
mod placement;
mod registry;
mod replicas;
mod roles;
mod shard;
mod status;

use std::sync::Arc;
use std::time::Duration;

pub use hash::{fnv1a_32, jump_consistent_hash, shard_index};
pub use hosts::split_shard_list;
pub use placement::Placement;
pub use registry::Identity;
pub use roles::{host_lines, HostRole};
pub use shard::{PoolStats, Shard};
pub use status::{latest_migration, report, MoveInProgress, ShardReadiness, ShardStatus, MIGRATOR};

use crate::error::{Error, Result};

/// Connections to the catalog shard for placement look-ups (one statement each, never held
/// while waiting for another connection).
const CATALOG_POOL_SIZE: u32 = 8;

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
    /// How stale a read from a standby may be (`None`: reads go to the primary).
    pub read_staleness: Option<Duration>,
}

/// All shards, in configuration order, and where zones live on them.
#[derive(Clone)]
pub struct ShardSet {
    shards: Arc<Vec<Arc<Shard>>>,
    /// Shared by every set derived from this one.
    placement: Arc<Placement>,
    /// What the set was built with (a shard added later gets the same).
    settings: Arc<Settings>,
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
        // The catalog gets a pool of its own: a spawn reads it while holding a connection of
        // its zone's shard, which may be the catalog shard's own API pool.
        let catalog = Arc::new(shards[0].derived(CATALOG_POOL_SIZE, &[]));
        let placement = Arc::new(Placement::new(catalog, shards.len()));
        Ok(ShardSet {
            shards: Arc::new(shards),
            placement,
            settings: Arc::new(settings.clone()),
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
            placement: Arc::clone(&self.placement),
            settings: Arc::clone(&self.settings),
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

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The shard a zone lives on: `ZoneNotFound` when it does not exist.
    pub async fn zone_shard(&self, zone: &str) -> Result<&Arc<Shard>> {
        match self.placement.zone(zone).await? {
            Some(i) => self.known(i),
            None => Err(Error::ZoneNotFound(zone.to_owned())),
        }
    }

    /// The shard a zone lives on as the catalog says now (not the cache): after finding the
    /// zone missing where the cache said (it moved).
    pub async fn zone_shard_fresh(&self, zone: &str) -> Result<&Arc<Shard>> {
        match self.placement.zone_fresh(zone).await? {
            Some(i) => self.known(i),
            None => Err(Error::ZoneNotFound(zone.to_owned())),
        }
    }

    /// The shard a zone lives on, placing the zone there if it is new.
    pub async fn place_zone(&self, zone: &str) -> Result<&Arc<Shard>> {
        let i = self.placement.place_zone(zone).await?;
        self.known(i)
    }

    /// The shard a zone lives on, or for a zone that does not exist yet the one it would be
    /// placed on (a WebSocket may watch a zone before its first spawn).
    pub async fn zone_shard_or_proposed(&self, zone: &str) -> Result<&Arc<Shard>> {
        match self.placement.zone(zone).await? {
            Some(i) => self.known(i),
            None => Ok(&self.shards[shard_index(zone, self.shards.len())]),
        }
    }

    /// `zone_shard_or_proposed`, asked of the catalog rather than the cache.
    pub async fn zone_shard_fresh_or_proposed(&self, zone: &str) -> Result<&Arc<Shard>> {
        match self.placement.zone_fresh(zone).await? {
            Some(i) => self.known(i),
            None => Ok(&self.shards[shard_index(zone, self.shards.len())]),
        }
    }

    /// The shard index a zone is known to live on (no I/O; the hash's proposal when this
    /// instance has not looked it up), for metric labels.
    pub fn zone_shard_label(&self, zone: &str) -> usize {
        self.placement
            .cached(zone)
            .unwrap_or_else(|| shard_index(zone, self.shards.len()))
    }

    /// The home of a loot table, if it has one; `create` gives a new table its home.
    pub async fn loot_table_home(&self, name: &str, create: bool) -> Result<Option<&Arc<Shard>>> {
        let home = if create {
            Some(self.placement.place_loot_table(name).await?)
        } else {
            self.placement.loot_table_home(name).await?
        };
        home.map(|i| self.known(i)).transpose()
    }

    /// Shard `i`, or 503 `shard_unknown` when the catalog names a shard this instance was not
    /// started with (it was added since: restart with the new TROVE_SHARDS).
    fn known(&self, i: usize) -> Result<&Arc<Shard>> {
        self.shards.get(i).ok_or_else(|| Error::Unavailable {
            code: "shard_unknown",
            message: format!(
                "this zone lives on shard {i}, which this instance does not know: restart it with the new TROVE_SHARDS"
            ),
        })
    }
}
