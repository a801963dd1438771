-- One audit row (`src/audit.rs`).
INSERT INTO audit_log (audit_id, actor, role, action, zone, target, request_id, outcome, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
