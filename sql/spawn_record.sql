-- A spawn as an event for the realtime tail.
INSERT INTO spawns (zone_id, first_chest, count) VALUES ($1, $2, $3)
