-- A move's view of the zone on its source: the zone row and everything small it owns
-- (seed epochs, the loot table versions its chests use, counter slots, spawns).
SELECT z.id, z.seed_epoch, z.chest_count, z.synthetic, z.created_at, z.state,
       (SELECT coalesce(array_agg(s.epoch ORDER BY s.epoch), '{}') FROM zone_seeds s WHERE s.zone_id = z.id) AS "epochs!",
       -- Seeds in the clear (revealed) and sealed; '' where a form is absent (arrays of bytea
       -- cannot say NULL here).
       (SELECT coalesce(array_agg(coalesce(s.seed, '') ORDER BY s.epoch), '{}') FROM zone_seeds s WHERE s.zone_id = z.id) AS "seeds!",
       (SELECT coalesce(array_agg(coalesce(s.sealed, '') ORDER BY s.epoch), '{}') FROM zone_seeds s WHERE s.zone_id = z.id) AS "sealed!",
       (SELECT coalesce(array_agg(s.commitment ORDER BY s.epoch), '{}') FROM zone_seeds s WHERE s.zone_id = z.id) AS "commitments!",
       (SELECT coalesce(array_agg(s.draw_version ORDER BY s.epoch), '{}') FROM zone_seeds s WHERE s.zone_id = z.id) AS "draw_versions!",
       (SELECT coalesce(array_agg(s.created_at ORDER BY s.epoch), '{}') FROM zone_seeds s WHERE s.zone_id = z.id) AS "seeded_at!",
       (SELECT array_agg(s.revealed_at ORDER BY s.epoch) FROM zone_seeds s WHERE s.zone_id = z.id) AS "revealed_at: Vec<Option<chrono::DateTime<chrono::Utc>>>",
       (SELECT coalesce(array_agg(n.opened ORDER BY n.slot), '{}') FROM zone_counters n WHERE n.zone_id = z.id) AS "counters!",
       (SELECT coalesce(array_agg(sp.first_chest ORDER BY sp.first_chest), '{}') FROM spawns sp WHERE sp.zone_id = z.id) AS "spawn_firsts!",
       (SELECT coalesce(array_agg(sp.count ORDER BY sp.first_chest), '{}') FROM spawns sp WHERE sp.zone_id = z.id) AS "spawn_counts!",
       (SELECT coalesce(array_agg(sp.created_at ORDER BY sp.first_chest), '{}') FROM spawns sp WHERE sp.zone_id = z.id) AS "spawned_at!"
FROM zones z
WHERE z.name = $1
