-- A page of zone $1's client-seed rows set at or after tail position $2 (since a move's
-- previous pass began), after ($2, $3) in (seed_set_xid, player) order; $4 rows.
SELECT player, client_seed, seed_set_xid AS "seed_set_xid!"
FROM player_nonces
WHERE zone_id = $1 AND seed_set_xid IS NOT NULL AND (seed_set_xid, player) > ($2, $3)
ORDER BY seed_set_xid, player
LIMIT $4
