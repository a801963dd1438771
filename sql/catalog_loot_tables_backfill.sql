-- Records the homes of loot tables that predate the catalog ($1 names, $2 homes); a table
-- already recorded keeps its home.
INSERT INTO catalog_loot_tables (name, home)
SELECT * FROM unnest($1::text[], $2::integer[])
ON CONFLICT (name) DO NOTHING
