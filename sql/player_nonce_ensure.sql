-- A player's nonce row in zone $1 (made if missing) and what their next claim in epoch $3
-- draws with: the next nonce (a row of an older epoch counts from 0) and the client seed.
-- On conflict the no-op update locks the row and returns its latest committed version.
INSERT INTO player_nonces AS p (zone_id, player, seed_epoch) VALUES ($1, $2, $3)
ON CONFLICT (zone_id, player) DO UPDATE SET player = p.player
RETURNING CASE WHEN p.seed_epoch = $3 THEN p.next_nonce ELSE 0 END AS "next!",
          p.client_seed
