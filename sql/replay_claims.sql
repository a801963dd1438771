-- Opened chests of some zones between two tail positions: after ($2, $3, $4), up to and
-- including ($5, $6, $7). At most $8 ledger rows (of all zones) are scanned; `scanned` tells
-- the caller whether the window held them all.
WITH w AS (
    SELECT c.xid, c.zone_id, c.chest_id, c.player, c.claim_id, c.loot, c.opened_at
    FROM claims c
    WHERE (c.xid, c.zone_id, c.chest_id) > ($2, $3, $4)
      AND (c.xid, c.zone_id, c.chest_id) <= ($5, $6, $7)
    ORDER BY c.xid, c.zone_id, c.chest_id
    LIMIT $8
)
SELECT s.scanned AS "scanned!", e.xid, e.zone_id, e.zone, e.chest_id, e.player, e.claim_id, e.loot, e.opened_at
FROM (SELECT count(*) AS scanned FROM w) AS s
LEFT JOIN LATERAL (
    SELECT w.*, z.name AS zone
    FROM w JOIN zones z ON z.id = w.zone_id
    WHERE z.name = ANY($1)
    ORDER BY w.xid, w.zone_id, w.chest_id
) AS e ON true
