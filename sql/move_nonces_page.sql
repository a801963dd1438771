-- A page of zone $1's nonce rows after player $2 (a move's first pass copies them all).
SELECT player, seed_epoch, next_nonce, client_seed
FROM player_nonces
WHERE zone_id = $1 AND player > $2
ORDER BY player
LIMIT $3
