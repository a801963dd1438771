-- One shard's page of loot tables in name order after a cursor, each with its newest version
-- here. A spawn copies the version it uses to the zone's shard, so a non-home shard may hold
-- older versions of a table but never a newer one: the listing takes the highest per name.
SELECT DISTINCT ON (name) name, version, created_at
FROM loot_tables
WHERE name > $1
ORDER BY name, version DESC
LIMIT $2
