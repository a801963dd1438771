-- A copy's size, to check the target against the fenced source before the switch (index-only
-- count scans of one zone; a move's own check, never on a claim path).
SELECT (SELECT count(*) FROM chests WHERE zone_id = $1) AS "chests!",
       (SELECT count(*) FROM claims WHERE zone_id = $1) AS "claims!"
