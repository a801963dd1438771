//! What each player's next claim in a zone draws with: the next nonce and the client seed.
//!
//! The draw is made in Rust before the claim statement runs, so the engine must know the
//! player's next nonce beforehand. It keeps what the last statement said per (zone id,
//! player); the statement checks it against the ledger (the nonce after the player's last)
//! and the player's client seed, and answers `nonce` with those when another instance (or a
//! client-seed change) moved the player on, and the claim draws again. A player not in the
//! cache is taken to be new: nonce 0, no client seed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::names::{validate_client_seed, validate_player_id, validate_zone_name};

/// The player's position in a zone: next nonce in `epoch`, and the client seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub epoch: i32,
    pub nonce: i64,
    pub client_seed: String,
}

impl Next {
    /// A player's first claim in an epoch, with no client seed set.
    pub fn first(epoch: i32) -> Next {
        Next {
            epoch,
            nonce: 0,
            client_seed: String::new(),
        }
    }

    /// The same position seen from `epoch`: a new epoch counts from 0, the seed stays.
    pub fn in_epoch(self, epoch: i32) -> Next {
        match self.epoch == epoch {
            true => self,
            false => Next {
                epoch,
                nonce: 0,
                ..self
            },
        }
    }
}

/// Per-instance cache of `Next` by (zone id, player). A zone id is per shard, so a zone
/// that moved starts afresh on its new shard.
#[derive(Clone, Default)]
pub struct NonceCache {
    map: Arc<RwLock<HashMap<(i32, String), Next>>>,
}

/// Past this many players the cache starts over rather than grow without bound.
const NONCE_CACHE_LIMIT: usize = 1_000_000;

impl NonceCache {
    pub fn get(&self, zone_id: i32, player: &str, epoch: i32) -> Option<Next> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(zone_id, player.to_owned()))
            .cloned()
            .map(|n| n.in_epoch(epoch))
    }

    pub fn put(&self, zone_id: i32, player: &str, next: Next) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= NONCE_CACHE_LIMIT {
            map.clear();
        }
        map.insert((zone_id, player.to_owned()), next);
    }
}

/// One claim at a time per (zone, player) on this instance. A player's claims take
/// consecutive nonces, so concurrent ones would only collide on the player's row and draw
/// again; in turn, each draws with the nonce the previous one left in the cache.
#[derive(Clone, Default)]
pub struct PlayerTurns {
    map: TurnMap,
}

/// (zone, player) → the lock its claims take turns on.
type TurnMap = Arc<Mutex<HashMap<(Arc<str>, String), Arc<tokio::sync::Mutex<()>>>>>;

/// A player's turn in a zone; the next claim of theirs waits until it is dropped.
pub struct Turn {
    key: (Arc<str>, String),
    map: TurnMap,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl PlayerTurns {
    pub async fn take(&self, zone: &Arc<str>, player: &str) -> Turn {
        let key = (Arc::clone(zone), player.to_owned());
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(key.clone()).or_default())
        };
        Turn {
            key,
            map: Arc::clone(&self.map),
            _guard: lock.lock_owned().await,
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Held by the map and this guard only: nobody waits, so the entry goes.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

/// A player's client seed in a zone and the nonce their next claim there draws with.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientSeed {
    pub zone: String,
    pub player: String,
    /// Enters every draw of the player's claims in the zone from their next one on ("": none
    /// set). Set it after the epoch's commitment is published: then not even the server seed
    /// can have been chosen against it.
    pub client_seed: String,
    /// The zone's current seed epoch and the player's next nonce in it.
    pub seed_epoch: i32,
    pub next_nonce: i64,
}

impl Engine {
    /// Sets a player's client seed in a zone (from their next claim on). Refused with 503
    /// `zone_moving` while a move fences the zone.
    pub async fn set_client_seed(
        &self,
        zone: &str,
        player: &str,
        client_seed: &str,
    ) -> Result<ClientSeed> {
        validate_zone_name(zone)?;
        validate_player_id(player)?;
        validate_client_seed(client_seed)?;
        // Fresh: the epoch decides which nonce comes next, and a stale route finds the zone
        // gone (then the catalog is asked again once).
        for _ in 0..2 {
            let info = self.zone_info(zone, true).await?;
            let shard = &self.shards.all()[info.shard];
            let next = sqlx::query_file_scalar!(
                "sql/client_seed_set.sql",
                info.id,
                player,
                info.epoch,
                client_seed
            )
            .fetch_optional(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))?;
            if let Some(next) = next {
                let cached = Next {
                    epoch: info.epoch,
                    nonce: next,
                    client_seed: client_seed.to_owned(),
                };
                self.nonces.put(info.id, player, cached);
                return Ok(ClientSeed {
                    zone: zone.to_owned(),
                    player: player.to_owned(),
                    client_seed: client_seed.to_owned(),
                    seed_epoch: info.epoch,
                    next_nonce: next,
                });
            }
        }
        Err(Error::zone_moving(zone))
    }

    /// A player's client seed in a zone ("" when none is set) and their next nonce.
    pub async fn client_seed(&self, zone: &str, player: &str) -> Result<ClientSeed> {
        validate_zone_name(zone)?;
        validate_player_id(player)?;
        let info = self.zone_info(zone, true).await?;
        let shard = &self.shards.all()[info.shard];
        let row = sqlx::query_file!("sql/client_seed_get.sql", info.id, player, info.epoch)
            .fetch_one(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))?;
        Ok(ClientSeed {
            zone: zone.to_owned(),
            player: player.to_owned(),
            client_seed: row.client_seed,
            seed_epoch: info.epoch,
            next_nonce: row.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_epoch_counts_from_zero_and_keeps_the_seed() {
        let cache = NonceCache::default();
        let next = Next {
            epoch: 3,
            nonce: 7,
            client_seed: "lucky".into(),
        };
        cache.put(1, "alice", next.clone());
        assert_eq!(cache.get(1, "alice", 3), Some(next));
        let later = cache.get(1, "alice", 4).expect("cached");
        assert_eq!((later.nonce, later.client_seed.as_str()), (0, "lucky"));
        assert_eq!(cache.get(2, "alice", 3), None);
    }

    #[tokio::test]
    async fn turns_run_one_at_a_time_per_player_and_leave_nothing_behind() {
        let turns = PlayerTurns::default();
        let zone: Arc<str> = Arc::from("z");
        let first = turns.take(&zone, "alice").await;
        let other = turns.take(&zone, "bob").await;
        let waiting = {
            let (turns, zone) = (turns.clone(), Arc::clone(&zone));
            tokio::spawn(async move { turns.take(&zone, "alice").await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "alice's second claim waits for her first"
        );
        drop(first);
        let second = waiting.await.expect("turn");
        drop((second, other));
        assert!(turns.map.lock().expect("map").is_empty());
    }
}
