-- The shard-local id of a loot table version.
SELECT id FROM loot_tables WHERE name = $1 AND version = $2
