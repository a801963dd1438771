-- One seed epoch of a zone, for its transcript (the seed only once revealed).
SELECT epoch, commitment, draw_version,
       CASE WHEN revealed_at IS NOT NULL THEN seed END AS seed, revealed_at
FROM zone_seeds
WHERE zone_id = $1 AND epoch = $2
