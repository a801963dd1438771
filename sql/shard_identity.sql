-- Who this shard is: its id and ordinal, written when it was registered (none before).
SELECT shard_id, ordinal FROM shard_identity
