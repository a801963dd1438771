-- The ledger's player check, without the regular expression's bounded repetition: PostgreSQL's
-- regex engine unrolls `{1,64}` into 64 states, and that one check cost about 6 % of the
-- instructions a claim statement takes (benches/claim_sql.py --callgrind). The rule is the same
-- (1-64 of [A-Za-z0-9_-]; those are single-byte characters, so bytes count characters), and
-- `names::valid_player_id` still refuses a bad id before it reaches the database.
--
-- NOT VALID: every existing row already passed the old check, which says the same; validating
-- would read the whole ledger under this migration's exclusive lock for nothing. New and
-- updated rows are checked from now on.
ALTER TABLE claims DROP CONSTRAINT claims_player_check;
ALTER TABLE claims ADD CONSTRAINT claims_player_check
    CHECK (octet_length(player) BETWEEN 1 AND 64 AND player !~ '[^A-Za-z0-9_-]') NOT VALID;
