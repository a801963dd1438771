-- A design Trove replaces, for the ceiling comparison only (../shared/background/002_…):
-- pick a random chest by sorting the whole zone. Its cost grows with the zone.
-- {ZONE}, {PLAYER} are filled in by `trove-loadtest ceiling`.
WITH pick AS (
    SELECT ch.chest_id, ch.loot_table_id FROM chests ch
    WHERE ch.zone_id = {ZONE}
    ORDER BY random()
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
