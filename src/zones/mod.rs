//! Zones: spawning chests in bulk, zone totals without counting, commit-reveal of seeds,
//! listing chests, and the per-instance cache of what a claim needs to draw.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Connection;

mod listing;
pub use listing::{ZoneList, ZoneSummary};
mod reads;
mod sealing;
mod spawn;

use crate::audit::Audit;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fairness;
use crate::loot::LootTable;
use crate::names::validate_zone_name;
use crate::shards::Shard;

/// Most chests one spawn request may add; a million insert in a few seconds.
pub const MAX_SPAWN: i64 = 1_000_000;
/// Most chests a zone may hold over its life.
pub const MAX_ZONE_CHESTS: i64 = 1_000_000_000;

/// What a claim needs to draw in a zone. Seeds change only by a reveal, and loot table
/// versions are immutable, so this is safe to cache: the claim statement re-checks the epoch
/// and that loot was rolled for the chest's table, and the caller reloads when either moved.
pub struct ZoneInfo {
    /// The shard it lives on.
    pub shard: usize,
    pub id: i32,
    pub epoch: i32,
    /// A fairness-probe zone: its claims stay out of leaderboards and claim metrics.
    pub synthetic: bool,
    /// The epoch's seed as its HMAC key (`fairness::SeedKey`).
    pub seed_key: crate::fairness::SeedKey,
    /// The epoch's draw version (`fairness`): 1 draws with the claim id, 2 with the player's
    /// client seed and nonce.
    pub draw_version: i16,
    pub tables: Vec<Arc<LootTable>>,
}

/// Look-ups of a zone before it is called missing: the cached shard, then the catalog (again
/// if a move switched it between the catalog read and the shard's answer).
const LOOKUPS: usize = 3;

/// A zone's row and totals on its shard.
struct ZoneStats {
    id: i32,
    chest_count: i64,
    seed_epoch: i32,
    commitment: Vec<u8>,
    opened: i64,
}

/// Per-instance cache of `ZoneInfo` by zone name.
#[derive(Clone, Default)]
pub struct ZoneCache {
    map: Arc<RwLock<HashMap<String, Arc<ZoneInfo>>>>,
}

/// Past this many zones the cache starts over rather than grow without bound.
const ZONE_CACHE_LIMIT: usize = 100_000;

