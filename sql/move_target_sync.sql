-- Brings the target copy's small rows in line with the source: the zone row's counters of
-- spawns and epochs, every seed epoch (a reveal may have happened), the loot table versions,
-- all 16 counter slots and the spawns (marked copied: not new events). Only on a copy that
-- does not serve yet.
WITH seeds AS (
    INSERT INTO zone_seeds (zone_id, epoch, seed, sealed, commitment, draw_version, created_at,
                            revealed_at)
    SELECT $1, s.epoch, nullif(s.seed, ''), nullif(s.sealed, ''), s.commitment, s.draw_version,
           s.created_at, s.revealed_at
    FROM unnest($4::integer[], $5::bytea[], $6::timestamptz[], $7::timestamptz[],
                $13::bytea[], $14::bytea[], $15::smallint[])
         AS s (epoch, seed, created_at, revealed_at, sealed, commitment, draw_version)
    ON CONFLICT (zone_id, epoch) DO UPDATE
        SET revealed_at = EXCLUDED.revealed_at, seed = EXCLUDED.seed, sealed = EXCLUDED.sealed
),
tables AS (
    INSERT INTO zone_loot_tables (zone_id, loot_table_id)
    SELECT $1, t FROM unnest($8::integer[]) AS t
    ON CONFLICT DO NOTHING
),
counters AS (
    INSERT INTO zone_counters (zone_id, slot, opened)
    SELECT $1, n.slot - 1, n.opened FROM unnest($9::bigint[]) WITH ORDINALITY AS n (opened, slot)
    ON CONFLICT (zone_id, slot) DO UPDATE SET opened = EXCLUDED.opened
),
spawned AS (
    INSERT INTO spawns (zone_id, first_chest, count, created_at, copied)
    SELECT $1, s.first_chest, s.count, s.created_at, true
    FROM unnest($10::bigint[], $11::bigint[], $12::timestamptz[]) AS s (first_chest, count, created_at)
    ON CONFLICT (zone_id, first_chest) DO NOTHING
)
UPDATE zones SET seed_epoch = $2, chest_count = $3
WHERE id = $1 AND state = 'incoming'
