-- The ledger tails' horizon, without a zone move's bulk copies (src/moves/).
--
-- A tail reads rows whose xid lies below its snapshot's xmin: every transaction under it has
-- finished. A move's copy transactions hold that back for every zone of the shard while they
-- run, though the rows they write are `copied` and no tail ever reads them. So the horizon
-- leaves out the transactions of sessions named `trove-move-copy` (which run nothing but
-- those copies and deletes): the oldest other running xid of the statement's snapshot, or
-- its xmax. Leaving out a copy that is running is safe (its rows are not events); treating a
-- copy as an ordinary transaction only delays events. pg_stat_activity is read only while a
-- zone is in motion on this shard (a copy arriving or one that left), the one time copies run.
-- PL/pgSQL, so its plans are made once per session (a tail polls many times a second, and
-- planning the pg_stat_activity branch on every call cost more than the claims' own work),
-- and STABLE, so it runs in the calling statement's snapshot, the one its rows are read with.
CREATE FUNCTION trove_ledger_horizon()
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    s pg_snapshot := pg_current_snapshot();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM zones WHERE state IN ('incoming', 'moved')) THEN
        RETURN pg_snapshot_xmin(s)::text::bigint;
    END IF;
    RETURN coalesce(
        (SELECT min(x::text::bigint)
         FROM pg_snapshot_xip(s) AS x
         WHERE x::xid NOT IN (
             SELECT a.backend_xid FROM pg_stat_activity a
             WHERE a.application_name = 'trove-move-copy' AND a.backend_xid IS NOT NULL)),
        pg_snapshot_xmax(s)::text::bigint);
END
$$;

-- What the function asks on every tail poll: a few rows at most, by index.
CREATE INDEX zones_in_motion ON zones (id) WHERE state IN ('incoming', 'moved');
