-- A shard's applied migration version (`/readyz`, often: nothing else).
SELECT (SELECT max(version) FROM _sqlx_migrations WHERE success) AS version
