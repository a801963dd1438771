-- Every claim of a zone with what re-deriving its draw needs; streamed, never collected. In
-- each epoch, each player's claims in nonce order (so gaps and reorderings show).
SELECT c.claim_id, c.chest_id, c.player, c.seed_epoch, c.loot, c.loot_table_id, c.nonce,
       c.client_seed, c.opened_at, s.revealed_at, s.draw_version
FROM claims c
JOIN zone_seeds s ON s.zone_id = c.zone_id AND s.epoch = c.seed_epoch
WHERE c.zone_id = $1
ORDER BY c.seed_epoch, c.player, c.nonce, c.chest_id
