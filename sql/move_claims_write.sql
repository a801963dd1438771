-- Copies a batch of ledger rows onto the target copy, marked copied (they are not new claims
-- to its tails), with their idempotency keys (a retry from before the move replays), and
-- removes their chests from the copy's unopened set (copied while still unopened). Returns
-- how many rows it inserted and how many chests it removed (the move's running count).
-- (Their nonces come with them: a player's next nonce is the ledger's, migrations/0009.)
WITH ins AS (
    INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot,
                        opened_at, idempotency_key, nonce, client_seed, authorised_by, copied)
    SELECT $1, c.chest_id, c.claim_id, c.player, c.seed_epoch, c.loot_table_id, c.loot,
           c.opened_at, c.idempotency_key, c.nonce, c.client_seed, c.authorised_by, true
    FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::integer[], $6::integer[],
                $7::jsonb[], $8::timestamptz[], $9::text[], $10::bigint[], $11::text[],
                $12::text[])
         AS c (chest_id, claim_id, player, seed_epoch, loot_table_id, loot, opened_at,
               idempotency_key, nonce, client_seed, authorised_by)
    ON CONFLICT DO NOTHING
    RETURNING 1
),
gone AS (
    DELETE FROM chests WHERE zone_id = $1 AND chest_id = ANY($2)
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS "inserted!", (SELECT count(*) FROM gone) AS "removed!"
