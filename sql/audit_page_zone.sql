-- One shard's page of one zone's audit log, as audit_page.sql: a range of audit_log_zone_at.
SELECT audit_id, at, actor, role, action, zone, target, request_id, outcome, detail
FROM audit_log
WHERE zone = $1 AND at >= $2 AND (zone, at, audit_id) > ($1, $3, $4)
ORDER BY zone, at, audit_id
LIMIT $5
