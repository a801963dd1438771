-- One server of a shard's group: a standby (in recovery) or the primary, and where its WAL
-- is (replayed, on a standby; written, on the primary), so a standby's lag is the difference.
-- On the primary, whether its commits wait for a standby (synchronous_standby_names set: a
-- failover engine clears it when it degrades to asynchronous commit).
SELECT pg_is_in_recovery() AS "standby!",
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END)::text AS "lsn",
       current_setting('synchronous_standby_names') <> '' AS "synchronous!"
