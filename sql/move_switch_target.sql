-- The target copy starts serving; its arrival position marks where its events start here.
UPDATE zones SET state = 'live', arrived_xid = pg_current_xact_id()::text::bigint
WHERE id = $1 AND state = 'incoming'
