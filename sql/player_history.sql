-- One shard's part of a player's history, newest first, after a keyset cursor. Its columns
-- are a `Claim`'s fields. A zone's old copy after a move (`moved`) is not its history: the
-- zone's shard has it all.
SELECT c.claim_id, z.name AS zone, c.chest_id, c.player, c.loot, c.opened_at, c.seed_epoch,
       lt.name AS loot_table, lt.version AS loot_table_version, c.nonce, c.client_seed,
       c.authorised_by
FROM claims c
JOIN zones z ON z.id = c.zone_id AND z.state <> 'moved'
JOIN loot_tables lt ON lt.id = c.loot_table_id
WHERE c.player = $1 AND (c.opened_at, c.claim_id) < ($2, $3)
ORDER BY c.opened_at DESC, c.claim_id DESC
LIMIT $4
