-- Trove shard schema, version 1.
--
-- Every shard carries this same schema. A zone's rows (zone, seeds, chests, claims, counters)
-- live only on the shard its name hashes to (src/shards.rs), so a claim never leaves one shard.
-- Loot tables are immutable versions: their home shard (by the same hash of the table name)
-- numbers new versions, and a spawn copies the version it uses onto the zone's shard.

-- Immutable loot table versions. `id` is a shard-local handle that chests point at; the same
-- (name, version) may carry different ids on different shards.
CREATE TABLE loot_tables (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    version     integer     NOT NULL CHECK (version >= 1),
    -- [{"item","weight","min_qty","max_qty","rarity"}], validated by the API before insert.
    entries     jsonb       NOT NULL CHECK (jsonb_typeof(entries) = 'array'),
    -- How many independent draws one chest yields.
    rolls       smallint    NOT NULL DEFAULT 1 CHECK (rolls BETWEEN 1 AND 16),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT loot_tables_name_version_key UNIQUE (name, version)
);

CREATE TABLE zones (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    -- The seed epoch claims draw from now; bumped by a reveal.
    seed_epoch  integer     NOT NULL DEFAULT 1 CHECK (seed_epoch >= 1),
    -- Chest ids in a zone are 1..chest_count, handed out by spawns under this row's lock.
    -- Only spawns write it, never claims, so it is not a hot row.
    chest_count bigint      NOT NULL DEFAULT 0 CHECK (chest_count >= 0),
    -- Synthetic zones (the fairness probe) are kept out of leaderboards and dashboards.
    synthetic   boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT zones_name_key UNIQUE (name)
);

-- Commit-reveal: a zone publishes sha256(seed) per epoch and reveals the seed later.
CREATE TABLE zone_seeds (
    zone_id     integer     NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    epoch       integer     NOT NULL CHECK (epoch >= 1),
    seed        bytea       NOT NULL CHECK (length(seed) = 32),
    commitment  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revealed_at timestamptz,
    PRIMARY KEY (zone_id, epoch),
    CONSTRAINT zone_seeds_commitment_check CHECK (commitment = sha256(seed))
);

-- Which loot table versions a zone's chests use, so a claim can pre-roll loot for each of them
-- without scanning chests.
CREATE TABLE zone_loot_tables (
    zone_id       integer NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    loot_table_id integer NOT NULL REFERENCES loot_tables (id),
    PRIMARY KEY (zone_id, loot_table_id)
);

-- Unopened chests only: opening a chest deletes its row (cheaper than a non-HOT update and it
-- keeps the primary key the exact index of what is left to draw). The opened chest lives on in
-- `claims`. No foreign key: a spawn inserts up to a million rows and the API owns zone ids.
CREATE TABLE chests (
    zone_id       integer NOT NULL,
    chest_id      bigint  NOT NULL CHECK (chest_id >= 1),
    loot_table_id integer NOT NULL,
    PRIMARY KEY (zone_id, chest_id)
);

-- The durable ledger: one row per opened chest. The primary key is the zero-dupe promise
-- enforced by the database itself: a chest can appear here once.
CREATE TABLE claims (
    zone_id         integer     NOT NULL,
    chest_id        bigint      NOT NULL,
    -- UUIDv7 made by the server; it is also the draw's nonce, so clients cannot choose it.
    claim_id        uuid        NOT NULL,
    player          text        NOT NULL CHECK (player ~ '^[A-Za-z0-9_-]{1,64}$'),
    seed_epoch      integer     NOT NULL,
    -- The loot table version the chest was spawned with.
    loot_table_id   integer     NOT NULL,
    loot            jsonb       NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    idempotency_key text        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- The claiming transaction's id (xid8 as bigint, so it compares with plain parameters):
    -- tailing the ledger in xid order below the oldest running transaction makes it an
    -- event log that yields every committed claim once.
    xid             bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    PRIMARY KEY (zone_id, chest_id)
);

-- Retries with the same key (per zone and player) find the first answer; racing retries
-- collide here and only one opens a chest.
CREATE UNIQUE INDEX claims_idempotency_key ON claims (zone_id, player, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A player's history, newest first, keyset-paginated.
CREATE INDEX claims_player_history ON claims (player, opened_at DESC, claim_id DESC);

-- Per-zone opened counts spread over 16 slots (a claim bumps the slot of its backend), so no
-- single row is updated by every claim in a zone. Sum the slots to read the count.
CREATE TABLE zone_counters (
    zone_id integer  NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    slot    smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
    opened  bigint   NOT NULL DEFAULT 0 CHECK (opened >= 0),
    PRIMARY KEY (zone_id, slot)
) WITH (fillfactor = 50);
