-- Every board entry of one shard, aggregated in the database and streamed: chests opened and
-- loot value per (zone, player), for ledger rows below the horizon $1. $2 maps rarity to
-- points ({"common": 1, …}); an item is worth the points of its rarity.
SELECT z.name AS zone, c.player, count(*) AS "chests!",
       coalesce(sum((
           SELECT sum(coalesce(($2::jsonb ->> (item ->> 'rarity'))::float8, 0))
           FROM jsonb_array_elements(c.loot) AS item
       )), 0)::float8 AS "loot_value!"
FROM claims c
JOIN zones z ON z.id = c.zone_id
WHERE c.xid < $1 AND NOT z.synthetic
GROUP BY z.name, c.player
