-- One shard's page of the audit log, oldest first from `since`, after a keyset cursor
-- (at, audit_id): a range of audit_log_at.
SELECT audit_id, at, actor, role, action, zone, target, request_id, outcome, detail
FROM audit_log
WHERE at >= $1 AND (at, audit_id) > ($2, $3)
ORDER BY at, audit_id
LIMIT $4
