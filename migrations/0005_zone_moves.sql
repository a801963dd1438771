-- Online zone moves (src/moves.rs): a zone's whole state is copied to another shard while the
-- source keeps serving, then the source is fenced, the rest copied, and the target switched
-- in. Exactly one shard serves a zone at any time.

-- Which copy of a zone serves it:
-- `live`     serves claims, spawns and reveals (every zone until it moves);
-- `incoming` a copy being filled on the target: serves nothing;
-- `fenced`   the source during the last copy: claims get 503 zone_moving, nothing changes;
-- `moved`    the source after the switch: serves nothing and reads as absent, but keeps its
--            ledger rows a while (`moved_at`), so every ledger tail (leaderboards above all)
--            reads the claims it made before the fence although the target now has copies.
--            `trove zones cleanup` deletes it once the tails are long past it.
ALTER TABLE zones
    ADD COLUMN state text NOT NULL DEFAULT 'live'
        CHECK (state IN ('live', 'incoming', 'fenced', 'moved')),
    ADD COLUMN moved_at timestamptz,
    -- On a zone that moved here: the tail position (xid) of its arrival. Events before it
    -- were on another shard, so a resume from before it gets a snapshot instead of a replay.
    ADD COLUMN arrived_xid bigint;

-- The realtime tail reads arrivals too (a zone switched in here): a few rows, by index.
CREATE INDEX zones_arrivals ON zones (arrived_xid, id) WHERE arrived_xid IS NOT NULL;

-- Rows a move copied: they get the copying transaction's xid here, so the ledger tails would
-- take them for new claims and spawns. They are not: realtime and the leaderboards skip them
-- (their claims were sent and counted when they were made on the source).
ALTER TABLE claims ADD COLUMN copied boolean NOT NULL DEFAULT false;
ALTER TABLE spawns ADD COLUMN copied boolean NOT NULL DEFAULT false;

-- A zone's state here (NULL: no such zone), read with a fresh snapshot after taking the
-- zone's fence lock in shared mode. A move takes it exclusively to fence the zone, so it waits for
-- every claim statement holding it to commit, and every claim statement after it sees the
-- fence (a statement's own snapshot may predate the wait: hence the function, as in 0003).
-- Many claims hold the shared lock at once; it lives in the lock manager, not in a row, so
-- no row is written by every claim. (7031, zone id) is the two-key advisory lock space.
CREATE FUNCTION trove_zone_state(p_zone_id integer)
RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7031, p_zone_id);
    RETURN (SELECT z.state FROM zones z WHERE z.id = p_zone_id);
END
$$;

-- A draining shard takes no new zone (`trove shards drain`: its zones move off it).
ALTER TABLE catalog_shards ADD COLUMN draining boolean NOT NULL DEFAULT false;

-- Moves in progress, on the catalog shard: what `trove zones move` resumes after a crash.
-- phase: `copying` (the source serves; the target fills), `fenced` (the source refuses
-- claims; the last rows are copied), `switched` (the target serves; the source's copy is
-- being deleted).
CREATE TABLE catalog_moves (
    name       text        PRIMARY KEY REFERENCES catalog_zones (name) ON DELETE CASCADE,
    from_shard integer     NOT NULL REFERENCES catalog_shards (ordinal),
    to_shard   integer     NOT NULL REFERENCES catalog_shards (ordinal),
    phase      text        NOT NULL CHECK (phase IN ('copying', 'fenced', 'switched')),
    -- The zone's id on the source shard (its rows there are deleted after the switch).
    source_zone_id integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_shard <> to_shard)
);
