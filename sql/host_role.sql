-- One server of a shard's group: a standby (in recovery) or the primary, and where its WAL
-- is (replayed, on a standby; written, on the primary), so a standby's lag is the difference.
SELECT pg_is_in_recovery() AS "standby!",
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END)::text AS "lsn"
