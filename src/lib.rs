//! Trove: a transactional loot engine. Players race to open treasure chests; PostgreSQL keeps
//! the promise that no chest is opened twice and no acknowledged claim is lost.
//!
//! # Layout
//! Dependencies point one way, down this list: `main` → [`app`] → [`api`] →
//! {[`realtime`], [`leaderboards`], [`ratelimit`], the domain} → {[`ledger`], [`shards`],
//! [`redis_client`], [`fairness`], [`receipts`], [`seeds`], [`auth`]} → {[`loot`], [`names`], [`ids`],
//! [`error`], [`metrics`]}.
//! No module imports one above it (a test in `tests/api/layers.rs` holds the code to that).
//! - [`app`]: the composition root: builds every service, binds, serves, shuts down.
//! - [`config`]: the `TROVE_*` settings, read whole only by `main` and `app`; it hands each
//!   module its own settings struct.
//! - [`api`]: every axum type: routes by rate-limit class, the one bearer parser and
//!   verification, extractors, the JSON error shape, OpenAPI, the WebSocket upgrade.
//! - [`realtime`]: WebSocket fan-out of chest changes tailing each shard's ledger (no HTTP).
//! - [`leaderboards`]: boards in Redis, followed and rebuilt from the ledger.
//! - [`ratelimit`]: token buckets in Redis.
//! - The domain, operations of [`Engine`] in the module of their concept: [`claims`]
//!   (opening chests, history), [`zones`] (spawns, totals, reveals, listings),
//!   [`loot_tables`] (stored versions), [`verify`] (re-deriving a zone's draws), [`moves`]
//!   (moving a zone to another shard online), [`rebalance`] (plans of moves, drains),
//!   [`transcripts`] (every claim of a revealed epoch, signed).
//! - [`ledger`]: positions on a shard's tail, the horizon rule, recorded loot.
//! - [`shards`]: the zone → shard hash, per-shard pools, fail-fast health, migrations.
//! - [`redis_client`]: the one Redis pool, with short timeouts and back-off.
//! - [`fairness`]: seed derivation, the ChaCha20 draw, and rolling a loot table.
//! - [`receipts`]: signed claim receipts (a Merkle tree per batch, one Ed25519 signature).
//! - [`seeds`]: unrevealed server seeds sealed at rest, under a key outside PostgreSQL.
//! - [`auth`]: HS256 tokens and roles.
//! - [`loot`]: loot tables as data, and their limits.
//! - [`names`]: validation of every name a client sends (zones, tables, players, keys).
//! - [`ids`]: claim and request ids (UUIDv7) without a system call each.
//! - [`error`]: the engine's one error type; [`metrics`]: the Prometheus series.
//! - Beside the stack: [`probe`], the fairness probe (an outside client of the API), and
//!   [`local`], the zero-setup local stack (private PostgreSQL clusters, demo world).

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod claims;
pub mod config;
pub mod engine;
pub mod error;
pub mod fairness;
pub mod ids;
pub mod leaderboards;
pub mod ledger;
pub mod local;
pub mod loot;
pub mod loot_tables;
pub mod metrics;
pub mod moves;
pub mod names;
pub mod probe;
pub mod ratelimit;
pub mod realtime;
pub mod rebalance;
pub mod receipts;
pub mod redis_client;
pub mod seeds;
pub mod shards;
pub mod transcripts;
pub mod verify;
pub mod zones;

pub use engine::Engine;
pub use error::{Error, Result};
