-- Every transaction with an xid below this has finished: under it, the ledger is final.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "horizon!"
