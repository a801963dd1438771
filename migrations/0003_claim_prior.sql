-- The claim an idempotency key already produced, read with a fresh snapshot.
--
-- The claim statement (sql/claim.sql) takes each key's advisory lock before anything else, so
-- a retry racing its own first attempt waits there until that attempt has committed. The
-- statement's own snapshot predates the wait and cannot see that claim; a VOLATILE PL/pgSQL
-- function takes a new snapshot for each query it runs, so called after the lock it does,
-- and the retry replays the first attempt instead of locking (and then leaving) a chest of
-- its own. Index-driven: claims_idempotency_key.
CREATE FUNCTION trove_prior_claim(p_zone_id integer, p_player text, p_key text)
RETURNS TABLE (
    claim_id uuid,
    chest_id bigint,
    seed_epoch integer,
    loot jsonb,
    opened_at timestamptz,
    loot_table_id integer
)
-- At most one row (the key is unique per zone and player): tells the planner so.
LANGUAGE plpgsql VOLATILE ROWS 1
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT c.claim_id, c.chest_id, c.seed_epoch, c.loot, c.opened_at, c.loot_table_id
        FROM claims c
        WHERE c.idempotency_key IS NOT NULL
          AND c.zone_id = p_zone_id AND c.player = p_player AND c.idempotency_key = p_key;
END
$$;
