-- Forgets deleted (synthetic) zones, so their names can be placed afresh.
DELETE FROM catalog_zones WHERE name = ANY($1)
