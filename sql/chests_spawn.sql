-- Bulk spawn: chest ids $2..=$3 in one insert, no per-row round trips.
WITH link AS (
    INSERT INTO zone_loot_tables (zone_id, loot_table_id) VALUES ($1, $4)
    ON CONFLICT DO NOTHING
)
INSERT INTO chests (zone_id, chest_id, loot_table_id)
SELECT $1, g, $4 FROM generate_series($2::bigint, $3::bigint) AS g
