//! Rebuilding every board from the ledgers: per shard, one repeatable-read snapshot
//! aggregates the ledger below its horizon and streams it into temporary keys; one script
//! swaps them in under the rebuild lock (module docs of `leaderboards`).

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_redis::redis::{self, AsyncCommands, Script};
use futures_util::TryStreamExt;
use serde::Serialize;

use super::{unavailable, Board, Leaderboards};
use crate::error::{Error, Result};
use crate::ledger::Cursor;

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub shards: usize,
    pub rows: u64,
    pub zones: usize,
}

impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rebuilt leaderboards from {} shard(s): {} (zone, player) rows over {} zones",
            self.shards, self.rows, self.zones
        )
    }
}

impl Leaderboards {
    /// Recomputes every board from the ledgers of all shards and swaps them in atomically.
    /// Fails with `RebuildRunning` when another rebuild holds the lock, and with
    /// `RebuildLockLost` (changing nothing) when the lock stopped being ours before the swap.
    pub async fn rebuild(&self) -> Result<RebuildReport> {
        let run = uuid::Uuid::now_v7().simple().to_string();
        let lock = self.lock_key();
        let (l, r) = (lock.clone(), run.clone());
        let got: Option<String> = self
            .redis
            .call_long(|mut c| async move {
                redis::cmd("SET")
                    .arg(l)
                    .arg(r)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.lock_ttl.as_millis() as u64)
                    .query_async(&mut c)
                    .await
            })
            .await
            .map_err(unavailable)?;
        if got.is_none() {
            return Err(Error::RebuildRunning);
        }
        let lost = AtomicBool::new(false);
        let result = tokio::select! {
            r = self.rebuild_locked(&run, &lost) => r,
            never = self.keep_lock(&lock, &run, &lost) => match never {},
        };
        if result.is_err() {
            // A successful swap released the lock itself.
            let (l, r) = (lock, run.clone());
            let _: std::result::Result<i64, _> = self
                .redis
                .call_long(|mut c| async move {
                    Script::new(include_str!("lua/release.lua"))
                        .key(l)
                        .arg(r)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            let pattern = self.redis.key(&["lbtmp", &run, "*"]);
            let _ = self.delete_matching(&pattern).await;
        }
        result
    }

    /// Renews the lock every third of its lifetime for as long as the rebuild runs (the rebuild
    /// finishing drops this future). When the lock is no longer ours it sets `lost`, so the
    /// rebuild stops early; the swap would refuse anyway.
    async fn keep_lock(&self, lock: &str, run: &str, lost: &AtomicBool) -> Infallible {
        let every = self.lock_ttl / 3;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (l, r) = (lock.to_owned(), run.to_owned());
            let ttl_ms = self.lock_ttl.as_millis() as u64;
            let renewed: std::result::Result<i64, _> = self
                .redis
                .call_long(|mut c| async move {
                    Script::new(include_str!("lua/renew.lua"))
                        .key(l)
                        .arg(r)
                        .arg(ttl_ms)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            match renewed {
                Ok(0) => {
                    lost.store(true, Ordering::Relaxed);
                    return std::future::pending().await;
                }
                Ok(_) => {}
                // Transient: the next tick tries again, and the swap checks the lock anyway.
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew the leaderboard rebuild lock")
                }
            }
        }
    }

    async fn rebuild_locked(&self, run: &str, lost: &AtomicBool) -> Result<RebuildReport> {
        let still_ours = || {
            if lost.load(Ordering::Relaxed) {
                Err(Error::RebuildLockLost)
            } else {
                Ok(())
            }
        };
        let tmp = |board: Board, zone: Option<&str>| match zone {
            Some(z) => self.redis.key(&["lbtmp", run, board.name(), "zone", z]),
            None => self.redis.key(&["lbtmp", run, board.name(), "global"]),
        };
        let scores = self.scores.as_json();
        let mut zones: HashSet<String> = HashSet::new();
        let mut cursors = Vec::new();
        let mut rows_total = 0u64;
        let mut any_rows = false;
        for shard in self.shards.all() {
            still_ours()?;
            let pool = shard.pool()?;
            let mut tx = pool.begin().await.map_err(|e| shard.db_error(e))?;
            sqlx::query_file!("sql/repeatable_read.sql")
                .execute(&mut *tx)
                .await
                .map_err(|e| shard.db_error(e))?;
            sqlx::query_file!("sql/rebuild_statement_timeout.sql")
                .execute(&mut *tx)
                .await
                .map_err(|e| shard.db_error(e))?;
            let horizon = sqlx::query_file_scalar!("sql/snapshot_horizon.sql")
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| shard.db_error(e))?;
            let mut stream =
                sqlx::query_file!("sql/leaderboard_rebuild.sql", horizon, scores).fetch(&mut *tx);
            let mut pipe = redis::pipe();
            let mut pending = 0;
            while let Some(row) = stream.try_next().await.map_err(|e| shard.db_error(e))? {
                let (zone, player) = (row.zone, row.player);
                for (board, score) in [
                    (Board::Chests, row.chests as f64),
                    (Board::LootValue, row.loot_value),
                ] {
                    pipe.zincr(tmp(board, None), &player, score).ignore();
                    pipe.zincr(tmp(board, Some(&zone)), &player, score).ignore();
                }
                zones.insert(zone);
                rows_total += 1;
                any_rows = true;
                pending += 1;
                if pending == 500 {
                    still_ours()?;
                    let p = std::mem::replace(&mut pipe, redis::pipe());
                    self.redis
                        .call_long(|mut c| async move { p.query_async::<()>(&mut c).await })
                        .await
                        .map_err(unavailable)?;
                    pending = 0;
                }
            }
            drop(stream);
            if pending > 0 {
                self.redis
                    .call_long(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                    .await
                    .map_err(unavailable)?;
            }
            tx.commit().await.map_err(|e| shard.db_error(e))?;
            cursors.push((
                self.cursor_key(shard.index),
                Cursor::below(horizon).to_string(),
            ));
        }

        // Live board keys that the rebuild does not replace (zones gone from the ledger). Listed
        // under the lock, which keeps followers from adding any before the swap.
        still_ours()?;
        let live_pattern = self.redis.key(&["lb", "*", "*"]);
        let existing = self.scan(&live_pattern).await?;
        let mut renames = Vec::new();
        for board in Board::ALL {
            if any_rows {
                renames.push((tmp(board, None), self.board_key(board, None)));
            }
            for z in &zones {
                renames.push((tmp(board, Some(z)), self.board_key(board, Some(z))));
            }
        }
        let replaced: HashSet<&String> = renames.iter().map(|(_, live)| live).collect();
        let cursor_prefix = self.redis.key(&["lb", "cursor", ""]);
        let lock = self.lock_key();
        let stale: Vec<String> = existing
            .into_iter()
            .filter(|k| !replaced.contains(k) && !k.starts_with(&cursor_prefix) && *k != lock)
            .collect();
        let (script, run) = (Arc::clone(&self.swap), run.to_owned());
        let swapped: i64 = self
            .redis
            .call_long(|mut c| async move {
                let mut inv = script.key(lock);
                inv.arg(run).arg(renames.len());
                for (from, to) in renames {
                    inv.arg(from).arg(to);
                }
                inv.arg(stale.len());
                for k in stale {
                    inv.arg(k);
                }
                for (k, v) in cursors {
                    inv.arg(k).arg(v);
                }
                inv.invoke_async(&mut c).await
            })
            .await
            .map_err(unavailable)?;
        match swapped {
            1 => {}
            0 => return Err(Error::RebuildLockLost),
            _ => {
                return Err(Error::Internal(
                    "a rebuild's temporary board vanished before the swap".into(),
                ))
            }
        }
        Ok(RebuildReport {
            shards: self.shards.len(),
            rows: rows_total,
            zones: zones.len(),
        })
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>> {
        let pattern = pattern.to_owned();
        self.redis
            .call_long(|mut c| async move {
                let mut keys = Vec::new();
                let mut iter: redis::AsyncIter<String> = c.scan_match(pattern).await?;
                while let Some(k) = iter.next_item().await {
                    keys.push(k?);
                }
                Ok(keys)
            })
            .await
            .map_err(unavailable)
    }

    async fn delete_matching(&self, pattern: &str) -> Result<()> {
        for k in self.scan(pattern).await? {
            let _ = self
                .redis
                .call_long(|mut c| async move { c.del::<_, ()>(k).await })
                .await;
        }
        Ok(())
    }
}
