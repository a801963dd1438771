-- Copies client-seed rows onto the target copy $1 (the source's are the truth while it
-- serves). Nonces need no copying: they are the ledger's, and its rows move with the claims.
INSERT INTO player_nonces AS p (zone_id, player, client_seed)
SELECT $1, n.player, n.client_seed
FROM unnest($2::text[], $3::text[]) AS n (player, client_seed)
ON CONFLICT (zone_id, player) DO UPDATE SET client_seed = excluded.client_seed
