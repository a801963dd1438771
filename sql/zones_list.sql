-- One shard's page of its live zones in name order after a keyset cursor (the name index),
-- optionally only synthetic or only real ones. Totals from the zone row and its 16 counter
-- slots, as for one zone: no chest is counted. A zone's old copy after a move (`moved`) and
-- one still arriving (`incoming`) are not listed here: its shard lists it.
SELECT z.name, z.chest_count, z.seed_epoch, z.synthetic, z.created_at,
       (SELECT coalesce(sum(c.opened), 0) FROM zone_counters c WHERE c.zone_id = z.id)::bigint AS "opened!"
FROM zones z
WHERE z.name > $1 AND z.state IN ('live', 'fenced') AND ($2::boolean IS NULL OR z.synthetic = $2)
ORDER BY z.name
LIMIT $3
