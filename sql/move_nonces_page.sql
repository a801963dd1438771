-- A page of zone $1's client-seed rows after player $2 (a move's first pass copies them all).
SELECT player, client_seed
FROM player_nonces
WHERE zone_id = $1 AND player > $2
ORDER BY player
LIMIT $3
