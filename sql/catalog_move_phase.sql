-- Moves a move to its next phase.
UPDATE catalog_moves SET phase = $2, updated_at = now() WHERE name = $1
