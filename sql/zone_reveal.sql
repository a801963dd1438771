-- Reveal the current epoch's seed and start the next epoch with a fresh committed seed.
-- One statement: the zone row lock orders it against spawns, other reveals and a move's fence
-- (a zone that is not live here reveals nothing).
WITH zone AS (
    SELECT id, seed_epoch FROM zones WHERE name = $1 AND state = 'live' FOR UPDATE
),
revealed AS (
    UPDATE zone_seeds s SET revealed_at = now()
    FROM zone
    WHERE s.zone_id = zone.id AND s.epoch = zone.seed_epoch
    RETURNING s.epoch, s.seed, s.commitment
),
next_seed AS (
    INSERT INTO zone_seeds (zone_id, epoch, seed, commitment)
    SELECT id, seed_epoch + 1, $2, sha256($2) FROM zone
    RETURNING epoch, commitment
),
bump AS (
    UPDATE zones z SET seed_epoch = z.seed_epoch + 1 FROM zone WHERE z.id = zone.id
)
SELECT r.epoch, r.seed, r.commitment, n.epoch AS next_epoch, n.commitment AS next_commitment
FROM revealed r, next_seed n
