-- Sets player $2's client seed in zone $1 to $4 (from their next claim on), only while the
-- zone is live here: under its fence lock, shared, read as claims read it (trove_zone_fence),
-- so a move either sees the change (by `seed_set_xid`) or has fenced the zone first. No row:
-- the zone is moving.
-- Returns the next nonce in epoch $3, the one the seed first applies to.
INSERT INTO player_nonces AS p (zone_id, player, client_seed, seed_set_xid)
SELECT $1, $2, $4, pg_current_xact_id()::text::bigint
WHERE (trove_zone_fence($1)).state = 'live'
ON CONFLICT (zone_id, player) DO UPDATE
    SET client_seed = excluded.client_seed, seed_set_xid = excluded.seed_set_xid
RETURNING coalesce((SELECT c.nonce + 1 FROM claims c
                    WHERE c.zone_id = $1 AND c.seed_epoch = $3 AND c.player = $2
                      AND c.nonce IS NOT NULL
                    ORDER BY c.nonce DESC LIMIT 1), 0) AS "next!"
