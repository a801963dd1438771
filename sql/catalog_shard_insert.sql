-- Records a registered shard in the catalog; an existing ordinal is left as it is (the
-- caller reads the catalog back and compares).
INSERT INTO catalog_shards (ordinal, shard_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING
