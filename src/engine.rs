//! The engine every front end (HTTP API, CLI, probe, benchmarks) drives. Its operations live
//! in the module of their domain (`claims`, `zones`, `loot`, `verify`) as `impl Engine` blocks.

use crate::shards::ShardSet;
use crate::zones::ZoneCache;

/// Shards plus the per-instance caches built from them. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub shards: ShardSet,
    pub(crate) zones: ZoneCache,
}

impl Engine {
    pub fn new(shards: ShardSet) -> Self {
        Engine {
            shards,
            zones: ZoneCache::default(),
        }
    }
}
