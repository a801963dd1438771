-- A reveal's first step: the zone's fence lock, exclusively (as a move's fence takes it): it
-- waits for every claim statement in flight, and later ones wait for the reveal and then see
-- the new epoch, so no claim lands in the epoch once its seed is out. Then the zone row lock,
-- which orders it against spawns and other reveals. Returns the current epoch's seed (sealed,
-- or in the clear from before seeds were sealed) and commitment; nothing when the zone is
-- not live here. The same transaction then runs zone_reveal_apply.sql.
WITH fence AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(7031, z.id) FROM zones z WHERE z.name = $1 AND z.state = 'live'
),
zone AS (
    SELECT id, seed_epoch FROM zones
    WHERE name = $1 AND state = 'live' AND (SELECT count(*) FROM fence) >= 0
    FOR UPDATE
)
SELECT zone.id, zone.seed_epoch, s.seed, s.sealed, s.commitment
FROM zone
JOIN zone_seeds s ON s.zone_id = zone.id AND s.epoch = zone.seed_epoch
