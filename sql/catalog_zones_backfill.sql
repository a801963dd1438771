-- Records zones that already live on shard $2 (registering a deployment that predates the
-- catalog); a zone already recorded is left where the catalog says.
INSERT INTO catalog_zones (name, shard)
SELECT name, $2 FROM unnest($1::text[]) AS z (name)
ON CONFLICT (name) DO NOTHING
