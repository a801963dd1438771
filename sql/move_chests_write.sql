-- Copies a batch of chests onto the target copy ($2 ids, $3 target loot table ids); chests
-- already copied are left as they are.
INSERT INTO chests (zone_id, chest_id, loot_table_id)
SELECT $1, c.chest_id, c.loot_table_id FROM unnest($2::bigint[], $3::integer[]) AS c (chest_id, loot_table_id)
ON CONFLICT (zone_id, chest_id) DO NOTHING
