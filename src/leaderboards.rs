//! Leaderboards in Redis, computed from the Postgres ledger, which stays the truth.
//!
//! Boards: `chests` (chests opened) and `loot_value` (points per item by rarity,
//! `TROVE_RARITY_SCORES`), each global and per zone. Synthetic (probe) zones never count.
//!
//! Exactness: boards are never updated by the claim request. Each instance follows every
//! shard's ledger (the same xmin-horizon tail as realtime) and applies a batch with one Lua
//! call that first checks the boards' stored position for that shard is the one the batch
//! starts from, then adds the batch and moves the position: compare-and-set. A retried or
//! replayed claim writes no ledger row, and a batch applied by another instance (or twice)
//! fails the check, so every claim counts exactly once.
//!
//! Rebuild (`trove leaderboards rebuild`, or automatically when Redis comes back empty):
//! per shard, one repeatable-read snapshot aggregates the ledger below its horizon in SQL and
//! streams the rows into temporary keys; then one Lua script swaps them in, deletes the live
//! boards it does not replace, and sets each shard's position to that horizon, after which the
//! tails carry on from exactly there.
//!
//! Rebuild against followers: a board a follower wrote after the rebuild listed the live keys
//! would survive the swap while the positions go back to the horizon, counting its claims
//! twice. So followers apply nothing while the rebuild lock exists (the apply script checks it
//! and the follower retries next poll), and the swap runs only if the lock is still this
//! rebuild's: then no follower wrote between taking the lock and the swap. The rebuild renews
//! its lock while it runs, however long the ledger, so a second rebuild cannot start meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands, Script};
use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::loot::{LootItem, Rarity};
use crate::realtime::Cursor;
use crate::redis_client::{Redis, RedisError};
use crate::shards::{Shard, ShardSet};

/// Points per item of each rarity, `common=1,uncommon=3,…`.
#[derive(Debug, Clone, PartialEq)]
pub struct RarityScores(pub BTreeMap<Rarity, f64>);

impl Default for RarityScores {
    fn default() -> Self {
        RarityScores(BTreeMap::from([
            (Rarity::Common, 1.0),
            (Rarity::Uncommon, 3.0),
            (Rarity::Rare, 10.0),
            (Rarity::Epic, 40.0),
            (Rarity::Legendary, 200.0),
        ]))
    }
}

impl FromStr for RarityScores {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, points) = part
                .split_once('=')
                .ok_or_else(|| format!("expected rarity=points, got {part:?}"))?;
            let rarity: Rarity =
                serde_json::from_value(serde_json::Value::String(name.trim().to_owned()))
                    .map_err(|_| format!("unknown rarity {name:?}"))?;
            let points: f64 = points
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| format!("bad points in {part:?}"))?;
            map.insert(rarity, points);
        }
        Ok(RarityScores(map))
    }
}

impl RarityScores {
    /// The loot value of one recorded draw.
    pub fn value(&self, loot: &serde_json::Value) -> f64 {
        serde_json::from_value::<Vec<LootItem>>(loot.clone())
            .unwrap_or_default()
            .iter()
            .map(|i| self.0.get(&i.rarity).copied().unwrap_or(0.0))
            .sum()
    }

    fn as_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(r, p)| {
                    let name = serde_json::to_value(r)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned));
                    (name.unwrap_or_default(), serde_json::json!(p))
                })
                .collect(),
        )
    }
}

/// The boards Trove keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Board {
    Chests,
    LootValue,
}

impl Board {
    pub const ALL: [Board; 2] = [Board::Chests, Board::LootValue];

