-- A design Trove replaces, for the ceiling comparison only (../shared/background/002_…):
-- count the zone's chests, then skip a random number of them. Its cost grows with the zone.
-- {ZONE}, {PLAYER} and :r are filled in by `trove-loadtest ceiling` / pgbench.
WITH n AS (
    SELECT count(*) AS c FROM chests WHERE zone_id = {ZONE}
),
pick AS (
    SELECT ch.chest_id, ch.loot_table_id FROM chests ch
    WHERE ch.zone_id = {ZONE}
    ORDER BY ch.chest_id
    OFFSET (:r % greatest((SELECT c FROM n), 1))
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
