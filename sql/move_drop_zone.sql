-- Drops a zone row (the source's after the switch, or an aborted move's target copy), with
-- its seeds, counters, table links and spawns by cascade. Its chests and ledger rows are
-- deleted in batches afterwards (move_drop_rows.sql); without a zone row no tail or read
-- sees them.
DELETE FROM zones WHERE id = $1
