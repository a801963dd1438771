-- A zone's copy on a move's target: its id and state, if there is one.
SELECT id, state FROM zones WHERE name = $1
