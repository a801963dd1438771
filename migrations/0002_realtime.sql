-- Realtime: the ledger is the event log.
--
-- Each Trove instance tails every shard in transaction order, below the snapshot's xmin
-- horizon (the oldest transaction still running): every row with an xid under the horizon is
-- final, so the tail yields each committed claim exactly once although commits land out of xid
-- order, and a rolled-back claim never appears. The (xid, zone_id, chest_id) key of a row is
-- also the resume position a client can hand back.

CREATE INDEX claims_tail ON claims (xid, zone_id, chest_id);

-- Spawns, so `chests_spawned` events come from the shard too.
CREATE TABLE spawns (
    zone_id     integer     NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    first_chest bigint      NOT NULL CHECK (first_chest >= 1),
    count       bigint      NOT NULL CHECK (count >= 1),
    xid         bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, first_chest)
);

CREATE INDEX spawns_tail ON spawns (xid, zone_id, first_chest);
