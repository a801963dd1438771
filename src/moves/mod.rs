//! Online zone moves: `trove zones move ZONE --to SHARD`.
//!
//! A zone's whole state (the tables in [`ZONE_TABLES`]) is copied to the target shard while
//! the source keeps serving, in short transactions (the ledger tails follow the xmin horizon,
//! which a long one would hold back for every zone): first everything, then, in catch-up
//! passes, what the source's ledger gained since the previous pass began. Then the source is
//! fenced (claims wait, briefly, or get 503 `zone_moving`), the last rows are copied, the copy
//! is checked against the source, and the target is switched in: it serves, the catalog names
//! it, and the source's rows are deleted.
//!
//! # Crash safety
//! Every step is one transaction on one database, and the catalog's `catalog_moves` row says
//! which phase the move is in, so the mover may die after any of them: the zone is then served
//! by exactly one shard (the source until the target switches in, which is one transaction;
//! a stale route to the other one finds no live zone and asks the catalog again), and running
//! the same command again finishes the move (`--abort` undoes one that has not switched).
//! Copied rows are marked `copied`: the target's tails do not take them for new claims.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

mod copy;
mod nonces;
mod phases;

use crate::audit::Audit;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::names::validate_zone_name;
use crate::shards::{Shard, ShardSet};

/// The application name of a move's copy sessions (migration 0006 names it too).
const COPY_SESSION: &str = "trove-move-copy";

/// Every table that holds a zone's rows (by `zone_id`, or the zone row itself): a move copies
/// them all. A test fails when a table with a `zone_id` column is missing here.
pub const ZONE_TABLES: &[&str] = &[
    "zones",
    "zone_seeds",
    "zone_loot_tables",
    "zone_counters",
    "player_nonces",
    "spawns",
    "chests",
    "claims",
];

/// `trove zones` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ZoneCommand {
    /// Move a zone, with all it owns, to another shard while it keeps serving.
    Move {
        zone: String,
        /// The target shard (its ordinal, as `trove shards` lists them).
        #[arg(long)]
        to: usize,
        /// Rows per copy transaction.
        #[arg(long, default_value_t = 5000)]
        batch: i64,
        /// Pause after each copy transaction, in ms (throttles the move).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
        /// The most of the time the copy may keep the shards busy, in percent (1-100): after
        /// each copy transaction it rests long enough to stay under it.
        #[arg(long, default_value_t = DEFAULT_SHARE)]
        share: u32,
        /// Undo the move in progress instead (only before it switched).
        #[arg(long)]
        abort: bool,
    },
    /// Delete the old copies of zones that moved away (kept a while for the ledger tails).
    Cleanup {
        /// Only copies older than this (30s, 10m, 1h).
        #[arg(long, default_value = "10m")]
        older_than: String,
    },
}

/// Runs a `trove zones` subcommand; returns what to print. `TROVE_MOVE_CRASH_AFTER=N` (for
/// the crash-point test only) aborts the process after the move's N-th transaction.
pub async fn cli(engine: &Engine, command: ZoneCommand) -> Result<String> {
    let (zone, to, batch, pause_ms, share, abort) = match command {
        ZoneCommand::Cleanup { older_than } => {
            let secs = crate::auth::parse_ttl(&older_than)?;
            let gone = engine
                .clean_moved(Duration::from_secs(secs.unsigned_abs()))
                .await?;
            return Ok(format!("deleted {gone} old copies of moved zones\n"));
        }
        ZoneCommand::Move {
            zone,
            to,
            batch,
            pause_ms,
            share,
            abort,
        } => (zone, to, batch, pause_ms, share, abort),
    };
    if abort {
        return Ok(match engine.abort_move(&zone).await? {
            true => format!("the move of {zone} is undone: it serves on its source\n"),
            false => format!("{zone} has no move in progress\n"),
        });
    }
    let opts = MoveOptions {
        batch: batch.clamp(1, 100_000),
        pause: Duration::from_millis(pause_ms),
        share: share.clamp(1, 100),
        crash_after: std::env::var("TROVE_MOVE_CRASH_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let r = move_audited(engine, &zone, to, &opts).await?;
    Ok(format!(
        "moved {} from shard {} to shard {}: {} unopened chests, {} ledger rows, fenced {} ms, {} passes, {} commits\n",
        r.zone, r.from, r.to, r.chests, r.claims, r.fenced_ms, r.passes, r.commits
    ))
}

/// A move the command line runs (`trove zones move`, `trove rebalance`, `trove shards
/// drain`), with its audit row: moving a zone is admin power too. The actor is `cli:$USER`.
pub async fn move_audited(
    engine: &Engine,
    zone: &str,
    to: usize,
    opts: &MoveOptions,
) -> Result<MoveReport> {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let audit = Audit::system(&format!("cli:{user}"), "move_zone").zone(zone);
    match engine.move_zone(zone, to, opts).await {
        Ok(r) => {
            let detail = serde_json::json!({
                "from": r.from, "to": r.to, "chests": r.chests, "claims": r.claims,
                "fenced_ms": r.fenced_ms,
            });
            engine.audit_record(&audit, "ok", detail).await?;
            Ok(r)
        }
        Err(e) => {
            engine.audit_refusal(&audit, e.code(), &e.to_string()).await;
            Err(e)
        }
    }
}

/// How a move runs.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Rows per copy transaction.
    pub batch: i64,
    /// Pause after each copy transaction (throttling a move on a busy shard).
    pub pause: Duration,
    /// The copy's duty cycle in percent: after each copy transaction it rests for as long as
    /// keeps its share of the time at most this (50: it rests as long as it worked). On a
    /// busy shard a copy at full speed takes CPU from every other zone's claims.
    pub share: u32,
    /// Test-only: abort the process right after this many committed transactions.
    pub crash_after: Option<u32>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            batch: 5000,
            pause: Duration::ZERO,
            share: DEFAULT_SHARE,
            crash_after: None,
        }
    }
}

