-- Every seed epoch of a zone; the seed itself only once revealed.
SELECT epoch, commitment,
       CASE WHEN revealed_at IS NOT NULL THEN seed END AS seed,
       revealed_at
FROM zone_seeds
WHERE zone_id = $1
ORDER BY epoch
