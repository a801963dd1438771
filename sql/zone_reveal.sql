-- Reveal the current epoch's seed and start the next epoch with a fresh committed seed.
-- One statement. The zone's fence lock, exclusively, first (as a move's fence takes it): it
-- waits for every claim statement in flight, and later ones wait for the reveal and then see
-- the new epoch, so no claim lands in the epoch once its seed is out. The zone row lock then
-- orders it against spawns and other reveals (a zone that is not live here reveals nothing).
WITH fence AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(7031, z.id) FROM zones z WHERE z.name = $1 AND z.state = 'live'
),
zone AS (
    SELECT id, seed_epoch FROM zones
    WHERE name = $1 AND state = 'live' AND (SELECT count(*) FROM fence) >= 0
    FOR UPDATE
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