/// What a move did.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    pub zone: String,
    pub from: usize,
    pub to: usize,
    /// Unopened chests and ledger rows now on the target.
    pub chests: i64,
    pub claims: i64,
    /// How long the zone was fenced (claims waited), in ms; 0 when this run did not fence.
    pub fenced_ms: u64,
    /// Copy passes before the fence.
    pub passes: u32,
    /// Transactions this run committed (each a crash point).
    pub commits: u32,
}

/// A move in progress, as the catalog records it.
struct Recorded {
    from: usize,
    to: usize,
    phase: String,
    source_zone_id: i32,
}

/// The copy's default duty cycle, in percent.
pub const DEFAULT_SHARE: u32 = 50;

/// Catch-up passes before the fence; one whose claims fit in this many rows ends them.
const MAX_PASSES: u32 = 6;
const SMALL_DELTA: usize = 200;

impl Engine {
    /// Moves `zone` to shard `to` online (or finishes the move in progress).
    pub async fn move_zone(&self, zone: &str, to: usize, opts: &MoveOptions) -> Result<MoveReport> {
        validate_zone_name(zone)?;
        if to >= self.shards.len() {
            return Err(Error::invalid(
                "invalid_shard",
                format!(
                    "there is no shard {to} (this instance knows {})",
                    self.shards.len()
                ),
            ));
        }
        let mut mover = Mover::new(self, zone, opts);
        let recorded = match mover.recorded().await? {
            Some(r) if r.to != to => {
                return Err(Error::Conflict(format!(
                    "zone {zone:?} is moving to shard {}; finish that move (or --abort it) first",
                    r.to
                )))
            }
            Some(r) => r,
            None => {
                let from = self.shards.zone_shard_fresh(zone).await?.index;
                if from == to {
                    return Ok(mover.report(from, to, 0, 0));
                }
                mover.start(from, to).await?
            }
        };
        let report = mover.run(recorded).await?;
        self.shards.placement().forget(zone);
        self.zones.forget(zone);
        Ok(report)
    }

    /// Deletes the old copies of zones that moved away more than `older_than` ago, on every
    /// shard, in batches; returns how many went. The ledger tails of every instance must be
    /// past them (they poll every fraction of a second; a follower stopped for longer than
    /// this misses the last claims those copies made: `trove leaderboards rebuild`).
    pub async fn clean_moved(&self, older_than: Duration) -> Result<u64> {
        let opts = MoveOptions::default();
        let mut gone = 0;
        for shard in self.shards.all() {
            let ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
            let ids = sqlx::query_file_scalar!("sql/moved_zones.sql", ms)
                .fetch_all(&shard.pool()?)
                .await
                .map_err(|e| shard.db_error(e))?;
            for id in ids {
                Mover::new(self, "", &opts).drop_zone(shard, id).await?;
                gone += 1;
            }
        }
        Ok(gone)
    }

    /// Undoes a move that has not switched: the source serves again, the target's copy goes.
    pub async fn abort_move(&self, zone: &str) -> Result<bool> {
        validate_zone_name(zone)?;
        let opts = MoveOptions::default();
        let mut mover = Mover::new(self, zone, &opts);
        let Some(r) = mover.recorded().await? else {
            return Ok(false);
        };
        if r.phase == "switched" {
            return Err(Error::Conflict(format!(
                "zone {zone:?} has switched to shard {}: run the move again to finish it",
                r.to
            )));
        }
        let (source, target) = (mover.shard(r.from), mover.shard(r.to));
        sqlx::query_file!("sql/move_unfence.sql", r.source_zone_id)
            .execute(&source.pool()?)
            .await?;
        mover.committed();
        if let Some((id, _)) = mover.target_zone(&target).await? {
            mover.drop_zone(&target, id).await?;
        }
        mover.catalog_done().await?;
        Ok(true)
    }
}

