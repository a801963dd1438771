-- The move in progress of a zone, if any.
SELECT from_shard, to_shard, phase, source_zone_id FROM catalog_moves WHERE name = $1
