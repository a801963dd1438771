-- A finished (or undone) move.
DELETE FROM catalog_moves WHERE name = $1
