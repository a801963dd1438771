-- The switch: the catalog names the target, and the move goes on to deleting the source's copy.
WITH placed AS (
    UPDATE catalog_zones SET shard = $2 WHERE name = $1
)
UPDATE catalog_moves SET phase = 'switched', updated_at = now() WHERE name = $1
