-- Every transaction with an xid below this has finished: rows under it are final.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "horizon!"
