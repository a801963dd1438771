-- The shard a zone lives on (primary key lookup; once per zone per instance, then cached).
SELECT shard FROM catalog_zones WHERE name = $1
