-- A new zone's first seed epoch and its 16 counter slots.
WITH seed AS (
    INSERT INTO zone_seeds (zone_id, epoch, seed, commitment) VALUES ($1, 1, $2, sha256($2))
)
INSERT INTO zone_counters (zone_id, slot)
SELECT $1, s FROM generate_series(0, 15) AS s
