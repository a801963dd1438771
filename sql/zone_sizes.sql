-- Every live zone of a shard with its size (rebalance plans; O(zones), never on a claim path).
SELECT z.name, z.chest_count,
       (SELECT coalesce(sum(n.opened), 0) FROM zone_counters n WHERE n.zone_id = z.id)::bigint AS "opened!"
FROM zones z
WHERE z.state = 'live'
