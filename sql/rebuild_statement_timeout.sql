-- A rebuild aggregates a whole shard's ledger in one streaming statement: it may take far
-- longer than an API statement (TROVE_DB_STATEMENT_TIMEOUT_MS), so this transaction gets an
-- hour instead.
SET LOCAL statement_timeout = '1h'
