//! `GET /v1/zones`: every zone of the deployment, a keyset page at a time, gathered from
//! every shard (each answers its own first page after the cursor; the pages are merged).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// One zone in the listing: its totals, without its seed commitments (`GET /v1/zones/{zone}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ZoneSummary {
    pub zone: String,
    pub shard: usize,
    pub total: i64,
    pub opened: i64,
    pub remaining: i64,
    pub seed_epoch: i32,
    /// Made by the fairness probe (kept out of leaderboards).
    pub synthetic: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ZoneList {
    pub zones: Vec<ZoneSummary>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

impl Engine {
    /// Zones named after `after`, in name order, at most `limit`; `synthetic` keeps only
    /// synthetic (true) or real (false) ones. A down shard fails the listing (503) rather
    /// than leaving its zones out unsaid.
    pub async fn list_zones(
        &self,
        after: &str,
        limit: i64,
        synthetic: Option<bool>,
    ) -> Result<ZoneList> {
        let mut tasks = tokio::task::JoinSet::new();
        for shard in self.shards.all() {
            let shard = shard.clone();
            let after = after.to_owned();
            tasks.spawn(async move {
                let rows = sqlx::query_file!("sql/zones_list.sql", after, synthetic, limit)
                    .fetch_all(&mut *shard.acquire().await?)
                    .await
                    .map_err(|e| shard.db_error(e))?;
                Ok::<_, Error>(
                    rows.into_iter()
                        .map(|r| ZoneSummary {
                            zone: r.name,
                            shard: shard.index,
                            total: r.chest_count,
                            opened: r.opened,
                            remaining: r.chest_count - r.opened,
                            seed_epoch: r.seed_epoch,
                            synthetic: r.synthetic,
                            created_at: r.created_at,
                        })
                        .collect::<Vec<_>>(),
                )
            });
        }
        let mut zones = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            zones.extend(joined.map_err(|e| Error::Internal(format!("zone listing: {e}")))??);
        }
        // A zone mid-switch can be `fenced` on one shard and `live` on the other for an
        // instant: list it once, on the shard the catalog names.
        zones.sort_by(|a, b| a.zone.cmp(&b.zone));
        let mut unique: Vec<ZoneSummary> = Vec::with_capacity(zones.len());
        for z in zones {
            match unique.last_mut() {
                Some(last) if last.zone == z.zone => {
                    if matches!(self.shards.zone_shard(&z.zone).await, Ok(s) if s.index == z.shard)
                    {
                        *last = z;
                    }
                }
                _ => unique.push(z),
            }
        }
        unique.truncate(limit as usize);
        let next = (unique.len() as i64 == limit)
            .then(|| unique.last().map(|z| z.zone.clone()))
            .flatten();
        Ok(ZoneList {
            zones: unique,
            next,
        })
    }
}
