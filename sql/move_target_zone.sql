-- The zone's copy on the target: created `incoming` (serving nothing) unless it exists;
-- returns its id and state. No row only when a racing creation committed after this
-- statement's snapshot.
WITH ins AS (
    INSERT INTO zones (name, seed_epoch, chest_count, synthetic, created_at, state)
    VALUES ($1, $2, $3, $4, $5, 'incoming')
    ON CONFLICT (name) DO NOTHING
    RETURNING id, state
)
SELECT id AS "id!", state AS "state!" FROM ins
UNION ALL
SELECT id, state FROM zones WHERE name = $1
LIMIT 1
