-- The zones among $1 that moved to this shard, with their arrival positions (xid): a resume
-- from before a zone's arrival cannot be replayed here (its earlier events were elsewhere).
SELECT name, arrived_xid AS "arrived_xid!" FROM zones WHERE name = ANY($1) AND arrived_xid IS NOT NULL
