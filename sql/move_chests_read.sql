-- One batch of a zone's unopened chests after chest $2, in id order (primary key).
SELECT chest_id, loot_table_id FROM chests
WHERE zone_id = $1 AND chest_id > $2
ORDER BY chest_id
LIMIT $3
