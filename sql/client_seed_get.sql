-- Player $2's client seed in zone $1 ("": none set) and the nonce their next claim in
-- epoch $3 draws with: the one after their last there (0: none yet; by the claims_nonce
-- index, backwards). Read only.
SELECT coalesce((SELECT c.nonce + 1 FROM claims c
                 WHERE c.zone_id = $1 AND c.seed_epoch = $3 AND c.player = $2
                   AND c.nonce IS NOT NULL
                 ORDER BY c.nonce DESC LIMIT 1), 0) AS "next!",
       coalesce((SELECT p.client_seed FROM player_nonces p
                 WHERE p.zone_id = $1 AND p.player = $2), '') AS "client_seed!"
