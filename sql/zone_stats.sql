-- A zone's totals without counting chests: chest_count plus the 16 counter slots.
SELECT z.id, z.chest_count, z.seed_epoch, s.commitment,
       (SELECT coalesce(sum(c.opened), 0) FROM zone_counters c WHERE c.zone_id = z.id)::bigint AS "opened!"
FROM zones z
JOIN zone_seeds s ON s.zone_id = z.id AND s.epoch = z.seed_epoch
WHERE z.name = $1 AND z.state <> 'moved'
