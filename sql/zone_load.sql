-- What a claim needs to draw in a zone: its id, current epoch and that epoch's secret seed
-- (sealed; in the clear only from before seeds were sealed), commitment and draw version.
SELECT z.id, z.seed_epoch, z.synthetic, s.seed, s.sealed, s.commitment, s.draw_version
FROM zones z
JOIN zone_seeds s ON s.zone_id = z.id AND s.epoch = z.seed_epoch
WHERE z.name = $1 AND z.state <> 'moved'
