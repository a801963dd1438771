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
        SELECT 'claim' AS kind, c.xid, c.zone_id, c.chest_id, c.player, c.claim_id, c.loot,
               c.opened_at AS at, NULL::bigint AS count
        FROM claims c
        WHERE (c.xid, c.zone_id, c.chest_id) > ($1, $2, $3) AND c.xid < h.horizon
          AND NOT c.copied
        UNION ALL
        SELECT 'spawn', s.xid, s.zone_id, s.first_chest, NULL, NULL, NULL, s.created_at, s.count
        FROM spawns s
        WHERE (s.xid, s.zone_id, s.first_chest) > ($1, $2, $3) AND s.xid < h.horizon
          AND NOT s.copied
        UNION ALL
        SELECT 'arrival', a.arrived_xid, a.id, 0, NULL, NULL, NULL, now(), NULL
        FROM zones a
        WHERE a.arrived_xid >= $1 AND (a.arrived_xid, a.id, 0::bigint) > ($1, $2, $3)
          AND a.arrived_xid < h.horizon
    ) AS ev
    JOIN zones z ON z.id = ev.zone_id
    ORDER BY ev.xid, ev.zone_id, ev.chest_id
    LIMIT $4
) AS e ON true
ORDER BY e.xid, e.zone_id, e.chest_id