/// One run of one move.
struct Mover<'a> {
    engine: &'a Engine,
    zone: &'a str,
    opts: &'a MoveOptions,
    commits: u32,
    /// Source loot table id → target loot table id.
    tables: HashMap<i32, i32>,
    /// While the source is fenced its claims wait: no throttling then.
    fenced: bool,
    /// When the copy last went back to work (after its last rest).
    busy_since: Instant,
    /// Copy sessions (named `trove-move-copy`): the ledger tails' horizon leaves their
    /// transactions out (migration 0006), so they must run nothing but the copy's bulk
    /// inserts and deletes, whose rows no tail reads.
    copies: ShardSet,
}

impl<'a> Mover<'a> {
    fn new(engine: &'a Engine, zone: &'a str, opts: &'a MoveOptions) -> Self {
        Mover {
            engine,
            zone,
            opts,
            commits: 0,
            tables: HashMap::new(),
            fenced: false,
            busy_since: Instant::now(),
            copies: engine
                .shards
                .derived(1, &[("application_name", COPY_SESSION)]),
        }
    }

    fn shard(&self, i: usize) -> Arc<Shard> {
        Arc::clone(&self.engine.shards.all()[i])
    }

    fn catalog(&self) -> Arc<Shard> {
        self.shard(0)
    }

    /// Counts a committed transaction: the test-only crash point.
    fn committed(&mut self) {
        self.commits += 1;
        if self.opts.crash_after == Some(self.commits) {
            eprintln!("crash point {}: aborting the move here", self.commits);
            std::process::abort();
        }
    }

    /// A pool on shard `i` for the copy's bulk writes (see `copies`).
    fn copy_pool(&self, i: usize) -> Result<sqlx::PgPool> {
        self.copies.all()[i].pool()
    }

    /// Rests after a copy transaction: `pause`, and long enough to keep the copy's share of
    /// the time under `share` (not while fenced: claims wait then).
    async fn throttle(&mut self) {
        if !self.fenced {
            let share = self.opts.share.clamp(1, 100);
            let rest = (self.busy_since.elapsed() * (100 - share) / share).max(self.opts.pause);
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        }
        self.busy_since = Instant::now();
    }

    fn report(&self, from: usize, to: usize, chests: i64, claims: i64) -> MoveReport {
        MoveReport {
            zone: self.zone.to_owned(),
            from,
            to,
            chests,
            claims,
            fenced_ms: 0,
            passes: 0,
            commits: self.commits,
        }
    }

    async fn recorded(&self) -> Result<Option<Recorded>> {
        let c = self.catalog();
        let row = sqlx::query_file!("sql/catalog_move.sql", self.zone)
            .fetch_optional(&c.pool()?)
            .await
            .map_err(|e| c.db_error(e))?;
        Ok(row.map(|r| Recorded {
            from: r.from_shard as usize,
            to: r.to_shard as usize,
            phase: r.phase,
            source_zone_id: r.source_zone_id,
        }))
    }

    async fn start(&mut self, from: usize, to: usize) -> Result<Recorded> {
        let source = self.shard(from);
        let zone = self.source_zone(&source).await?;
        let c = self.catalog();
        let r = sqlx::query_file!(
            "sql/catalog_move_start.sql",
            self.zone,
            from as i32,
            to as i32,
            zone.id
        )
        .fetch_one(&c.pool()?)
        .await
        .map_err(|e| c.db_error(e))?;
        self.committed();
        Ok(Recorded {
            from: r.from_shard as usize,
            to: r.to_shard as usize,
            phase: r.phase,
            source_zone_id: r.source_zone_id,
        })
    }

    async fn set_phase(&mut self, phase: &str) -> Result<()> {
        let c = self.catalog();
        sqlx::query_file!("sql/catalog_move_phase.sql", self.zone, phase)
            .execute(&c.pool()?)
            .await
            .map_err(|e| c.db_error(e))?;
        self.committed();
        Ok(())
    }

    async fn catalog_done(&mut self) -> Result<()> {
        let c = self.catalog();
        sqlx::query_file!("sql/catalog_move_done.sql", self.zone)
            .execute(&c.pool()?)
            .await
            .map_err(|e| c.db_error(e))?;
        self.committed();
        Ok(())
    }
}
