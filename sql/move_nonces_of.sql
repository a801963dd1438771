-- The nonce rows of zone $1's players $2: those whose claims a move's pass is copying (their
-- counters moved on with those claims).
SELECT player, seed_epoch, next_nonce, client_seed
FROM player_nonces
WHERE zone_id = $1 AND player = ANY($2)
