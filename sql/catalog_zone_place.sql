-- Places a new zone unless it is placed already, and returns where it lives. $2 is the shard
-- the hash proposes among the $3 this instance knows; a draining shard takes no new zone, so
-- another of those is chosen by a hash of the name. The primary key makes the name unique
-- across the deployment, so of two racing creations (on instances that may even disagree
-- about the shard count) exactly one placement wins. No row only when a racing placement
-- committed after this statement's snapshot: ask again.
WITH target AS (
    SELECT coalesce(
        (SELECT ordinal FROM catalog_shards WHERE ordinal = $2 AND NOT draining),
        (SELECT ordinal FROM catalog_shards WHERE NOT draining AND ordinal < $3
         ORDER BY hashtextextended($1 || '/' || ordinal, 0) LIMIT 1),
        $2) AS shard
),
placed AS (
    INSERT INTO catalog_zones (name, shard) SELECT $1, shard FROM target
    ON CONFLICT (name) DO NOTHING
    RETURNING shard
)
SELECT shard AS "shard!" FROM placed
UNION ALL
SELECT shard FROM catalog_zones WHERE name = $1
LIMIT 1
