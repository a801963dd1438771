//! The engine every front end (HTTP API, CLI, probe, benchmarks) drives. Its operations live
//! in the module of their domain (`claims`, `zones`, `loot`, `verify`) as `impl Engine` blocks.

use std::sync::Arc;

use crate::claims::Queues;
use crate::shards::ShardSet;
use crate::zones::ZoneCache;

/// Shards plus the per-instance caches and claim queues built from them. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub shards: ShardSet,
    pub(crate) zones: ZoneCache,
    /// Per shard: claims waiting for the next batched claim statement.
    pub(crate) claim_queues: Arc<Queues>,
}

impl Engine {
    pub fn new(shards: ShardSet) -> Self {
        let claim_queues = Arc::new(Queues::new(shards.all(), shards.batching));
        Engine {
            shards,
            zones: ZoneCache::default(),
            claim_queues,
        }
    }
}
