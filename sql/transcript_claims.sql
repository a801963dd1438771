-- Every claim of one epoch of a zone, in transcript order: by player, then nonce (the
-- claims_nonce index), chest for version-1 claims. Its columns are a `Claim`'s fields.
SELECT c.claim_id, z.name AS zone, c.chest_id, c.player, c.loot, c.opened_at, c.seed_epoch,
       lt.name AS loot_table, lt.version AS loot_table_version, c.nonce, c.client_seed,
       c.authorised_by
FROM claims c
JOIN zones z ON z.id = c.zone_id
JOIN loot_tables lt ON lt.id = c.loot_table_id
WHERE c.zone_id = $1 AND c.seed_epoch = $2
ORDER BY c.player, c.nonce, c.chest_id
