-- Every board entry of one shard, aggregated in the database and streamed: chests opened and
-- loot value per (zone, player), for ledger rows below the horizon $1. $2 maps rarity to
-- points ({"common": 1, …}); an item is worth the points of its rarity. Only zones this shard
-- serves count (a move's copy that is not switched in yet, `incoming`, does not), copied rows
-- of a zone that moved here included: its whole ledger is here now.
SELECT z.name AS zone, c.player, count(*) AS "chests!",
       coalesce(sum((
           SELECT sum(coalesce(($2::jsonb ->> (item ->> 'rarity'))::float8, 0))
           FROM jsonb_array_elements(c.loot) AS item
       )), 0)::float8 AS "loot_value!"
FROM claims c
JOIN zones z ON z.id = c.zone_id
WHERE c.xid < $1 AND NOT z.synthetic AND z.state IN ('live', 'fenced')
GROUP BY z.name, c.player
