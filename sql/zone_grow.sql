-- Reserve chest ids for a spawn; the row lock serialises spawns (never claims) in a zone.
UPDATE zones SET chest_count = chest_count + $2
WHERE name = $1
RETURNING id, chest_count
