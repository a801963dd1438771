-- The claim an idempotency key already produced (after a racing retry won the insert).
SELECT claim_id, chest_id, seed_epoch, loot, opened_at
FROM claims
WHERE zone_id = $1 AND player = $2 AND idempotency_key = $3
