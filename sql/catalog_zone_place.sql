-- Places a new zone on shard $2 unless it is placed already, and returns where it lives: the
-- primary key makes the name unique across the deployment, so of two racing creations (on
-- instances that may even disagree about the shard count) exactly one placement wins. No row
-- only when a racing placement committed after this statement's snapshot: ask again.
WITH placed AS (
    INSERT INTO catalog_zones (name, shard) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING
    RETURNING shard
)
SELECT shard AS "shard!" FROM placed
UNION ALL
SELECT shard FROM catalog_zones WHERE name = $1
LIMIT 1
