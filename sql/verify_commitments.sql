-- Every seed epoch of a zone with its seed (in the clear once revealed, else sealed) and
-- commitment (the admin's view: `trove verify` checks each commitment is SHA-256 of its seed).
SELECT epoch, seed, sealed, commitment FROM zone_seeds WHERE zone_id = $1 ORDER BY epoch
