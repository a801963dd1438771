-- Whether the server is a standby: a shard group's writes go only to its primary.
SELECT pg_is_in_recovery() AS "standby";
