-- A design Trove replaces, for the ceiling comparison only (../shared/background/002_…):
-- pick a random chest by sorting the whole zone. Its cost grows with the zone.
-- {ZONE}, {PLAYER} are filled in by `trove-loadtest ceiling`.
WITH pick AS (
    SELECT ch.chest_id, ch.loot_table_id FROM chests ch
    WHERE ch.zone_id = {ZONE}
    ORDER BY random()
    LIMIT 1
    FOR UPDATE SKIP LOCKED
),
ins AS (
    INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot)
    SELECT {ZONE}, p.chest_id, gen_random_uuid(), {PLAYER}, 1, p.loot_table_id, '[]'
    FROM pick p
    RETURNING chest_id
)
DELETE FROM chests ch USING ins WHERE ch.zone_id = {ZONE} AND ch.chest_id = ins.chest_id;
