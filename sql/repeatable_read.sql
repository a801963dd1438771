-- One snapshot for a whole rebuild pass over a shard (must open the transaction).
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
