-- Deletes up to $2 chests, $2 ledger rows and $2 nonce rows of a dropped zone id; returns how
-- many went.
WITH gone_chests AS (
    DELETE FROM chests WHERE (zone_id, chest_id) IN (
        SELECT zone_id, chest_id FROM chests WHERE zone_id = $1 LIMIT $2)
    RETURNING 1
),
gone_claims AS (
    DELETE FROM claims WHERE (zone_id, chest_id) IN (
        SELECT zone_id, chest_id FROM claims WHERE zone_id = $1 LIMIT $2)
    RETURNING 1
),
gone_nonces AS (
    DELETE FROM player_nonces WHERE (zone_id, player) IN (
        SELECT zone_id, player FROM player_nonces WHERE zone_id = $1 LIMIT $2)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone_chests) + (SELECT count(*) FROM gone_claims)
       + (SELECT count(*) FROM gone_nonces) AS "gone!"
