-- The source after the switch: it serves nothing and reads as absent, but keeps its rows
-- until `trove zones cleanup` (the ledger tails read its last claims meanwhile).
UPDATE zones SET state = 'moved', moved_at = now() WHERE id = $1 AND state <> 'moved'