impl ZoneCache {
    fn get(&self, zone: &str) -> Option<Arc<ZoneInfo>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(zone).cloned()
    }

    fn put(&self, zone: &str, info: Arc<ZoneInfo>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ZONE_CACHE_LIMIT {
            map.clear();
        }
        map.insert(zone.to_owned(), info);
    }

    pub fn forget(&self, zone: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.remove(zone);
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SpawnResult {
    pub zone: String,
    pub spawned: i64,
    pub remaining: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EpochView {
    pub epoch: i32,
    pub seed_commitment: String,
    /// Hex seed once revealed, else null.
    pub seed: Option<String>,
    pub revealed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ZoneView {
    pub zone: String,
    pub shard: usize,
    pub total: i64,
    pub opened: i64,
    pub remaining: i64,
    /// The epoch new claims draw from.
    pub seed_epoch: i32,
    /// SHA-256 (hex) of the current epoch's secret seed.
    pub seed_commitment: String,
    /// The most recently revealed seed (hex), null until the first reveal. A reveal starts
    /// a new epoch, so this is the previous epoch's seed; `epochs` lists every epoch's
    /// commitment and, once revealed, its seed.
    pub seed: Option<String>,
    pub epochs: Vec<EpochView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevealResult {
    pub zone: String,
    pub epoch: i32,
    pub seed: String,
    pub seed_commitment: String,
    pub next_epoch: i32,
    pub next_seed_commitment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChestState {
    Unopened,
    Opened,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChestView {
    pub chest_id: i64,
    /// `unopened` or `opened`.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub opened_by: Option<String>,
    pub opened_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChestPage {
    pub chests: Vec<ChestView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<i64>,
}

impl Engine {
    /// Whether a zone this instance has claimed in is synthetic (from the cache only: an
    /// unknown zone counts as real).
    pub fn is_synthetic(&self, zone: &str) -> bool {
        self.zones.get(zone).is_some_and(|z| z.synthetic)
    }

    /// The cached draw material of a zone, loaded from its shard on a miss or when `reload`.
    pub async fn zone_info(&self, zone: &str, reload: bool) -> Result<Arc<ZoneInfo>> {
        if !reload {
            if let Some(info) = self.zones.get(zone) {
                return Ok(info);
            }
        }
        // A reload may be after a move, and a shard without the zone may be one it moved
        // away from: then the catalog is asked again.
        let mut fresh = reload;
        let mut tries = 0;
        let (shard, mut conn, row) = loop {
            tries += 1;
            let shard = if fresh {
                self.shards.zone_shard_fresh(zone).await?
            } else {
                self.shards.zone_shard(zone).await?
            };
            let mut conn = shard.acquire().await?;
            let row = sqlx::query_file!("sql/zone_load.sql", zone)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| shard.db_error(e))?;
            match row {
                Some(row) => break (shard, conn, row),
                // Not where the cache said, or moved on again since the catalog was read.
                None if tries < LOOKUPS => fresh = true,
                None => {
                    self.zones.forget(zone);
                    self.shards.placement().forget(zone);
                    return Err(Error::ZoneNotFound(zone.to_owned()));
                }
            }
        };
        let tables = sqlx::query_file!("sql/zone_loot_tables.sql", row.id)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| shard.db_error(e))?
            .into_iter()
            .map(|t| LootTable::stored(t.id, t.name, t.version, t.entries, t.rolls).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let info = Arc::new(ZoneInfo {
            shard: shard.index,
            id: row.id,
            epoch: row.seed_epoch,
            synthetic: row.synthetic,
            seed_key: crate::fairness::SeedKey::new(&self.open_seed(
                row.seed,
                row.sealed.as_deref(),
                &row.commitment,
            )?),
            draw_version: row.draw_version,
            tables,
        });
        self.zones.put(zone, Arc::clone(&info));
        Ok(info)
    }

    /// (zone id, total, opened) from the zone row and its counter slots.
    async fn zone_counts(&self, zone: &str) -> Result<(i32, i64, i64)> {
        let (_, row) = self.locate(zone).await?;
        Ok((row.id, row.chest_count, row.opened))
    }

    /// The zone's shard and its id there, without opening its seed (for readers of its
    /// ledger that must work whatever state its seeds are in).
    pub(crate) async fn zone_location(&self, zone: &str) -> Result<(Arc<Shard>, i32)> {
        let (shard, stats) = self.locate(zone).await?;
        Ok((shard, stats.id))
    }

    /// The zone's shard and its totals there. A shard that no longer has the zone (a
    /// placement cached from before a move) makes it ask the catalog again, once.
    async fn locate(&self, zone: &str) -> Result<(Arc<Shard>, ZoneStats)> {
        for tries in 0..LOOKUPS {
            let shard = if tries > 0 {
                self.shards.zone_shard_fresh(zone).await?
            } else {
                self.shards.zone_shard(zone).await?
            };
            let shard = Arc::clone(shard);
            let stats = reads::zone_stats(&mut *shard.acquire().await?, zone)
                .await
                .map_err(|e| shard.db_error(e))?;
            if let Some(stats) = stats {
                return Ok((shard, stats));
            }
        }
        Err(Error::ZoneNotFound(zone.to_owned()))
    }

    /// Deletes the synthetic (probe) zones created before `before` on every shard, with all
    /// their rows, and returns how many went. Real zones are never deleted. Each shard works
    /// in batches so no transaction grows with the number of old probe zones.
    pub async fn delete_synthetic_zones(
        &self,
        before: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<u64> {
        const BATCH: i64 = 100;
        let mut tasks = tokio::task::JoinSet::new();
        for shard in self.shards.all() {
            let (shard, zones, all) = (shard.clone(), self.zones.clone(), self.shards.clone());
            tasks.spawn(async move {
                let mut deleted = 0u64;
                loop {
                    let names =
                        sqlx::query_file_scalar!("sql/synthetic_zones_delete.sql", before, BATCH)
                            .fetch_all(&mut *shard.acquire().await?)
                            .await
                            .map_err(|e| shard.db_error(e))?;
                    for name in &names {
                        zones.forget(name);
                    }
                    // A name left placed would only be created again on the same shard.
                    all.placement().remove_zones(&names).await?;
                    deleted += names.len() as u64;
                    if (names.len() as i64) < BATCH {
                        return Ok::<u64, Error>(deleted);
                    }
                }
            });
        }
        let mut total = 0;
        while let Some(joined) = tasks.join_next().await {
            total += joined.map_err(|e| Error::Internal(format!("cleanup task: {e}")))??;
        }
        // Many shards, many batches: one row on the catalog shard once all went.
        let catalog = &self.shards.all()[0];
        let detail = serde_json::json!({"deleted": total, "created_before": before});
        audit
            .record(&mut *catalog.acquire().await?, "ok", detail)
            .await
            .map_err(|e| catalog.db_error(e))?;
        Ok(total)
    }

    /// An epoch's seed: in the clear once revealed (or from before seeds were sealed), else
    /// opened from its sealed form and checked against its commitment.
    pub(crate) fn open_seed(
        &self,
        clear: Option<Vec<u8>>,
        sealed: Option<&[u8]>,
        commitment: &[u8],
    ) -> Result<Vec<u8>> {
        match (clear, sealed) {
            (Some(seed), _) => Ok(seed),
            (None, Some(sealed)) => self.seeds.open(sealed, commitment),
            (None, None) => Err(Error::Internal("a seed epoch without its seed".into())),
        }
    }

    /// Reveals the current epoch's seed and commits to a fresh one for the claims after it:
    /// one transaction, under the zone's fence lock (claims in flight commit first).
    pub async fn reveal(&self, zone: &str, audit: &Audit) -> Result<RevealResult> {
        validate_zone_name(zone)?;
        let (shard, _) = self.locate(zone).await?;
        let next = fairness::new_server_seed()?;
        let next_commitment = fairness::commitment(&next);
        let next_sealed = self.seeds.seal(&next, &next_commitment)?;
        let mut conn = shard.acquire().await?;
        let mut tx = conn.begin().await.map_err(|e| shard.db_error(e))?;
        let row = sqlx::query_file!("sql/zone_reveal.sql", zone)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| shard.db_error(e))?;
        if let Some(row) = row {
            let seed = self.open_seed(row.seed, row.sealed.as_deref(), &row.commitment)?;
            let done = sqlx::query_file!(
                "sql/zone_reveal_apply.sql",
                row.id,
                row.seed_epoch,
                &seed,
                &next_sealed,
                &next_commitment[..]
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| shard.db_error(e))?;
            let detail = serde_json::json!({"epoch": done.epoch, "next_epoch": done.next_epoch});
            audit
                .record(&mut tx, "ok", detail)
                .await
                .map_err(|e| shard.db_error(e))?;
            tx.commit().await.map_err(|e| shard.db_error(e))?;
            self.zones.forget(zone);
            return Ok(RevealResult {
                zone: zone.to_owned(),
                epoch: done.epoch,
                seed: hex::encode(seed),
                seed_commitment: hex::encode(row.commitment),
                next_epoch: done.next_epoch,
                next_seed_commitment: hex::encode(next_commitment),
            });
        }
        tx.rollback().await.map_err(|e| shard.db_error(e))?;
        // Not live here: moving (or, rarely, moved away a moment ago).
        let state = sqlx::query_file_scalar!("sql/zone_state.sql", zone)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| shard.db_error(e))?;
        Err(match state {
            Some(_) => Error::zone_moving(zone),
            None => Error::ZoneNotFound(zone.to_owned()),
        })
    }
}
