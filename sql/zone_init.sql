-- A new zone's first seed epoch (its seed sealed, $2, with its commitment, $3) and its 16
-- counter slots.
WITH seed AS (
    INSERT INTO zone_seeds (zone_id, epoch, sealed, commitment) VALUES ($1, 1, $2, $3)
)
INSERT INTO zone_counters (zone_id, slot)
SELECT $1, s FROM generate_series(0, 15) AS s
