-- Open one chest in one zone: ONE statement, so one round trip and one short transaction.
--
-- $1 zone id, $2 the seed epoch the caller drew with, $3 player, $4 idempotency key or NULL,
-- $5 the draw's 63-bit start value, $6 loot pre-rolled per loot table id ({"<id>": [...]}),
-- $7 claim id (the server-made nonce of the draw), $8 the chest asked for, or NULL for any.
--
-- status: opened | replayed | exhausted | already_opened | not_found | stale | retry
--
-- A keyed claim holds a transaction-scoped advisory lock on (zone, player, key) until it
-- commits, so a retry racing its own first attempt waits for that attempt to finish before
-- this statement ends. Its snapshot was taken before the wait, so a retry that found nothing
-- to open (exhausted, already_opened, not_found) looks the key up again afterwards
-- (sql/claim_by_key.sql) and answers with the first attempt's claim instead of a 409.
WITH key_lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended($1::integer::text || '/' || $3 || '/' || $4::text, 0)) AS held
    WHERE $4::text IS NOT NULL
),
zone AS (
    -- No row: the epoch moved on (a reveal), so the caller's seed is stale and it reloads.
    SELECT 1 + ($5::bigint % greatest(z.chest_count, 1)) AS start
    FROM zones z
    WHERE z.id = $1 AND z.seed_epoch = $2
),
prior AS (
    SELECT c.claim_id, c.chest_id, c.seed_epoch, c.loot, c.opened_at, c.loot_table_id
    FROM claims c
    WHERE $4::text IS NOT NULL
      AND c.zone_id = $1 AND c.player = $3 AND c.idempotency_key = $4::text
),
pick AS (
    SELECT p.chest_id, p.loot_table_id
    FROM (
        -- Any chest: the first unopened one at or after the drawn start, wrapping around.
        -- Index-driven (primary key), so the cost does not grow with the zone; SKIP LOCKED
        -- hands concurrent claimers different chests instead of queueing them on one.
        -- (Each arm is its own subquery: a UNION arm may not lock rows directly.)
        SELECT * FROM (
            SELECT ch.chest_id, ch.loot_table_id FROM chests ch
            WHERE $8::bigint IS NULL AND ch.zone_id = $1 AND ch.chest_id >= (SELECT start FROM zone)
            ORDER BY ch.chest_id LIMIT 1
            FOR UPDATE SKIP LOCKED) AS at_or_after
        UNION ALL
        SELECT * FROM (
            SELECT ch.chest_id, ch.loot_table_id FROM chests ch
            WHERE $8::bigint IS NULL AND ch.zone_id = $1 AND ch.chest_id < (SELECT start FROM zone)
            ORDER BY ch.chest_id LIMIT 1
            FOR UPDATE SKIP LOCKED) AS wrapped
        UNION ALL
        -- One given chest, unless another claim holds or opened it.
        SELECT * FROM (
            SELECT ch.chest_id, ch.loot_table_id FROM chests ch
            WHERE ch.zone_id = $1 AND ch.chest_id = $8::bigint AND EXISTS (SELECT 1 FROM zone)
            FOR UPDATE SKIP LOCKED) AS given
        LIMIT 1
    ) AS p
    WHERE NOT EXISTS (SELECT 1 FROM prior)
),
ins AS (
    INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot, idempotency_key)
    SELECT $1, p.chest_id, $7, $3, $2, p.loot_table_id, $6::jsonb -> p.loot_table_id::text, $4::text
    FROM pick p
    -- Loot must have been rolled for this chest's table; if not, the caller has not seen a
    -- newer spawn yet (status retry).
    WHERE $6::jsonb ? p.loot_table_id::text
    -- A racing retry with the same key: only one inserts; the other opens nothing (retry).
    ON CONFLICT (zone_id, player, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING claim_id, chest_id, seed_epoch, loot, opened_at, loot_table_id
),
opened AS (
    DELETE FROM chests ch USING ins
    WHERE ch.zone_id = $1 AND ch.chest_id = ins.chest_id
    RETURNING ch.chest_id
),
counted AS (
    -- Spread counter: the slot follows the backend, so concurrent claims rarely share a row.
    UPDATE zone_counters SET opened = opened + 1
    WHERE zone_id = $1 AND slot = pg_backend_pid() % 16 AND EXISTS (SELECT 1 FROM opened)
    RETURNING 1
)
SELECT
    CASE
        WHEN EXISTS (SELECT 1 FROM prior) THEN 'replayed'
        WHEN EXISTS (SELECT 1 FROM ins) THEN 'opened'
        WHEN NOT EXISTS (SELECT 1 FROM zone) THEN 'stale'
        WHEN EXISTS (SELECT 1 FROM pick) THEN 'retry'
        WHEN $8::bigint IS NULL THEN 'exhausted'
        -- Still in chests: an in-flight claim holds it (and will most likely open it).
        WHEN EXISTS (SELECT 1 FROM chests ch WHERE ch.zone_id = $1 AND ch.chest_id = $8::bigint)
            THEN 'already_opened'
        WHEN EXISTS (SELECT 1 FROM claims c WHERE c.zone_id = $1 AND c.chest_id = $8::bigint)
            THEN 'already_opened'
        ELSE 'not_found'
    END AS "status!",
    r.claim_id AS "claim_id?",
    r.chest_id AS "chest_id?",
    r.seed_epoch AS "seed_epoch?",
    r.loot AS "loot?",
    r.opened_at AS "opened_at?",
    lt.name AS "loot_table?",
    lt.version AS "loot_table_version?"
FROM (SELECT 1) AS one
-- Joined so the lock is taken whatever else the statement finds.
LEFT JOIN key_lock ON true
LEFT JOIN (SELECT * FROM prior UNION ALL SELECT * FROM ins) AS r ON true
LEFT JOIN loot_tables lt ON lt.id = r.loot_table_id
