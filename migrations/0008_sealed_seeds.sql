-- Unrevealed server seeds are kept sealed (src/seeds.rs): with counter nonces and client
-- seeds, whoever reads a seed before its reveal can predict the draws. `sealed` is the seed
-- under a key held outside PostgreSQL (TROVE_SEED_KEY), bound to its commitment; the reveal
-- writes `seed` in the clear and drops `sealed`. A dump or a read replica shows neither an
-- unrevealed seed nor the key.
--
-- The old check (commitment = sha256(seed)) cannot hold on a seed stored only sealed: it now
-- holds whenever the seed is in the clear, that is from its reveal on (the reveal also
-- checks the opened seed against the commitment before it writes it). Seeds of unrevealed
-- epochs from before this migration are still in the clear until the first start seals them.
ALTER TABLE zone_seeds
    ALTER COLUMN seed DROP NOT NULL,
    ADD COLUMN sealed bytea,
    DROP CONSTRAINT zone_seeds_commitment_check,
    DROP CONSTRAINT zone_seeds_seed_check,
    ADD CONSTRAINT zone_seeds_seed_check
        CHECK (seed IS NULL OR (length(seed) = 32 AND commitment = sha256(seed))),
    ADD CONSTRAINT zone_seeds_kept CHECK (seed IS NOT NULL OR sealed IS NOT NULL);
