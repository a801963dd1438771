-- Draws the server cannot steer (src/fairness.rs, README "Provably fair draws").
--
-- Until now a draw's nonce was the claim id, which the server makes: an operator could mint
-- ids until the loot it wanted came up. From this migration on, a seed epoch draws with
-- version 2: HMAC over the player's client seed and the player's own claim counter in that
-- epoch (0, 1, 2, ... gapless), so nothing the server picks after the commitment enters the
-- draw. Epochs committed before keep version 1 and keep verifying under it.
ALTER TABLE zone_seeds ADD COLUMN draw_version smallint NOT NULL DEFAULT 1
    CHECK (draw_version IN (1, 2));
ALTER TABLE zone_seeds ALTER COLUMN draw_version SET DEFAULT 2;

-- Per (zone, player): the next nonce in `seed_epoch` (a row of an older epoch counts from 0
-- in the zone's current one) and the player's client seed. Only that player's claims write
-- the row, so it is no hot row; a claim statement locks it (SKIP LOCKED: a second claim of
-- the same player in flight goes again) and bumps it in the transaction that writes the
-- ledger row, so a claim that is refused or fails consumes no nonce.
-- `seed_set_xid`: the transaction that last set the client seed (a move copies the rows set
-- since its previous pass by it). No foreign key, like chests and claims: a dropped zone's
-- rows are deleted in batches.
CREATE TABLE player_nonces (
    zone_id      integer NOT NULL,
    player       text    NOT NULL,
    seed_epoch   integer NOT NULL,
    next_nonce   bigint  NOT NULL DEFAULT 0 CHECK (next_nonce >= 0),
    client_seed  text    NOT NULL DEFAULT '',
    seed_set_xid bigint,
    PRIMARY KEY (zone_id, player)
);
CREATE INDEX player_nonces_seed_set ON player_nonces (zone_id, seed_set_xid, player)
    WHERE seed_set_xid IS NOT NULL;

-- What a version-2 draw used (NULL on version-1 claims), and who authorised the claim:
-- `player` (the player's own token) or `admin:<subject>` (an admin claiming on their behalf;
-- it still consumes the player's nonce). NULL on claims from before this migration.
ALTER TABLE claims
    ADD COLUMN nonce bigint CHECK (nonce >= 0),
    ADD COLUMN client_seed text,
    ADD COLUMN authorised_by text;

-- A nonce is used once per player and epoch, enforced by the database; the index also gives
-- an epoch's claims in transcript order (player, nonce).
CREATE UNIQUE INDEX claims_nonce ON claims (zone_id, seed_epoch, player, nonce)
    WHERE nonce IS NOT NULL;

-- The claim an idempotency key produced (migrations/0003), now with what its draw used and
-- who authorised it, so a replay answers with them too. (A superset of the old columns, so
-- a claim statement of the previous release still runs against it.)
DROP FUNCTION trove_prior_claim(integer, text, text);
CREATE FUNCTION trove_prior_claim(p_zone_id integer, p_player text, p_key text)
RETURNS TABLE (
    claim_id uuid,
    chest_id bigint,
    seed_epoch integer,
    loot jsonb,
    opened_at timestamptz,
    loot_table_id integer,
    nonce bigint,
    client_seed text,
    authorised_by text
)
LANGUAGE plpgsql VOLATILE ROWS 1
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT c.claim_id, c.chest_id, c.seed_epoch, c.loot, c.opened_at, c.loot_table_id,
               c.nonce, c.client_seed, c.authorised_by
        FROM claims c
        WHERE c.idempotency_key IS NOT NULL
          AND c.zone_id = p_zone_id AND c.player = p_player AND c.idempotency_key = p_key;
END
$$;

-- A zone's state and current seed epoch here, read with a fresh snapshot after taking its
-- fence lock in shared mode (as trove_zone_state, migrations/0005, which it succeeds in the
-- claim statement). A reveal takes the lock exclusively too, so a claim statement either
-- commits before the reveal or sees the new epoch and draws again: no claim lands in an
-- epoch after its seed was revealed, and an epoch's transcript is final at its reveal.
CREATE FUNCTION trove_zone_fence(p_zone_id integer, OUT state text, OUT seed_epoch integer)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7031, p_zone_id);
    SELECT z.state, z.seed_epoch INTO state, seed_epoch FROM zones z WHERE z.id = p_zone_id;
END
$$;
