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
//!
//! # Layout
//! `scores` (boards and rarity points), `follow` (the per-shard followers), `rebuild`, and
//! the reads here; the Lua scripts are in `lua/`.

mod follow;
mod rebuild;
mod scores;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{AsyncCommands, Script};
use serde::Serialize;

pub use rebuild::RebuildReport;

/// `trove leaderboards` actions.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BoardCommand {
    /// Recompute every board from the ledgers of all shards and swap them in atomically.
    Rebuild,
}
pub use scores::{Board, RarityScores};

use crate::error::{Error, Result};
use crate::redis_client::{Redis, RedisError};
use crate::shards::ShardSet;

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

/// Ledger rows per applied batch.
pub(super) const BATCH: i64 = 1000;
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

pub(super) fn unavailable(e: RedisError) -> Error {
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
            apply: Arc::new(Script::new(include_str!("lua/apply.lua"))),
            swap: Arc::new(Script::new(include_str!("lua/swap.lua"))),
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

    pub(super) fn board_key(&self, board: Board, zone: Option<&str>) -> String {
        match zone {
            Some(z) => self.redis.key(&["lb", board.name(), "zone", z]),
            None => self.redis.key(&["lb", board.name(), "global"]),
        }
    }

    pub(super) fn cursor_key(&self, shard: usize) -> String {
        self.redis.key(&["lb", "cursor", &shard.to_string()])
    }

    pub(super) fn lock_key(&self) -> String {
        self.redis.key(&["lb", "rebuild-lock"])
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
