//! Placement: which shard a zone lives on, and which shard is a loot table's home.
//!
//! # The scheme
//! The catalog shard (ordinal 0) keeps `catalog_zones` (name → shard) and
//! `catalog_loot_tables` (name → home). A zone lives where it was created (or, later, moved
//! to), whatever the hash says today; the hash over the shards this instance knows only
//! proposes where a *new* zone goes, and the catalog's primary key decides: a zone is placed
//! there before it is created on its shard, so one name is one zone across the deployment,
//! also while instances disagree about the shard count (one has restarted with an appended
//! shard, another not yet). A loot table's home is fixed the same way, so its versions are
//! numbered by one shard for good.
//!
//! # Routing
//! Each instance caches placements (a zone's placement changes only by a move), so a claim
//! costs no extra round trip once its zone is known; the first request for a zone on an
//! instance reads the catalog once. Invariants: a catalog row never points at an
//! unregistered shard (a foreign key), and a zone row exists only on the shard its catalog
//! row names (creation places first). So every instance converges on the catalog: a cached
//! placement is either the catalog's or (after a move) corrected when that shard no longer
//! has the zone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{shard_index, Shard};
use crate::error::{Error, Result};

/// Past this many zones the cache starts over rather than grow without bound.
const CACHE_LIMIT: usize = 200_000;
/// Placements re-asked when a racing placement committed after a statement's snapshot.
const PLACE_ATTEMPTS: usize = 3;

/// The catalog reader of one instance, with its cache. Shared by every pool set derived from
/// the same shards.
pub struct Placement {
    /// The catalog shard's pool.
    catalog: Arc<Shard>,
    /// Shards this instance knows (TROVE_SHARDS): new zones are hashed over these.
    known: usize,
    zones: RwLock<HashMap<String, usize>>,
    /// Cache misses wait here by a hash of the name, so a burst of first requests for one
    /// zone (every player entering a new zone at once) reads the catalog once, not per request.
    lookups: Vec<tokio::sync::Mutex<()>>,
}

/// Stripes of `lookups`.
const LOOKUP_STRIPES: usize = 64;

impl Placement {
    pub(super) fn new(catalog: Arc<Shard>, known: usize) -> Self {
        Placement {
            catalog,
            known,
            zones: RwLock::new(HashMap::new()),
            lookups: (0..LOOKUP_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Where a zone lives, if it exists: the cache, else the catalog.
    pub async fn zone(&self, name: &str) -> Result<Option<usize>> {
        if let Some(shard) = self.cached(name) {
            return Ok(Some(shard));
        }
        let stripe = super::fnv1a_32(name) as usize % LOOKUP_STRIPES;
        let _turn = self.lookups[stripe].lock().await;
        // Another request may have read it while this one waited.
        if let Some(shard) = self.cached(name) {
            return Ok(Some(shard));
        }
        self.zone_fresh(name).await
    }

    /// Where a zone lives, asked of the catalog whatever the cache holds (which it then
    /// holds): for a caller that found the zone missing where the cache said.
    pub async fn zone_fresh(&self, name: &str) -> Result<Option<usize>> {
        let c = &self.catalog;
        let found = sqlx::query_file_scalar!("sql/catalog_zone.sql", name)
            .fetch_optional(&mut *c.acquire().await?)
            .await
            .map_err(|e| c.db_error(e))?;
        let shard = found.map(to_index).transpose()?;
        match shard {
            Some(s) => self.remember(name, s),
            None => self.forget(name),
        }
        Ok(shard)
    }

    /// The cached placement of a zone (no I/O).
    pub fn cached(&self, name: &str) -> Option<usize> {
        let zones = self.zones.read().unwrap_or_else(|p| p.into_inner());
        zones.get(name).copied()
    }

    /// Where a zone lives, placing it (by the hash over the known shards) if it is new.
    pub async fn place_zone(&self, name: &str) -> Result<usize> {
        if let Some(shard) = self.cached(name) {
            return Ok(shard);
        }
        let proposed = shard_index(name, self.known) as i32;
        let c = &self.catalog;
        for _ in 0..PLACE_ATTEMPTS {
            let known = self.known as i32;
            let placed =
                sqlx::query_file_scalar!("sql/catalog_zone_place.sql", name, proposed, known)
                    .fetch_optional(&mut *c.acquire().await?)
                    .await
                    .map_err(|e| c.db_error(e))?;
            if let Some(shard) = placed {
                let shard = to_index(shard)?;
                self.remember(name, shard);
                return Ok(shard);
            }
        }
        Err(Error::Internal(format!(
            "zone {name:?} could not be placed (kept racing)"
        )))
    }

    /// A loot table's home, if it has one.
    pub async fn loot_table_home(&self, name: &str) -> Result<Option<usize>> {
        let c = &self.catalog;
        sqlx::query_file_scalar!("sql/catalog_loot_table.sql", name)
            .fetch_optional(&mut *c.acquire().await?)
            .await
            .map_err(|e| c.db_error(e))?
            .map(to_index)
            .transpose()
    }

    /// A loot table's home, given (by the hash over the known shards) if it is new.
    pub async fn place_loot_table(&self, name: &str) -> Result<usize> {
        let proposed = shard_index(name, self.known) as i32;
        let c = &self.catalog;
        for _ in 0..PLACE_ATTEMPTS {
            let home = sqlx::query_file_scalar!("sql/catalog_loot_table_place.sql", name, proposed)
                .fetch_optional(&mut *c.acquire().await?)
                .await
                .map_err(|e| c.db_error(e))?;
            if let Some(home) = home {
                return to_index(home);
            }
        }
        Err(Error::Internal(format!(
            "loot table {name:?} could not be placed (kept racing)"
        )))
    }

    /// Marks a shard draining (no new zone is placed on it).
    pub async fn drain(&self, shard: usize) -> Result<()> {
        let c = &self.catalog;
        sqlx::query_file!("sql/catalog_shard_drain.sql", shard as i32)
            .execute(&mut *c.acquire().await?)
            .await
            .map_err(|e| c.db_error(e))?;
        Ok(())
    }

    /// The shards that take no new zones.
    pub async fn draining(&self) -> Result<Vec<usize>> {
        let c = &self.catalog;
        let rows = sqlx::query_file_scalar!("sql/catalog_draining.sql")
            .fetch_all(&mut *c.acquire().await?)
            .await
            .map_err(|e| c.db_error(e))?;
        rows.into_iter().map(to_index).collect()
    }

    /// Forgets zones that were deleted (their names may be placed afresh).
    pub async fn remove_zones(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let c = &self.catalog;
        sqlx::query_file!("sql/catalog_zones_delete.sql", names)
            .execute(&mut *c.acquire().await?)
            .await
            .map_err(|e| c.db_error(e))?;
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        for n in names {
            zones.remove(n);
        }
        Ok(())
    }

    /// Drops a cached placement (the shard it named no longer has the zone).
    pub fn forget(&self, name: &str) {
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        zones.remove(name);
    }

    fn remember(&self, name: &str, shard: usize) {
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        if zones.len() >= CACHE_LIMIT {
            zones.clear();
        }
        zones.insert(name.to_owned(), shard);
    }
}

fn to_index(ordinal: i32) -> Result<usize> {
    usize::try_from(ordinal)
        .map_err(|_| Error::Internal(format!("the catalog names shard {ordinal}")))
}
