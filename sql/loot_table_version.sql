-- One version of a loot table, or the newest when $2 is NULL.
SELECT id, name, version, entries, rolls
FROM loot_tables
WHERE name = $1 AND ($2::integer IS NULL OR version = $2)
ORDER BY version DESC
LIMIT 1
