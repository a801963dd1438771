//! The followers: one per shard, moving the boards along the ledger with a compare-and-set
//! on the boards' stored position, so every claim counts exactly once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use deadpool_redis::redis::AsyncCommands;
use tokio::sync::watch;

use super::{unavailable, Board, Leaderboards, BATCH};
use crate::error::{Error, Result};
use crate::ledger::{batch_end, Cursor};
use crate::shards::Shard;

impl Leaderboards {
    /// Starts one follower per shard.
    pub fn start(&self, shutdown: watch::Receiver<bool>) {
        for shard in self.shards.all() {
            let (me, shard, mut stop) = (self.clone(), Arc::clone(shard), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    let more = me.step(&shard).await.unwrap_or(false);
                    if !more {
                        tokio::select! {
                            _ = tokio::time::sleep(me.poll) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            });
        }
    }

    /// One batch for one shard; true when there is more to do at once.
    pub(super) async fn step(&self, shard: &Arc<Shard>) -> Result<bool> {
        let key = self.cursor_key(shard.index);
        let k = key.clone();
        let stored: Option<String> = self
            .redis
            .call(|mut c| async move { c.get(k).await })
            .await
            .map_err(unavailable)?;
        let Some(from) = stored.as_deref().and_then(|s| s.parse::<Cursor>().ok()) else {
            // No position: Redis is new or was emptied. Rebuild (one instance does).
            let me = self.clone();
            tokio::spawn(async move {
                match me.rebuild().await {
                    Ok(r) => tracing::info!(rows = r.rows, "leaderboards rebuilt from the ledger"),
                    Err(Error::RebuildRunning) => {}
                    Err(e) => tracing::warn!(error = %e, "leaderboard rebuild failed"),
                }
            });
            return Ok(false);
        };
        let rows = sqlx::query_file!(
            "sql/leaderboard_tail.sql",
            from.xid,
            from.zone_id,
            from.chest_id,
            BATCH
        )
        .fetch_all(&mut *shard.acquire().await?)
        .await
        .map_err(|e| shard.db_error(e))?;
        let Some(horizon) = rows.first().map(|r| r.horizon) else {
            return Ok(false);
        };
        let full = rows.len() as i64 == BATCH;
        let mut deltas: HashMap<(String, String), f64> = HashMap::new();
        let mut last = None;
        let mut oldest = None;
        for r in rows {
            let (
                Some(xid),
                Some(zone_id),
                Some(chest_id),
                Some(zone),
                Some(player),
                Some(loot),
                Some(at),
            ) = (
                r.xid,
                r.zone_id,
                r.chest_id,
                r.zone,
                r.player,
                r.loot,
                r.opened_at,
            )
            else {
                continue;
            };
            last = Some(Cursor {
                xid,
                zone_id,
                chest_id,
            });
            oldest = Some(oldest.map_or(at, |o: chrono::DateTime<chrono::Utc>| o.min(at)));
            let value = self.scores.value(&loot);
            for (board, delta) in [(Board::Chests, 1.0), (Board::LootValue, value)] {
                for z in [None, Some(zone.as_str())] {
                    *deltas
                        .entry((self.board_key(board, z), player.clone()))
                        .or_default() += delta;
                }
            }
        }
        let to = batch_end(full, last, horizon, from);
        if to == from {
            return Ok(false);
        }
        let (script, expected, next) = (Arc::clone(&self.apply), from.to_string(), to.to_string());
        let lock = self.lock_key();
        let applied: i64 = self
            .redis
            .call(|mut c| async move {
                let mut inv = script.key(key);
                inv.key(lock).arg(expected).arg(next);
                for ((board, player), delta) in deltas {
                    inv.arg(board).arg(player).arg(delta);
                }
                inv.invoke_async(&mut c).await
            })
            .await
            .map_err(unavailable)?;
        if applied == 1 {
            if let Some(at) = oldest {
                let lag = (chrono::Utc::now() - at).num_milliseconds().max(0) as u64;
                self.lag_ms.store(lag, Ordering::Relaxed);
            }
        }
        Ok(full && applied == 1)
    }
}
