-- A loot table's home: the shard that numbers its versions, for good.
SELECT home FROM catalog_loot_tables WHERE name = $1
