-- Stores an unrevealed epoch's seed sealed ($3), and no longer in the clear. A reveal that
-- came first wins (it wrote the seed in the clear for good).
UPDATE zone_seeds SET sealed = $3, seed = NULL
WHERE zone_id = $1 AND epoch = $2 AND revealed_at IS NULL
