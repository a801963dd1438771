-- Fences the zone on its source: takes its fence lock exclusively (waiting for every claim
-- statement past its shared lock to commit; later ones wait for this one and then see the
-- fence) and marks it fenced. Spawns and reveals write the zone row, so its row lock orders
-- them against this too. Returns nothing when the zone is not here.
WITH fence AS (
    SELECT pg_advisory_xact_lock(7031, $1)
)
UPDATE zones SET state = 'fenced'
WHERE id = $1 AND (SELECT count(*) FROM fence) >= 0
RETURNING id
