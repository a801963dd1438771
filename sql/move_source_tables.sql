-- The loot table versions a zone's chests use, with their source-shard ids (to map them).
SELECT lt.id, lt.name, lt.version, lt.entries, lt.rolls
FROM zone_loot_tables zl
JOIN loot_tables lt ON lt.id = zl.loot_table_id
WHERE zl.zone_id = $1
