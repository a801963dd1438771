-- A zone's state on this shard (live, incoming, fenced), if it is here.
SELECT state FROM zones WHERE name = $1
