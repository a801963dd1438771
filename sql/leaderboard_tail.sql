-- The next ledger rows for the leaderboards: after the boards' position ($1, $2, $3) and below
-- the horizon (from this statement's own snapshot, moves' copies aside: migration 0006),
-- synthetic (probe) zones left out, and rows a zone move copied here too (they counted when
-- they were made on the source).
-- Always at least one row, carrying the horizon; $4 is the batch size.
-- MATERIALIZED: the horizon is computed once; inlined, the function ran again in every index
-- condition and for every row answered (~70 calls a poll under a claim storm).
WITH h AS MATERIALIZED (
    SELECT trove_ledger_horizon() AS horizon
)
SELECT h.horizon AS "horizon!", e.xid AS "xid?", e.zone_id AS "zone_id?",
       e.chest_id AS "chest_id?", e.zone AS "zone?", e.player AS "player?", e.loot AS "loot?",
       e.opened_at AS "opened_at?"
FROM h
LEFT JOIN LATERAL (
    SELECT c.xid, c.zone_id, c.chest_id, z.name AS zone, c.player, c.loot, c.opened_at
    FROM claims c
    JOIN zones z ON z.id = c.zone_id
    WHERE (c.xid, c.zone_id, c.chest_id) > ($1, $2, $3) AND c.xid < h.horizon
      AND NOT z.synthetic AND NOT c.copied
    ORDER BY c.xid, c.zone_id, c.chest_id
    LIMIT $4
) AS e ON true
ORDER BY e.xid, e.zone_id, e.chest_id
