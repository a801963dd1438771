-- The audit log: every admin action, and every refused attempt at one, on the shard it
-- changed (in the same transaction as the change, so a row says ok exactly when the change
-- committed). Rows name their zone rather than point at it, so a zone's log stays readable
-- after the zone moves (its old rows stay where they were written; the listing reads every
-- shard). Append-only: no route changes it, and the triggers below refuse to.
CREATE TABLE audit_log (
    -- UUIDv7: time-ordered, the keyset of the listing together with `at`.
    audit_id   uuid        PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    -- The token's subject and role.
    actor      text        NOT NULL,
    role       text        NOT NULL,
    -- `spawn`, `reveal`, `put_loot_table`, `delete_synthetic_zones`, `verify`, ...
    action     text        NOT NULL,
    zone       text,
    -- What else the action names (a loot table).
    target     text,
    request_id text,
    -- `ok`, or the error code the caller got (`forbidden`, `invalid_count`, ...).
    outcome    text        NOT NULL,
    detail     jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_at ON audit_log (at, audit_id);
CREATE INDEX audit_log_zone_at ON audit_log (zone, at, audit_id);

CREATE FUNCTION trove_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION trove_audit_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION trove_audit_append_only();
