-- Open chests: a batch of claims on one shard (one claim is a batch of one) in ONE statement,
-- so one round trip and one short transaction for all of them.
--
-- Arrays of equal length, one element per claim:
-- $1 zone ids, $2 the seed epoch each caller drew with, $3 players, $4 idempotency keys (NULL:
-- none), $5 the draws' 63-bit start values, $6 loot pre-rolled per loot table id
-- ({"<id>": [...]}), $7 claim ids, $8 the chest asked for (NULL: any), $9 the nonce the
-- draw used and $10 the client seed (both NULL in a version-1 epoch, whose draw used the
-- claim id), $11 who authorised the claim (`player` or `admin:<subject>`).
--
-- Every table is reached through its index from the claims' own keys (lateral lookups and
-- `= ANY($1)`), so even a generic plan never scans a table: the cost depends on the batch,
-- never on the zone or the shard.
--
-- One row per claim, `idx` its 1-based place in the arrays, with its status:
-- opened | replayed | exhausted | already_opened | not_found | stale | nonce | retry |
-- collided | moving. `nonce`: the draw used another nonce or client seed than the player's
-- next (`next_nonce`, `next_client_seed`): draw again with those. A claim's loot, loot table
-- name and version come back only on replays (`loot_table_id` names the table the caller
-- rolled for otherwise: the engine has its loot and its name already).
WITH req AS MATERIALIZED (
    SELECT *
    FROM unnest($1::integer[], $2::integer[], $3::text[], $4::text[], $5::bigint[],
                $6::jsonb[], $7::uuid[], $8::bigint[], $9::bigint[], $10::text[], $11::text[])
         WITH ORDINALITY AS r(zone_id, epoch, player, key, start, loot, claim_id, chest, nonce,
                              client_seed, authorised_by, idx)
),
-- A keyed claim holds a transaction-scoped advisory lock on (zone, player, key) until it
-- commits, so a retry racing its own first attempt waits here for that attempt to finish, and
-- then `prior` (a fresh snapshot) finds its claim: the retry replays it and locks no chest.
-- A batch takes all its key locks (in hash order) before it locks or inserts anything else
-- (`zone` and `prior` wait for them), and it never waits for a chest or a counter slot
-- (SKIP LOCKED), so batches do not deadlock.
key_lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(k.h) AS held
    FROM (
        SELECT DISTINCT hashtextextended(r.zone_id::text || '/' || r.player || '/' || r.key, 0) AS h
        FROM req r
        WHERE r.key IS NOT NULL
        ORDER BY 1
    ) AS k
),
-- Each zone's fence lock, shared (a move and a reveal take it exclusively: migrations/0005
-- and 0007), then the zone's state and epoch read with a fresh snapshot: a zone whose copy
-- here does not serve (it is moving) opens nothing, a claim drawn in an epoch that a reveal
-- has ended is `stale`, and a move or a reveal waits for every statement past this point.
-- And the zone's chest count, read once per zone rather than once per claim. (Only read:
-- claims never write the zone row, so it is not a hot row.)
fence AS MATERIALIZED (
    SELECT f.zone_id, s.state, s.seed_epoch, z.chest_count
    FROM (SELECT DISTINCT r.zone_id FROM req r ORDER BY 1) AS f
    CROSS JOIN LATERAL trove_zone_fence(f.zone_id) AS s
    LEFT JOIN LATERAL (SELECT z.chest_count FROM zones z WHERE z.id = f.zone_id LIMIT 1) AS z
        ON true
    WHERE (SELECT count(*) FROM key_lock) >= 0
),
-- Version-2 claims: what the player's next claim draws with, read once the key locks are
-- held: the nonce after their last in the epoch (by the claims_nonce index, backwards; 0 when
-- none) and their client seed ("" when none is set). Nothing is locked or written here: the
-- unique index keeps a nonce from being used twice (a claim of the same player committed by
-- another instance after this statement's snapshot makes the insert fail, and the batch runs
-- again), and a claim is only written with the next nonce, so the counter stays gapless.
-- One row per player of the batch, for their first claim in it: a later one is `collided`
-- and goes again with the next nonce. (A sort of the batch: hashing the batch's players and
-- joining them back cost ~40,000 instructions a claim, a tenth of the statement.)
nonce_row AS MATERIALIZED (
    SELECT DISTINCT ON (r.zone_id, r.player) r.idx,
           coalesce((SELECT c.nonce + 1 FROM claims c
                     WHERE c.zone_id = r.zone_id AND c.seed_epoch = r.epoch
                       AND c.player = r.player AND c.nonce IS NOT NULL
                     ORDER BY c.nonce DESC LIMIT 1), 0) AS next,
           coalesce((SELECT p.client_seed FROM player_nonces p
                     WHERE p.zone_id = r.zone_id AND p.player = r.player), '') AS client_seed
    FROM req r
    WHERE r.nonce IS NOT NULL AND (SELECT count(*) FROM key_lock) >= 0
    ORDER BY r.zone_id, r.player, r.idx
),
-- Per-zone opened counts are spread over 16 slots. A batch takes, per zone, the first slot no
-- other transaction holds (starting from its backend's), so concurrent batches never queue on
-- a counter; only when all 16 are held does it wait for its backend's slot at the end.
counter_lock AS MATERIALIZED (
    SELECT z.zone_id, s.slot
    FROM (SELECT f.zone_id FROM fence f WHERE f.state = 'live' ORDER BY 1) AS z
    CROSS JOIN LATERAL (
        SELECT n.slot FROM zone_counters n
        WHERE n.zone_id = z.zone_id
        ORDER BY (n.slot + 16 - pg_backend_pid() % 16) % 16
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) AS s
),
zone AS (
    -- No row: the epoch moved on (a reveal), so the caller's seed is stale and it reloads.
    SELECT r.idx, 1 + (r.start % greatest(f.chest_count, 1)) AS first
    FROM req r
    JOIN fence f ON f.zone_id = r.zone_id AND f.state = 'live' AND f.seed_epoch = r.epoch
    -- Evaluated once, before the first row: every key lock and counter slot is held from here.
    WHERE (SELECT count(*) FROM counter_lock) >= 0
),
prior AS (
    -- Read with a fresh snapshot once the key locks are held (migrations/0003), so a retry
    -- that waited for its first attempt sees it and replays it.
    SELECT r.idx, c.claim_id, c.chest_id, c.seed_epoch, c.loot, c.opened_at, c.loot_table_id,
           c.nonce, c.client_seed, c.authorised_by
    FROM req r
    CROSS JOIN LATERAL trove_prior_claim(r.zone_id, r.player, r.key) AS c
    WHERE r.key IS NOT NULL AND (SELECT count(*) FROM counter_lock) >= 0
),
twin AS (
    -- The same key twice in one batch: only the first picks a chest; the others are
    -- `collided`, go again, and replay what the first one opened.
    SELECT r.idx
    FROM req r
    WHERE r.key IS NOT NULL AND EXISTS (
        SELECT 1 FROM req f
        WHERE f.key = r.key AND f.zone_id = r.zone_id AND f.player = r.player AND f.idx < r.idx
    )
),
pick AS (
    SELECT r.idx, r.zone_id, p.chest_id, p.loot_table_id
    FROM req r
    JOIN zone z ON z.idx = r.idx
    -- A version-2 claim picks a chest only with the player's next nonce and client seed.
    LEFT JOIN nonce_row n ON n.idx = r.idx
    CROSS JOIN LATERAL (
        -- Any chest: the first unopened one at or after the drawn start, wrapping around.
        -- Index-driven (primary key), so the cost does not grow with the zone; SKIP LOCKED
        -- hands concurrent claimers different chests instead of queueing them on one.
        -- (Each arm is its own subquery: a UNION arm may not lock rows directly.)
        SELECT * FROM (
            SELECT ch.chest_id, ch.loot_table_id FROM chests ch
            WHERE r.chest IS NULL AND ch.zone_id = r.zone_id AND ch.chest_id >= z.first
            ORDER BY ch.chest_id LIMIT 1
            FOR UPDATE SKIP LOCKED) AS at_or_after
        UNION ALL
        SELECT * FROM (
            SELECT ch.chest_id, ch.loot_table_id FROM chests ch
            WHERE r.chest IS NULL AND ch.zone_id = r.zone_id AND ch.chest_id < z.first
            ORDER BY ch.chest_id LIMIT 1
            FOR UPDATE SKIP LOCKED) AS wrapped
        UNION ALL
        -- One given chest, unless another claim holds or opened it.
        SELECT * FROM (
            SELECT ch.chest_id, ch.loot_table_id FROM chests ch
            WHERE ch.zone_id = r.zone_id AND ch.chest_id = r.chest
            FOR UPDATE SKIP LOCKED) AS given
        LIMIT 1
    ) AS p
    WHERE NOT EXISTS (SELECT 1 FROM prior pr WHERE pr.idx = r.idx)
      AND NOT EXISTS (SELECT 1 FROM twin t WHERE t.idx = r.idx)
      AND (r.nonce IS NULL OR (n.next = r.nonce AND n.client_seed = r.client_seed))
),
taken AS (
    -- A row lock does not stop its own transaction, so two claims of one batch can pick the
    -- same chest: the first in the batch takes it, the others are `collided` and go again.
    SELECT DISTINCT ON (p.zone_id, p.chest_id) p.idx, p.chest_id, p.loot_table_id
    FROM pick p
    ORDER BY p.zone_id, p.chest_id, p.idx
),
ins AS (
    -- The ledger row, with the loot the server pre-rolled for this chest's table. The primary
    -- key (zone_id, chest_id) is the zero-dupe promise kept by the database itself.
    INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot,
                        idempotency_key, nonce, client_seed, authorised_by)
    SELECT r.zone_id, t.chest_id, r.claim_id, r.player, r.epoch, t.loot_table_id,
           r.loot -> t.loot_table_id::text, r.key, r.nonce, r.client_seed, r.authorised_by
    FROM taken t
    JOIN req r ON r.idx = t.idx
    -- Loot must have been rolled for this chest's table; if not, the caller has not seen a
    -- newer spawn yet (status retry).
    WHERE r.loot ? t.loot_table_id::text
    -- A racing retry with the same key: only one inserts; the other opens nothing (retry).
    -- The same nonce from another instance's claim of the player (this statement's snapshot
    -- predates it): the unique claims_nonce index waits for that claim and, if it commits,
    -- fails the statement, which the engine runs again (now `nonce`). That is the one wait
    -- a batch can have on another, only between instances claiming for one player at once;
    -- a cycle of such waits is a deadlock PostgreSQL breaks, and the batch runs again too.
    ON CONFLICT (zone_id, player, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING zone_id, claim_id, chest_id, player, seed_epoch, opened_at, loot_table_id,
              nonce, client_seed, authorised_by
),
opened AS (
    -- Opened chests leave `chests`: the unopened set stays exactly the primary-key index.
    DELETE FROM chests ch USING ins
    WHERE ch.zone_id = ins.zone_id AND ch.chest_id = ins.chest_id
    RETURNING ch.zone_id
),
counted AS (
    -- The slots locked above. (Counts this batch's opened rows per zone, never a zone's chests.)
    UPDATE zone_counters n SET opened = n.opened + o.opened
    FROM (
        SELECT op.zone_id, coalesce(cl.slot, pg_backend_pid() % 16) AS slot, op.opened
        FROM (SELECT zone_id, count(*) AS opened FROM opened GROUP BY zone_id) AS op
        LEFT JOIN counter_lock cl ON cl.zone_id = op.zone_id
    ) AS o
    WHERE n.zone_id = o.zone_id AND n.slot = o.slot
    RETURNING 1
),
answered AS (
    -- A replayed claim's table may be a version the caller no longer has: its name and
    -- version come from here, and its loot. An opened claim's loot is what the caller
    -- pre-rolled for its `loot_table_id` (written as sent): it is not sent back.
    SELECT pr.idx, pr.claim_id, pr.chest_id, pr.seed_epoch, pr.loot, pr.opened_at,
           pr.loot_table_id, pr.nonce, pr.client_seed, pr.authorised_by, lt.name, lt.version
    FROM prior pr
    LEFT JOIN LATERAL (
        SELECT lt.name, lt.version FROM loot_tables lt WHERE lt.id = pr.loot_table_id LIMIT 1
    ) AS lt ON true
    UNION ALL
    SELECT r.idx, i.claim_id, i.chest_id, i.seed_epoch, NULL::jsonb, i.opened_at,
           i.loot_table_id, i.nonce, i.client_seed, i.authorised_by, NULL, NULL
    FROM ins i
    JOIN req r ON r.claim_id = i.claim_id
)
SELECT
    r.idx AS "idx!",
    CASE
        WHEN EXISTS (SELECT 1 FROM prior pr WHERE pr.idx = r.idx) THEN 'replayed'
        WHEN a.idx IS NOT NULL THEN 'opened'
        WHEN EXISTS (SELECT 1 FROM fence f WHERE f.zone_id = r.zone_id AND f.state <> 'live')
            THEN 'moving'
        WHEN NOT EXISTS (SELECT 1 FROM zone z WHERE z.idx = r.idx) THEN 'stale'
        -- Behind another claim of the player in this batch.
        WHEN r.nonce IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nonce_row n WHERE n.idx = r.idx)
            THEN 'collided'
        WHEN EXISTS (SELECT 1 FROM nonce_row n WHERE n.idx = r.idx
                     AND (n.next <> r.nonce OR n.client_seed <> r.client_seed)) THEN 'nonce'
        WHEN EXISTS (SELECT 1 FROM twin t WHERE t.idx = r.idx) THEN 'collided'
        WHEN EXISTS (SELECT 1 FROM taken t WHERE t.idx = r.idx) THEN 'retry'
        WHEN EXISTS (SELECT 1 FROM pick p WHERE p.idx = r.idx) THEN 'collided'
        WHEN r.chest IS NULL THEN 'exhausted'
        -- Still in chests: an in-flight claim holds it (and will most likely open it).
        WHEN EXISTS (SELECT 1 FROM chests ch WHERE ch.zone_id = r.zone_id AND ch.chest_id = r.chest)
            THEN 'already_opened'
        WHEN EXISTS (SELECT 1 FROM claims c WHERE c.zone_id = r.zone_id AND c.chest_id = r.chest)
            THEN 'already_opened'
        ELSE 'not_found'
    END AS "status!",
    a.claim_id AS "claim_id?",
    a.chest_id AS "chest_id?",
    a.seed_epoch AS "seed_epoch?",
    a.loot AS "loot?",
    a.opened_at AS "opened_at?",
    a.loot_table_id AS "loot_table_id?",
    a.name AS "loot_table?",
    a.version AS "loot_table_version?",
    a.nonce AS "nonce?",
    a.client_seed AS "client_seed?",
    a.authorised_by AS "authorised_by?",
    -- (Only a claim that opened nothing needs these.)
    CASE WHEN a.idx IS NULL THEN (SELECT n.next FROM nonce_row n WHERE n.idx = r.idx) END
        AS "next_nonce?",
    CASE WHEN a.idx IS NULL THEN (SELECT n.client_seed FROM nonce_row n WHERE n.idx = r.idx) END
        AS "next_client_seed?"
FROM req r
LEFT JOIN answered a ON a.idx = r.idx
ORDER BY r.idx
