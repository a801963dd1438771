//! The engine every front end (HTTP API, CLI, probe, benchmarks) drives. Its operations live
//! in the module of their domain (`claims`, `zones`, `loot`, `verify`) as `impl Engine` blocks.

use std::sync::Arc;

use crate::claims::{Batching, NonceCache, PlayerTurns, Queues};
use crate::receipts::ReceiptKeys;
use crate::seeds::SeedKeys;
use crate::shards::ShardSet;
use crate::zones::ZoneCache;

/// Shards plus the per-instance caches and claim queues built from them. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub shards: ShardSet,
    pub(crate) zones: ZoneCache,
    /// Each player's next nonce and client seed per zone, as the shards last said.
    pub(crate) nonces: NonceCache,
    /// One claim at a time per player and zone on this instance.
    pub(crate) turns: PlayerTurns,
    /// Per shard: claims waiting for the next batched claim statement.
    pub(crate) claim_queues: Arc<Queues>,
    /// The pools claim statements run on (one connection per statement slot).
    pub claim_shards: ShardSet,
    /// Signs every claim answer's receipt (once per claim statement).
    pub receipts: Arc<ReceiptKeys>,
    /// Seals and opens unrevealed server seeds.
    pub(crate) seeds: Arc<SeedKeys>,
}

/// The keys an engine holds, none of them in PostgreSQL.
pub struct Keys {
    pub receipts: ReceiptKeys,
    pub seeds: SeedKeys,
}

impl Engine {
    pub fn new(shards: ShardSet, batching: Batching, keys: Keys) -> Self {
        let receipts = Arc::new(keys.receipts);
        // The claim statement's generic plan is index-driven (a test holds it to that), and
        // planning it afresh per call would cost more than running it.
        let claim_shards = shards.derived(
            batching.in_flight as u32,
            &[("plan_cache_mode", "force_generic_plan")],
        );
        let claim_queues = Arc::new(Queues::new(
            claim_shards.all(),
            batching,
            Arc::clone(&receipts),
        ));
        Engine {
            shards,
            zones: ZoneCache::default(),
            nonces: NonceCache::default(),
            turns: PlayerTurns::default(),
            claim_queues,
            claim_shards,
            receipts,
            seeds: Arc::new(keys.seeds),
        }
    }

    /// Per shard: claim statements sent so far, the claims they carried (their ratio is the
    /// mean batch), the time the statements took and the time claims waited for one.
    pub fn claim_statements(&self) -> Vec<crate::claims::SentTotals> {
        self.claim_queues.sent()
    }
}
