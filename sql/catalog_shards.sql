-- The registered shards, in ordinal order (the catalog shard; a handful of rows).
SELECT ordinal, shard_id FROM catalog_shards ORDER BY ordinal
