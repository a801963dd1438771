-- One loot table version by its shard-local id.
SELECT id, name, version, entries, rolls FROM loot_tables WHERE id = $1
