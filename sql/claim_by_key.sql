-- The claim an idempotency key already produced: after a racing retry won the insert, or
-- after this claim waited on the key's lock for an attempt still in flight. Its columns are
-- a `Claim`'s fields.
SELECT c.claim_id, z.name AS zone, c.chest_id, c.player, c.loot, c.opened_at, c.seed_epoch,
       lt.name AS loot_table, lt.version AS loot_table_version, c.nonce, c.client_seed,
       c.authorised_by
FROM claims c
JOIN zones z ON z.id = c.zone_id
JOIN loot_tables lt ON lt.id = c.loot_table_id
WHERE c.zone_id = $1 AND c.player = $2 AND c.idempotency_key = $3
