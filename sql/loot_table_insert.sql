-- Store a loot table version (a new one on the home shard, or a copy on a zone's shard).
-- Versions are immutable: a copy that already exists is left as it is. Returns no row when a
-- concurrent transaction stored the same version first (its row is not in this statement's
-- snapshot); the caller then reads it with loot_table_id.sql.
WITH ins AS (
    INSERT INTO loot_tables (name, version, entries, rolls) VALUES ($1, $2, $3, $4)
    ON CONFLICT (name, version) DO NOTHING
    RETURNING id
)
SELECT id AS "id!" FROM ins
UNION ALL
SELECT id FROM loot_tables WHERE name = $1 AND version = $2
LIMIT 1
