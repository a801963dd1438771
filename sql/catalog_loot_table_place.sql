-- Gives a new loot table the home $2 unless it has one, and returns its home (as
-- catalog_zone_place.sql; no row only when a racing placement committed after this
-- statement's snapshot).
WITH placed AS (
    INSERT INTO catalog_loot_tables (name, home) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING
    RETURNING home
)
SELECT home AS "home!" FROM placed
UNION ALL
SELECT home FROM catalog_loot_tables WHERE name = $1
LIMIT 1
