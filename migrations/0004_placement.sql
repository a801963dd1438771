-- Shard identity and the catalog: where every zone lives, whatever the hash says today.
--
-- Until now a zone's shard was `jump_hash(name, shard_count)`, so appending a shard moved the
-- hash of some zones onto it and orphaned them (src/shards/placement.rs says more). Now:
-- - every shard records who it is (`shard_identity`: an id made when it is registered, and
--   its ordinal, its place in TROVE_SHARDS), so an instance whose list disagrees with the
--   shards refuses to serve instead of routing to the wrong database;
-- - the catalog, kept on the catalog shard (ordinal 0), lists the registered shards, every
--   zone's shard and every loot table's home (the shard that numbers its versions). The hash
--   only places what is new. Every shard carries these tables (one schema for all); only the
--   catalog shard fills them.

-- Exactly one row, written when the shard is registered.
CREATE TABLE shard_identity (
    only_row      boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    shard_id      uuid        NOT NULL,
    ordinal       integer     NOT NULL CHECK (ordinal >= 0),
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- The registered shards, in TROVE_SHARDS order. Append-only: a shard keeps its ordinal.
CREATE TABLE catalog_shards (
    ordinal  integer     PRIMARY KEY CHECK (ordinal >= 0),
    shard_id uuid        NOT NULL UNIQUE,
    added_at timestamptz NOT NULL DEFAULT now()
);

-- Every zone of the deployment, once: the primary key is what keeps a zone name unique
-- across all shards (a zone is placed here before it is created on its shard).
CREATE TABLE catalog_zones (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    shard      integer     NOT NULL REFERENCES catalog_shards (ordinal),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX catalog_zones_shard ON catalog_zones (shard);

-- Every loot table's home for good: the shard that numbers its versions.
CREATE TABLE catalog_loot_tables (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    home       integer     NOT NULL REFERENCES catalog_shards (ordinal),
    created_at timestamptz NOT NULL DEFAULT now()
);
