-- Reserve chest ids for a spawn; the row lock serialises spawns (never claims) in a zone, and
-- orders them against a move's fence: a zone that is not live here grows by nothing (the
-- caller answers zone_moving).
UPDATE zones SET chest_count = chest_count + CASE WHEN state = 'live' THEN $2::bigint ELSE 0 END
WHERE name = $1
RETURNING id, chest_count, state
