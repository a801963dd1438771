-- The newest version of a loot table.
SELECT id, name, version, entries, rolls
FROM loot_tables
WHERE name = $1
ORDER BY version DESC
LIMIT 1
