-- Deletes up to $2 synthetic (fairness probe) zones created before $1, with every row they
-- own: chests and ledger rows here, seeds, counters, spawns and table links by cascade.
-- Real zones are never touched (`NOT synthetic` rows are not even read): their ledger is
-- the promise. Returns the deleted zones' names.
WITH doomed AS (
    SELECT id FROM zones
    WHERE synthetic AND created_at < $1
    ORDER BY id
    LIMIT $2
    FOR UPDATE
),
gone_chests AS (
    DELETE FROM chests WHERE zone_id IN (SELECT id FROM doomed)
),
gone_claims AS (
    DELETE FROM claims WHERE zone_id IN (SELECT id FROM doomed)
)
DELETE FROM zones WHERE id IN (SELECT id FROM doomed)
RETURNING name
