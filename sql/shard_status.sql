-- A shard's applied migration version and zone count (admin read; never on a claim path).
SELECT (SELECT max(version) FROM _sqlx_migrations WHERE success) AS version,
       (SELECT count(*) FROM zones) AS "zones!"
