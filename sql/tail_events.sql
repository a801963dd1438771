-- The shard's events after a tail position and below the horizon, in position order:
-- opened chests from the ledger and spawns. ($1, $2, $3) is the position (exclusive),
-- $4 the horizon (exclusive), $5 the batch size.
SELECT e.kind AS "kind!", e.xid AS "xid!", e.zone_id AS "zone_id!", z.name AS "zone!",
       e.chest_id AS "chest_id!", e.player, e.claim_id, e.loot, e.at AS "at!", e.count
FROM (
    SELECT 'claim' AS kind, c.xid, c.zone_id, c.chest_id, c.player, c.claim_id, c.loot,
           c.opened_at AS at, NULL::bigint AS count
    FROM claims c
    WHERE (c.xid, c.zone_id, c.chest_id) > ($1, $2, $3) AND c.xid < $4
    UNION ALL
    SELECT 'spawn', s.xid, s.zone_id, s.first_chest, NULL, NULL, NULL, s.created_at, s.count
    FROM spawns s
    WHERE (s.xid, s.zone_id, s.first_chest) > ($1, $2, $3) AND s.xid < $4
) AS e
JOIN zones z ON z.id = e.zone_id
ORDER BY e.xid, e.zone_id, e.chest_id
LIMIT $5
