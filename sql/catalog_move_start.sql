-- Records a move (or finds the one in progress) and returns it.
WITH ins AS (
    INSERT INTO catalog_moves (name, from_shard, to_shard, phase, source_zone_id)
    VALUES ($1, $2, $3, 'copying', $4)
    ON CONFLICT (name) DO NOTHING
    RETURNING from_shard, to_shard, phase, source_zone_id
)
SELECT from_shard AS "from_shard!", to_shard AS "to_shard!", phase AS "phase!",
       source_zone_id AS "source_zone_id!"
FROM ins
UNION ALL
SELECT from_shard, to_shard, phase, source_zone_id FROM catalog_moves WHERE name = $1
LIMIT 1
