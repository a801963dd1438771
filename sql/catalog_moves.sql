-- Every move in progress (`trove shards`, `trove zones moves`).
SELECT name, from_shard, to_shard, phase, updated_at FROM catalog_moves ORDER BY name
