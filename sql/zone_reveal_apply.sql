-- A reveal's second step (zone $1, epoch $2 ending): the seed in the clear ($3; the schema
-- checks it against the commitment), the next epoch with its seed sealed ($4) and
-- commitment ($5), and the zone moved on to it.
WITH revealed AS (
    UPDATE zone_seeds SET revealed_at = now(), seed = $3, sealed = NULL
    WHERE zone_id = $1 AND epoch = $2
    RETURNING epoch
),
next_seed AS (
    INSERT INTO zone_seeds (zone_id, epoch, sealed, commitment) VALUES ($1, $2 + 1, $4, $5)
    RETURNING epoch
),
bump AS (
    UPDATE zones SET seed_epoch = $2 + 1 WHERE id = $1
)
SELECT (SELECT epoch FROM revealed) AS "epoch!", (SELECT epoch FROM next_seed) AS "next_epoch!"
