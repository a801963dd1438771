//! Trove: a transactional loot engine. Players race to open treasure chests; PostgreSQL keeps
//! the promise that no chest is opened twice and no acknowledged claim is lost.
//!
//! # Layout
//! - [`claims`]: opening a chest in one statement on the zone's shard; idempotent retries;
//!   a player's history gathered from all shards.
//! - [`zones`]: bulk spawns, O(1) zone totals, commit-reveal of seeds, chest listings.
//! - [`loot`]: loot tables (immutable versions) and the rolling algorithm.
//! - [`fairness`]: seed derivation and the ChaCha20 draw every claim and replay uses.
//! - [`verify`]: re-deriving a zone's draws from the ledger.
//! - [`shards`]: the zone → shard hash, per-shard pools, fail-fast health, migrations.
//! - [`auth`]: HS256 bearer tokens and roles.
//! - [`realtime`]: WebSocket fan-out of chest changes, tailing each shard's ledger.
//! - [`leaderboards`], [`ratelimit`], [`redis_client`]: Redis for what may be lost (boards,
//!   limits), rebuilt from the ledger; Trove keeps working without it.
//! - [`api`]: the axum HTTP API, its OpenAPI description, request ids and limits.
//! - [`metrics`]: Prometheus metrics of one instance (`GET /metrics`).
//! - [`probe`]: the fairness probe, proving zero dupes and zero lost claims from outside.
//! - [`local`]: the zero-setup local stack (private PostgreSQL clusters, demo world).
//! - [`config`]: `TROVE_*` settings shared by every subcommand.

pub mod api;
pub mod auth;
pub mod claims;
pub mod config;
pub mod engine;
pub mod error;
pub mod fairness;
pub mod leaderboards;
pub mod local;
pub mod loot;
pub mod metrics;
pub mod probe;
pub mod ratelimit;
pub mod realtime;
pub mod redis_client;
pub mod shards;
pub mod verify;
pub mod zones;

pub use engine::Engine;
pub use error::{Error, Result};
