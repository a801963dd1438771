-- A player's next nonce is the ledger's: one more than their last claim's in the epoch, read
-- backwards on the claims_nonce index (0 when they have none there). Until now a per-player
-- row carried it, and every claim locked and bumped that row: two heap writes and their WAL a
-- claim, and a first claim per player and instance made the row in a round trip of its own.
-- The unique index alone keeps a nonce from being used twice, and a claim checks that the
-- draw's nonce is the next one, so the counter stays gapless without the row.
-- The rows stay for what players set: their client seed per zone (and `seed_set_xid`, by
-- which a move copies the seeds set since its previous pass).
ALTER TABLE player_nonces DROP COLUMN next_nonce, DROP COLUMN seed_epoch;
