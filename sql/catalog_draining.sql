-- The shards that take no new zones.
SELECT ordinal FROM catalog_shards WHERE draining ORDER BY ordinal
