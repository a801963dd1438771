-- The zones and loot table names a shard holds (registering a deployment that predates the
-- catalog; admin only, once).
SELECT (SELECT coalesce(array_agg(name), '{}') FROM zones) AS "zones!",
       (SELECT coalesce(array_agg(DISTINCT name), '{}') FROM loot_tables) AS "loot_tables!"
