-- The loot table versions a zone's chests were spawned with (usually one).
SELECT t.id, t.name, t.version, t.entries, t.rolls
FROM zone_loot_tables zl
JOIN loot_tables t ON t.id = zl.loot_table_id
WHERE zl.zone_id = $1
ORDER BY t.id
