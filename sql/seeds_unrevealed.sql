-- Every unrevealed seed epoch on a shard (one per zone, a few more while moves run): what
-- sealing at start-up and `trove seeds reseal` look at.
SELECT zone_id, epoch, seed, sealed, commitment FROM zone_seeds WHERE revealed_at IS NULL
