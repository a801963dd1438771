-- One poll of a shard's tail, one round trip: the horizon (every transaction with an xid
-- below it has finished, a zone move's copies aside, so rows under it are final; it comes
-- from this statement's own snapshot, which also sees all of them: migration 0006) and the
-- events after the tail position ($1, $2, $3) and below the horizon, in position order:
-- opened chests from the ledger, and spawns.
-- Always at least one row; with no events its event columns are NULL. $4 is the batch size.
-- Rows a zone move copied here are not events (they were when they were made on the source);
-- a zone switched in here by a move is one (`arrival`: its subscribers get a fresh snapshot).
-- MATERIALIZED: the horizon is computed once; inlined, the function ran again in every index
-- condition and for every row answered (~70 calls a poll under a claim storm).
-- The loot comes as text: the tail wants only its rarest item, read without a JSON tree.
-- Each arm reads at most $4 rows in index order and each event's zone is a key look-up, so
-- the generic plan (which a prepared poll settles on, and which the follower's session
-- forces) costs what the batch costs: before, it hashed every zone of the shard and sorted
-- every event after the position before taking $4 of them, O(zones + lag) a poll.
WITH h AS MATERIALIZED (
    SELECT trove_ledger_horizon() AS horizon
)
SELECT h.horizon AS "horizon!", e.kind AS "kind?", e.xid AS "xid?", e.zone_id AS "zone_id?",
       e.zone AS "zone?", e.chest_id AS "chest_id?", e.player AS "player?",
       e.claim_id AS "claim_id?", e.loot::text AS "loot?", e.at AS "at?", e.count AS "count?"
FROM h
LEFT JOIN LATERAL (
    SELECT ev.*, z.name AS zone
    FROM (
        (SELECT 'claim' AS kind, c.xid, c.zone_id, c.chest_id, c.player, c.claim_id, c.loot,
                c.opened_at AS at, NULL::bigint AS count
         FROM claims c
         WHERE (c.xid, c.zone_id, c.chest_id) > ($1, $2, $3) AND c.xid < h.horizon
           AND NOT c.copied
         ORDER BY c.xid, c.zone_id, c.chest_id
         LIMIT $4)
        UNION ALL
        (SELECT 'spawn', s.xid, s.zone_id, s.first_chest, NULL, NULL, NULL, s.created_at, s.count
         FROM spawns s
         WHERE (s.xid, s.zone_id, s.first_chest) > ($1, $2, $3) AND s.xid < h.horizon
           AND NOT s.copied
         ORDER BY s.xid, s.zone_id, s.first_chest
         LIMIT $4)
        UNION ALL
        SELECT 'arrival', a.arrived_xid, a.id, 0, NULL, NULL, NULL, now(), NULL
        FROM zones a
        WHERE a.arrived_xid >= $1 AND (a.arrived_xid, a.id, 0::bigint) > ($1, $2, $3)
          AND a.arrived_xid < h.horizon
    ) AS ev
    -- Each event's zone by its key (LIMIT 1 keeps it a look-up: joined, the generic plan
    -- hashed every zone of the shard).
    CROSS JOIN LATERAL (SELECT z.name FROM zones z WHERE z.id = ev.zone_id LIMIT 1) AS z
    ORDER BY ev.xid, ev.zone_id, ev.chest_id
    LIMIT $4
) AS e ON true
ORDER BY e.xid, e.zone_id, e.chest_id
