-- One page of a resume: the next $8 ledger rows (of every zone, in tail order) after
-- ($2, $3, $4) and up to ($5, $6, $7), returning the opened chests among them of the zones
-- named in $1, oldest first, each with the page's last position (`last_*`) where the next
-- page starts. No row: nothing left. A page is a statement of its own, so nothing stays open
-- while it is written to the client, and it walks the tail index, never a whole zone. Rows a
-- zone move copied here are not replayed (a resume from before a zone arrived gets a snapshot).
WITH w AS (
    SELECT c.xid, c.zone_id, c.chest_id, c.player, c.claim_id, c.loot, c.opened_at, c.copied
    FROM claims c
    WHERE (c.xid, c.zone_id, c.chest_id) > ($2, $3, $4)
      AND (c.xid, c.zone_id, c.chest_id) <= ($5, $6, $7)
    ORDER BY c.xid, c.zone_id, c.chest_id
    LIMIT $8
),
last AS (
    SELECT w.xid, w.zone_id, w.chest_id
    FROM w
    ORDER BY w.xid DESC, w.zone_id DESC, w.chest_id DESC
    LIMIT 1
)
SELECT l.xid AS "last_xid!", l.zone_id AS "last_zone_id!", l.chest_id AS "last_chest_id!",
       e.xid AS "xid?", e.zone_id AS "zone_id?", e.zone AS "zone?", e.chest_id AS "chest_id?",
       e.player AS "player?", e.claim_id AS "claim_id?", e.loot AS "loot?",
       e.opened_at AS "opened_at?"
FROM last l
LEFT JOIN LATERAL (
    SELECT w.*, z.name AS zone
    FROM w
    JOIN zones z ON z.id = w.zone_id
    WHERE z.name = ANY($1) AND NOT w.copied
) AS e ON true
ORDER BY e.xid, e.zone_id, e.chest_id
