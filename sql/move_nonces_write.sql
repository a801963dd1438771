-- Copies nonce rows onto the target copy $1 (the source's are the truth while it serves).
INSERT INTO player_nonces AS p (zone_id, player, seed_epoch, next_nonce, client_seed)
SELECT $1, n.player, n.seed_epoch, n.next_nonce, n.client_seed
FROM unnest($2::text[], $3::integer[], $4::bigint[], $5::text[])
     AS n (player, seed_epoch, next_nonce, client_seed)
ON CONFLICT (zone_id, player) DO UPDATE
    SET seed_epoch = excluded.seed_epoch, next_nonce = excluded.next_nonce,
        client_seed = excluded.client_seed
