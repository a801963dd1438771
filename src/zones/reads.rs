//! A zone's totals and its chest listing: the read-heavy routes. With reads from standbys on
//! (`TROVE_READ_REPLICA_STALENESS_MS`), a standby of the zone's shard that is within the
//! staleness bound answers them; one that is not, does not answer, or does not have the
//! zone yet leaves it to the primary, as every read did before.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};

use super::{ChestPage, ChestState, ChestView, EpochView, ZoneStats, ZoneView};
use crate::engine::Engine;
use crate::error::Result;
use crate::names::validate_zone_name;
use crate::shards::Shard;

impl Engine {
    /// A zone's totals and seed commitments. O(1) in zone size: no chest is counted.
    pub async fn zone(&self, zone: &str) -> Result<ZoneView> {
        validate_zone_name(zone)?;
        if let Some((shard, mut conn, stats)) = self.on_standby(zone).await {
            if let Ok(epochs) = epochs(&mut conn, stats.id).await {
                return Ok(zone_view(zone, shard.index, stats, epochs));
            }
        }
        let (shard, stats) = self.locate(zone).await?;
        let epochs = epochs(&mut *shard.acquire().await?, stats.id)
            .await
            .map_err(|e| shard.db_error(e))?;
        Ok(zone_view(zone, shard.index, stats, epochs))
    }

    /// One keyset page of a zone's chests in id order.
    pub async fn chests(
        &self,
        zone: &str,
        state: Option<ChestState>,
        after: i64,
        limit: i64,
    ) -> Result<ChestPage> {
        validate_zone_name(zone)?;
        let page = Page {
            state,
            after,
            limit,
        };
        if let Some((_, mut conn, stats)) = self.on_standby(zone).await {
            if let Ok(chests) = chest_page(&mut conn, stats.id, &page).await {
                return Ok(chests);
            }
        }
        let (shard, stats) = self.locate(zone).await?;
        chest_page(&mut *shard.acquire().await?, stats.id, &page)
            .await
            .map_err(|e| shard.db_error(e))
    }

    /// The zone's shard, a connection to a standby of it within the staleness bound, and the
    /// zone's totals there; None when no standby may answer (the primary's turn).
    async fn on_standby(
        &self,
        zone: &str,
    ) -> Option<(Arc<Shard>, PoolConnection<Postgres>, ZoneStats)> {
        let shard = Arc::clone(self.shards.zone_shard(zone).await.ok()?);
        let mut conn = shard.standby_connection().await?;
        let stats = zone_stats(&mut conn, zone).await.ok()??;
        Some((shard, conn, stats))
    }
}

/// A zone's row and totals on the shard `conn` is on (None: it has no such live zone).
pub(super) async fn zone_stats(
    conn: &mut PgConnection,
    zone: &str,
) -> Result<Option<ZoneStats>, sqlx::Error> {
    let row = sqlx::query_file!("sql/zone_stats.sql", zone)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| ZoneStats {
        id: r.id,
        chest_count: r.chest_count,
        seed_epoch: r.seed_epoch,
        commitment: r.commitment,
        opened: r.opened,
    }))
}

async fn epochs(conn: &mut PgConnection, zone_id: i32) -> Result<Vec<EpochView>, sqlx::Error> {
    let rows = sqlx::query_file!("sql/zone_epochs.sql", zone_id)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|e| EpochView {
            epoch: e.epoch,
            seed_commitment: hex::encode(e.commitment),
            seed: e.seed.map(hex::encode),
            revealed_at: e.revealed_at,
        })
        .collect())
}

fn zone_view(zone: &str, shard: usize, row: ZoneStats, epochs: Vec<EpochView>) -> ZoneView {
    let seed = epochs
        .iter()
        .filter(|e| e.seed.is_some())
        .max_by_key(|e| e.epoch)
        .and_then(|e| e.seed.clone());
    ZoneView {
        zone: zone.to_owned(),
        shard,
        total: row.chest_count,
        opened: row.opened,
        remaining: row.chest_count - row.opened,
        seed_epoch: row.seed_epoch,
        seed_commitment: hex::encode(row.commitment),
        seed,
        epochs,
    }
}

/// Which page of a chest listing.
struct Page {
    state: Option<ChestState>,
    after: i64,
    limit: i64,
}

async fn chest_page(
    conn: &mut PgConnection,
    zone_id: i32,
    page: &Page,
) -> Result<ChestPage, sqlx::Error> {
    let rows = sqlx::query_file!(
        "sql/chests_list.sql",
        zone_id,
        page.after,
        page.limit,
        page.state != Some(ChestState::Opened),
        page.state != Some(ChestState::Unopened)
    )
    .fetch_all(conn)
    .await?;
    let next = if rows.len() as i64 == page.limit {
        rows.last().map(|r| r.chest_id)
    } else {
        None
    };
    let chests = rows
        .into_iter()
        .map(|r| ChestView {
            chest_id: r.chest_id,
            state: if r.opened_by.is_some() {
                "opened"
            } else {
                "unopened"
            },
            opened_by: r.opened_by,
            opened_at: r.opened_at,
        })
        .collect();
    Ok(ChestPage { chests, next })
}
