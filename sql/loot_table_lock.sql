-- Serialise version numbering of one loot table on its home shard.
SELECT pg_advisory_xact_lock(hashtextextended('trove.loot_table:' || $1, 0))