    pub fn name(self) -> &'static str {
        match self {
            Board::Chests => "chests",
            Board::LootValue => "loot_value",
        }
    }

    pub fn parse(s: &str) -> Result<Board> {
        match s {
            "chests" => Ok(Board::Chests),
            "loot_value" => Ok(Board::LootValue),
            _ => Err(Error::invalid(
                "invalid_board",
                "boards are chests and loot_value",
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Entry {
    pub rank: u64,
    pub player: String,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlayerStanding {
    #[schema(value_type = String)]
    pub board: &'static str,
    pub zone: Option<String>,
    pub player: String,
    pub rank: u64,
    pub score: f64,
    /// Up to two entries either side, including the player.
    pub neighbours: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub shards: usize,
    pub rows: u64,
    pub zones: usize,
}

/// Applies a batch only if the boards are where the batch starts (compare-and-set) and no
/// rebuild holds the lock (its swap would not see boards written meanwhile).
/// KEYS[1] position key, KEYS[2] rebuild lock; ARGV[1] expected, ARGV[2] new position, then
/// (key, member, delta)*.
const APPLY: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
for i = 3, #ARGV, 3 do
  redis.call('ZINCRBY', ARGV[i], ARGV[i + 2], ARGV[i + 1])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// Swaps a rebuild in, all or nothing, only while the lock is still this run's, and releases it.
/// KEYS[1] rebuild lock; ARGV[1] run, ARGV[2] n, n (temporary, live) pairs to rename, m, m
/// live keys to delete, then (position key, position)*.
/// Returns 1 when swapped, 0 when the lock is not ours, -1 when a temporary key is missing.
const SWAP: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do
  if redis.call('EXISTS', ARGV[i]) == 0 then
    return -1
  end
end
for i = 3, 2 + 2 * n, 2 do
  redis.call('RENAME', ARGV[i], ARGV[i + 1])
end
local at = 3 + 2 * n
local m = tonumber(ARGV[at])
for i = at + 1, at + m do
  redis.call('DEL', ARGV[i])
end
for i = at + m + 1, #ARGV - 1, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1])
end
redis.call('DEL', KEYS[1])
return 1
";

/// Deletes the rebuild lock only if it is still this run's (never another rebuild's).
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Extends the rebuild lock only while it is still this run's (never another rebuild's).
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/// Ledger rows per applied batch.
const BATCH: i64 = 1000;
/// The rebuild lock's lifetime unless renewed (every third of it while the rebuild runs).
/// Short because the lock also holds the followers off: a crashed rebuild stalls the boards
/// for at most this long.
const REBUILD_LOCK_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Leaderboards {
    redis: Redis,
    shards: ShardSet,
    scores: RarityScores,
    apply: Arc<Script>,
    swap: Arc<Script>,
    poll: Duration,
    /// How long the rebuild lock lives unless renewed (`REBUILD_LOCK_TTL`; shorter in tests).
    lock_ttl: Duration,
    /// Milliseconds between a claim's transaction start and its board update, last batch.
    pub lag_ms: Arc<AtomicU64>,
}

fn encode(c: Cursor) -> String {
    format!("{}_{}_{}", c.xid, c.zone_id, c.chest_id)
}

fn decode(s: &str) -> Option<Cursor> {
    let mut p = s.split('_');
    let c = Cursor {
        xid: p.next()?.parse().ok()?,
        zone_id: p.next()?.parse().ok()?,
        chest_id: p.next()?.parse().ok()?,
    };
    p.next().is_none().then_some(c)
}

fn unavailable(e: RedisError) -> Error {
    Error::Unavailable {
        code: "leaderboard_unavailable",
        message: format!("leaderboards are unavailable: {e}"),
    }
}

impl Leaderboards {
    pub fn new(redis: Redis, shards: ShardSet, scores: RarityScores, poll: Duration) -> Self {
        Leaderboards {
            redis,
            shards,
            scores,
            apply: Arc::new(Script::new(APPLY)),
            swap: Arc::new(Script::new(SWAP)),
            poll,
            lock_ttl: REBUILD_LOCK_TTL,
            lag_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the rebuild lock's lifetime (renewed every third of it), so a test can outlast it.
    pub fn with_rebuild_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    fn board_key(&self, board: Board, zone: Option<&str>) -> String {
        match zone {
            Some(z) => self.redis.key(&["lb", board.name(), "zone", z]),
            None => self.redis.key(&["lb", board.name(), "global"]),
        }
    }

    fn cursor_key(&self, shard: usize) -> String {
        self.redis.key(&["lb", "cursor", &shard.to_string()])
    }

    fn lock_key(&self) -> String {
        self.redis.key(&["lb", "rebuild-lock"])
    }

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
    async fn step(&self, shard: &Arc<Shard>) -> Result<bool> {
        let key = self.cursor_key(shard.index);
        let k = key.clone();
        let stored: Option<String> = self
            .redis
            .call(|mut c| async move { c.get(k).await })
            .await
            .map_err(unavailable)?;
        let Some(from) = stored.as_deref().and_then(decode) else {
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
        let to = match (full, last) {
            (true, Some(l)) => l,
            _ => Cursor::below(horizon).max(from),
        };
        if to == from {
            return Ok(false);
        }
        let (script, expected, next) = (Arc::clone(&self.apply), encode(from), encode(to));
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
                    Script::new(RELEASE)
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
                    Script::new(RENEW)
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
            cursors.push((self.cursor_key(shard.index), encode(Cursor::below(horizon))));
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

    /// The top `limit` entries of a board.
    pub async fn top(&self, board: Board, zone: Option<&str>, limit: usize) -> Result<Vec<Entry>> {
        let key = self.board_key(board, zone);
        let rows: Vec<(String, f64)> = self
            .redis
            .call(|mut c| async move { c.zrevrange_withscores(key, 0, limit as isize - 1).await })
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, (player, score))| Entry {
                rank: i as u64 + 1,
                player,
                score,
            })
            .collect())
    }

    /// A player's rank and score, with the entries around it.
    pub async fn standing(
        &self,
        board: Board,
        zone: Option<&str>,
        player: &str,
    ) -> Result<PlayerStanding> {
        let key = self.board_key(board, zone);
        let (k, p) = (key.clone(), player.to_owned());
        let rank: Option<u64> = self
            .redis
            .call(|mut c| async move { c.zrevrank(k, p).await })
            .await
            .map_err(unavailable)?;
        let Some(rank) = rank else {
            return Err(Error::PlayerNotRanked(player.to_owned()));
        };
        let from = rank.saturating_sub(2);
        let rows: Vec<(String, f64)> = self
            .redis
            .call(|mut c| async move {
                c.zrevrange_withscores(key, from as isize, (rank + 2) as isize)
                    .await
            })
            .await
            .map_err(unavailable)?;
        let neighbours: Vec<Entry> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (p, score))| Entry {
                rank: from + i as u64 + 1,
                player: p,
                score,
            })
            .collect();
        let score = neighbours
            .iter()
            .find(|e| e.player == player)
            .map_or(0.0, |e| e.score);
        Ok(PlayerStanding {
            board: board.name(),
            zone: zone.map(str::to_owned),
            player: player.to_owned(),
            rank: rank + 1,
            score,
            neighbours,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarity_scores_parse_and_value_loot() {
        let s: RarityScores = "common=1,legendary=100".parse().expect("parse");
        let loot = serde_json::json!([
            {"item": "gold", "qty": 40, "rarity": "common"},
            {"item": "crown", "qty": 1, "rarity": "legendary"},
            {"item": "gem", "qty": 2, "rarity": "rare"}
        ]);
        assert_eq!(s.value(&loot), 101.0);
        assert!("common=x".parse::<RarityScores>().is_err());
        assert!("mythic=1".parse::<RarityScores>().is_err());
        assert!("common=-1".parse::<RarityScores>().is_err());
        assert_eq!(RarityScores::default().0.len(), 5);
    }

    #[test]
    fn positions_round_trip() {
        let c = Cursor {
            xid: 9,
            zone_id: 3,
            chest_id: 77,
        };
        assert_eq!(decode(&encode(c)), Some(c));
        assert_eq!(decode("1_2"), None);
        assert_eq!(decode("a_b_c"), None);
    }
}
