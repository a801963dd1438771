-- Zone totals as of a tail position ($2, $3, $4): the counters now minus what committed after
-- the position, so a snapshot plus the events after its position add up exactly.
-- Both "after" scans walk the tail index from the (recent) position, never a whole zone.
-- Rows a zone move copied here are not events, so they are never "after" a position.
SELECT z.name AS "zone!",
       (z.chest_count - coalesce((
           SELECT sum(s.count) FROM spawns s
           WHERE s.zone_id = z.id AND (s.xid, s.zone_id, s.first_chest) > ($2, $3, $4)
             AND NOT s.copied), 0))::bigint AS "total!",
       ((SELECT coalesce(sum(n.opened), 0) FROM zone_counters n WHERE n.zone_id = z.id)
        - (SELECT count(*) FROM (
               SELECT c.zone_id, c.copied FROM claims c
               WHERE (c.xid, c.zone_id, c.chest_id) > ($2, $3, $4)
               ORDER BY c.xid, c.zone_id, c.chest_id
           ) AS after WHERE after.zone_id = z.id AND NOT after.copied))::bigint AS "opened!"
FROM zones z
WHERE z.name = ANY($1)
