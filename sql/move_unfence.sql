-- Undoes a fence (an aborted move): the source serves its zone again.
UPDATE zones SET state = 'live' WHERE id = $1 AND state = 'fenced'
