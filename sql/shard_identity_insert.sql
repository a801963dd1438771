-- Registers this shard once: a second registration (another instance racing) changes
-- nothing, and the caller reads back whichever identity won.
INSERT INTO shard_identity (shard_id, ordinal) VALUES ($1, $2)
ON CONFLICT (only_row) DO NOTHING
