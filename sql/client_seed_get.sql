-- Player $2's client seed in zone $1 and their next nonce in epoch $3 (no row: none set,
-- nonce 0).
SELECT p.client_seed, CASE WHEN p.seed_epoch = $3 THEN p.next_nonce ELSE 0 END AS "next!"
FROM player_nonces p
WHERE p.zone_id = $1 AND p.player = $2
