-- A shard's applied migration version, identity and contents (admin read; never on a claim
-- path). Unopened chests and ledger rows come from the zone rows and their counter slots, so
-- the cost grows with the zones, not the chests.
SELECT (SELECT max(version) FROM _sqlx_migrations WHERE success) AS version,
       (SELECT count(*) FROM zones) AS "zones!",
       (SELECT coalesce(sum(chest_count), 0) FROM zones)::bigint AS "chests!",
       (SELECT coalesce(sum(opened), 0) FROM zone_counters)::bigint AS "opened!"
