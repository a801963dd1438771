-- One batch of a zone's ledger after chest $2, in chest order (primary key).
SELECT chest_id, claim_id, player, seed_epoch, loot_table_id, loot, opened_at, idempotency_key,
       nonce, client_seed, authorised_by
FROM claims
WHERE zone_id = $1 AND chest_id > $2
ORDER BY chest_id
LIMIT $3
