-- Marks a shard draining (it takes no new zones; `trove rebalance` moves none onto it).
UPDATE catalog_shards SET draining = true WHERE ordinal = $1
