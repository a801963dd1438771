-- The end both naive designs share, appended to their `pick` (the chest they chose): record
-- the claim and remove the chest, as Trove's own statement does.
,
ins AS (
    INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot)
    SELECT {ZONE}, p.chest_id, gen_random_uuid(), {PLAYER}, 1, p.loot_table_id, '[]'
    FROM pick p
    RETURNING chest_id
)
DELETE FROM chests ch USING ins WHERE ch.zone_id = {ZONE} AND ch.chest_id = ins.chest_id;
