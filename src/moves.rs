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

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ledger::Cursor;
use crate::names::validate_zone_name;
use crate::shards::Shard;

/// Every table that holds a zone's rows (by `zone_id`, or the zone row itself): a move copies
/// them all. A test fails when a table with a `zone_id` column is missing here.
pub const ZONE_TABLES: &[&str] = &[
    "zones",
    "zone_seeds",
    "zone_loot_tables",
    "zone_counters",
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
    let (zone, to, batch, pause_ms, abort) = match command {
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
            abort,
        } => (zone, to, batch, pause_ms, abort),
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
        crash_after: std::env::var("TROVE_MOVE_CRASH_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let r = engine.move_zone(&zone, to, &opts).await?;
    Ok(format!(
        "moved {} from shard {} to shard {}: {} unopened chests, {} ledger rows, fenced {} ms, {} passes, {} commits\n",
        r.zone, r.from, r.to, r.chests, r.claims, r.fenced_ms, r.passes, r.commits
    ))
}

/// How a move runs.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Rows per copy transaction.
    pub batch: i64,
    /// Pause after each copy transaction (throttling a move on a busy shard).
    pub pause: Duration,
    /// Test-only: abort the process right after this many committed transactions.
    pub crash_after: Option<u32>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            batch: 5000,
            pause: Duration::ZERO,
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

    async fn throttle(&self) {
        if !self.opts.pause.is_zero() && !self.fenced {
            tokio::time::sleep(self.opts.pause).await;
        }
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

    async fn run(&mut self, r: Recorded) -> Result<MoveReport> {
        let (source, target) = (self.shard(r.from), self.shard(r.to));
        let mut passes = 0;
        let mut fenced_ms = 0;
        let mut phase = r.phase.clone();
        if phase == "copying" {
            // Copy everything, then catch up with what the source gained meanwhile.
            let mut copy = self.prepare(&source, &target).await?;
            self.full_pass(&source, &target, &mut copy).await?;
            passes += 1;
            while passes < MAX_PASSES {
                passes += 1;
                if self.catch_up(&source, &target, &mut copy).await? <= SMALL_DELTA {
                    break;
                }
            }
            // Counted now, outside the fence; the last pass keeps the count up to date, so
            // the check against the frozen source costs nothing while claims wait.
            copy.tracked = Some(counts(&target, copy.target_id).await?);
            let fenced_at = Instant::now();
            self.fence(&source, &copy).await?;
            self.set_phase("fenced").await?;
            // The source is frozen now: one more pass copies the rest exactly.
            self.catch_up(&source, &target, &mut copy).await?;
            self.finish_copy(&source, &target, &copy).await?;
            self.switch(&target, &copy, r.to).await?;
            fenced_ms = fenced_at.elapsed().as_millis() as u64;
            phase = "switched".into();
        } else if phase == "fenced" {
            // Resumed after a crash while fenced: a full pass over the frozen source.
            self.fenced = true;
            match self.target_zone(&target).await? {
                // It switched in before the crash: only the catalog is left to switch.
                Some((_, state)) if state == "live" => self.switch_catalog(r.to).await?,
                _ => {
                    let mut copy = self.prepare(&source, &target).await?;
                    self.full_pass(&source, &target, &mut copy).await?;
                    self.finish_copy(&source, &target, &copy).await?;
                    self.switch(&target, &copy, r.to).await?;
                }
            }
            phase = "switched".into();
        }
        if phase == "switched" {
            // Kept, serving nothing, until `cleanup`: the ledger tails still read its last
            // claims (the target's copies of them are not events).
            let done = sqlx::query_file!("sql/move_mark_moved.sql", r.source_zone_id)
                .execute(&source.pool()?)
                .await
                .map_err(|e| source.db_error(e))?;
            if done.rows_affected() > 0 {
                self.committed();
            }
            self.catalog_done().await?;
        }
        let (chests, claims) = match self.target_zone(&target).await? {
            Some((id, _)) => counts(&target, id).await?,
            None => (0, 0),
        };
        let mut report = self.report(r.from, r.to, chests, claims);
        report.fenced_ms = fenced_ms;
        report.passes = passes;
        Ok(report)
    }

    async fn source_zone(&self, source: &Arc<Shard>) -> Result<SourceZone> {
        let row = sqlx::query_file!("sql/move_source_zone.sql", self.zone)
            .fetch_optional(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?
            .ok_or_else(|| Error::ZoneNotFound(self.zone.to_owned()))?;
        Ok(SourceZone {
            id: row.id,
            seed_epoch: row.seed_epoch,
            chest_count: row.chest_count,
            synthetic: row.synthetic,
            created_at: row.created_at,
            epochs: row.epochs,
            seeds: row.seeds,
            seeded_at: row.seeded_at,
            revealed_at: row.revealed_at.unwrap_or_default(),
            counters: row.counters,
            spawn_firsts: row.spawn_firsts,
            spawn_counts: row.spawn_counts,
            spawned_at: row.spawned_at,
        })
    }

    /// The target copy's id and state, if there is one.
    async fn target_zone(&self, target: &Arc<Shard>) -> Result<Option<(i32, String)>> {
        let row = sqlx::query_file!("sql/move_target_state.sql", self.zone)
            .fetch_optional(&target.pool()?)
            .await
            .map_err(|e| target.db_error(e))?;
        Ok(row.map(|r| (r.id, r.state)))
    }

    /// Creates (or finds) the target copy and copies the loot table versions it needs.
    async fn prepare(&mut self, source: &Arc<Shard>, target: &Arc<Shard>) -> Result<Copy> {
        let z = self.source_zone(source).await?;
        if let Some((id, state)) = self.target_zone(target).await? {
            if state == "moved" {
                // The zone's old copy from when it moved away from the target: it goes now.
                self.drop_zone(target, id).await?;
            }
        }
        let row = sqlx::query_file!(
            "sql/move_target_zone.sql",
            self.zone,
            z.seed_epoch,
            z.chest_count,
            z.synthetic,
            z.created_at
        )
        .fetch_one(&target.pool()?)
        .await
        .map_err(|e| target.db_error(e))?;
        self.committed();
        if row.state != "incoming" {
            return Err(Error::Conflict(format!(
                "shard {} already serves a zone {:?}",
                target.index, self.zone
            )));
        }
        self.sync_tables(source, target, z.id).await?;
        Ok(Copy {
            source_id: z.id,
            target_id: row.id,
            chests_after: 0,
            claims_since: None,
            tracked: None,
        })
    }

    /// Copies the loot table versions the zone uses (immutable: a copy that exists stays).
    async fn sync_tables(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        zone_id: i32,
    ) -> Result<()> {
        let tables = sqlx::query_file!("sql/move_source_tables.sql", zone_id)
            .fetch_all(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?;
        for t in tables {
            if self.tables.contains_key(&t.id) {
                continue;
            }
            let pool = target.pool()?;
            let id = sqlx::query_file_scalar!(
                "sql/loot_table_insert.sql",
                t.name,
                t.version,
                t.entries,
                t.rolls
            )
            .fetch_optional(&pool)
            .await
            .map_err(|e| target.db_error(e))?;
            let id = match id {
                Some(id) => id,
                None => sqlx::query_file_scalar!("sql/loot_table_id.sql", t.name, t.version)
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| target.db_error(e))?,
            };
            self.committed();
            self.tables.insert(t.id, id);
        }
        Ok(())
    }

    fn table(&self, source_id: i32) -> Result<i32> {
        self.tables
            .get(&source_id)
            .copied()
            .ok_or_else(|| Error::Internal(format!("loot table {source_id} was not copied")))
    }

    /// Everything: every unopened chest, then every ledger row.
    async fn full_pass(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &mut Copy,
    ) -> Result<()> {
        let since = horizon(source).await?;
        self.copy_chests(source, target, copy).await?;
        let mut after = 0i64;
        loop {
            let rows = sqlx::query_file!(
                "sql/move_claims_read.sql",
                copy.source_id,
                after,
                self.opts.batch
            )
            .fetch_all(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?;
            let Some(last) = rows.last() else { break };
            after = last.chest_id;
            let batch: Vec<Ledger> = rows
                .into_iter()
                .map(|r| Ledger {
                    chest_id: r.chest_id,
                    claim_id: r.claim_id,
                    player: r.player,
                    seed_epoch: r.seed_epoch,
                    loot_table_id: r.loot_table_id,
                    loot: r.loot,
                    opened_at: r.opened_at,
                    idempotency_key: r.idempotency_key,
                })
                .collect();
            self.write_claims(source, target, copy, batch).await?;
        }
        copy.claims_since = Some(Cursor::below(since));
        Ok(())
    }

    /// What the source gained since the last pass began: ledger rows (by the tail index, from
    /// that pass's horizon) and chests spawned since. Returns how many ledger rows it copied.
    async fn catch_up(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &mut Copy,
    ) -> Result<usize> {
        let since = horizon(source).await?;
        self.copy_chests(source, target, copy).await?;
        let mut from = copy.claims_since.unwrap_or_default();
        let mut copied = 0;
        loop {
            let rows = sqlx::query_file!(
                "sql/move_claims_since.sql",
                copy.source_id,
                from.xid,
                from.zone_id,
                from.chest_id,
                self.opts.batch
            )
            .fetch_all(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?;
            let Some(first) = rows.first() else { break };
            from = Cursor {
                xid: first.last_xid,
                zone_id: first.last_zone_id,
                chest_id: first.last_chest_id,
            };
            let batch: Vec<Ledger> = rows
                .into_iter()
                .filter_map(|r| {
                    Some(Ledger {
                        chest_id: r.chest_id?,
                        claim_id: r.claim_id?,
                        player: r.player?,
                        seed_epoch: r.seed_epoch?,
                        loot_table_id: r.loot_table_id?,
                        loot: r.loot?,
                        opened_at: r.opened_at?,
                        idempotency_key: r.idempotency_key,
                    })
                })
                .collect();
            copied += batch.len();
            if !batch.is_empty() {
                self.write_claims(source, target, copy, batch).await?;
            }
        }
        copy.claims_since = Some(Cursor::below(since).max(copy.claims_since.unwrap_or_default()));
        Ok(copied)
    }

    /// Unopened chests after the last one copied (all of them on the first call).
    async fn copy_chests(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &mut Copy,
    ) -> Result<()> {
        loop {
            let rows = sqlx::query_file!(
                "sql/move_chests_read.sql",
                copy.source_id,
                copy.chests_after,
                self.opts.batch
            )
            .fetch_all(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            copy.chests_after = last.chest_id;
            if rows
                .iter()
                .any(|r| !self.tables.contains_key(&r.loot_table_id))
            {
                // A spawn with a new loot table version since the copy began.
                self.sync_tables(source, target, copy.source_id).await?;
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.chest_id).collect();
            let tables = rows
                .iter()
                .map(|r| self.table(r.loot_table_id))
                .collect::<Result<Vec<_>>>()?;
            let done =
                sqlx::query_file!("sql/move_chests_write.sql", copy.target_id, &ids, &tables)
                    .execute(&target.pool()?)
                    .await
                    .map_err(|e| target.db_error(e))?;
            if let Some((chests, _)) = &mut copy.tracked {
                *chests += done.rows_affected() as i64;
            }
            self.committed();
            self.throttle().await;
        }
    }

    async fn write_claims(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &mut Copy,
        batch: Vec<Ledger>,
    ) -> Result<()> {
        if batch
            .iter()
            .any(|r| !self.tables.contains_key(&r.loot_table_id))
        {
            self.sync_tables(source, target, copy.source_id).await?;
        }
        let mut cols = LedgerColumns::default();
        for r in batch {
            cols.tables.push(self.table(r.loot_table_id)?);
            cols.chests.push(r.chest_id);
            cols.ids.push(r.claim_id);
            cols.players.push(r.player);
            cols.epochs.push(r.seed_epoch);
            cols.loots.push(r.loot);
            cols.at.push(r.opened_at);
            cols.keys.push(r.idempotency_key);
        }
        let done = sqlx::query_file!(
            "sql/move_claims_write.sql",
            copy.target_id,
            &cols.chests,
            &cols.ids,
            &cols.players,
            &cols.epochs,
            &cols.tables,
            &cols.loots,
            &cols.at,
            &cols.keys as &[Option<String>]
        )
        .fetch_one(&target.pool()?)
        .await
        .map_err(|e| target.db_error(e))?;
        if let Some((chests, claims)) = &mut copy.tracked {
            *chests -= done.removed;
            *claims += done.inserted;
        }
        self.committed();
        self.throttle().await;
        Ok(())
    }

    async fn fence(&mut self, source: &Arc<Shard>, copy: &Copy) -> Result<()> {
        self.fenced = true;
        sqlx::query_file!("sql/move_fence.sql", copy.source_id)
            .fetch_optional(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?
            .ok_or_else(|| Error::ZoneNotFound(self.zone.to_owned()))?;
        self.committed();
        Ok(())
    }

    /// With the source fenced: the small rows (zone row, seeds, tables, counters, spawns),
    /// then a check that the copy holds exactly what the source does.
    async fn finish_copy(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &Copy,
    ) -> Result<()> {
        let z = self.source_zone(source).await?;
        self.sync_tables(source, target, z.id).await?;
        let tables: Vec<i32> = self.tables.values().copied().collect();
        sqlx::query_file!(
            "sql/move_target_sync.sql",
            copy.target_id,
            z.seed_epoch,
            z.chest_count,
            &z.epochs,
            &z.seeds,
            &z.seeded_at,
            &z.revealed_at as &[Option<DateTime<Utc>>],
            &tables,
            &z.counters,
            &z.spawn_firsts,
            &z.spawn_counts,
            &z.spawned_at
        )
        .execute(&target.pool()?)
        .await
        .map_err(|e| target.db_error(e))?;
        self.committed();
        let (from, to) = match copy.tracked {
            // The frozen source's own counters (O(1)) against the copy's running count.
            Some(tracked) => {
                let opened: i64 = z.counters.iter().sum();
                ((z.chest_count - opened, opened), tracked)
            }
            None => (
                counts(source, copy.source_id).await?,
                counts(target, copy.target_id).await?,
            ),
        };
        if from != to {
            return Err(Error::Internal(format!(
                "the copy of {:?} does not match its source (chests, ledger rows: {from:?} there, {to:?} here); the move stays fenced: run it again",
                self.zone
            )));
        }
        Ok(())
    }

    /// The target serves, then the catalog names it.
    async fn switch(&mut self, target: &Arc<Shard>, copy: &Copy, to: usize) -> Result<()> {
        sqlx::query_file!("sql/move_switch_target.sql", copy.target_id)
            .execute(&target.pool()?)
            .await
            .map_err(|e| target.db_error(e))?;
        self.committed();
        self.switch_catalog(to).await
    }

    async fn switch_catalog(&mut self, to: usize) -> Result<()> {
        let c = self.catalog();
        sqlx::query_file!("sql/catalog_move_switch.sql", self.zone, to as i32)
            .execute(&c.pool()?)
            .await
            .map_err(|e| c.db_error(e))?;
        self.committed();
        Ok(())
    }

    /// Drops a zone row (its small rows by cascade), then its chests and ledger in batches.
    async fn drop_zone(&mut self, shard: &Arc<Shard>, zone_id: i32) -> Result<()> {
        let done = sqlx::query_file!("sql/move_drop_zone.sql", zone_id)
            .execute(&shard.pool()?)
            .await
            .map_err(|e| shard.db_error(e))?;
        if done.rows_affected() > 0 {
            self.committed();
        }
        loop {
            let gone = sqlx::query_file_scalar!("sql/move_drop_rows.sql", zone_id, self.opts.batch)
                .fetch_one(&shard.pool()?)
                .await
                .map_err(|e| shard.db_error(e))?;
            if gone == 0 {
                return Ok(());
            }
            self.committed();
            self.throttle().await;
        }
    }
}

/// The source's zone row and its small rows.
struct SourceZone {
    id: i32,
    seed_epoch: i32,
    chest_count: i64,
    synthetic: bool,
    created_at: DateTime<Utc>,
    epochs: Vec<i32>,
    seeds: Vec<Vec<u8>>,
    seeded_at: Vec<DateTime<Utc>>,
    revealed_at: Vec<Option<DateTime<Utc>>>,
    counters: Vec<i64>,
    spawn_firsts: Vec<i64>,
    spawn_counts: Vec<i64>,
    spawned_at: Vec<DateTime<Utc>>,
}

/// How far a copy has got.
struct Copy {
    source_id: i32,
    target_id: i32,
    /// Chests up to this id are copied (chests only ever get higher ids).
    chests_after: i64,
    /// Ledger rows after this tail position may not be copied yet.
    claims_since: Option<Cursor>,
    /// The copy's (chests, ledger rows), kept up to date from a count before the fence.
    tracked: Option<(i64, i64)>,
}

/// One ledger row as a move copies it.
struct Ledger {
    chest_id: i64,
    claim_id: Uuid,
    player: String,
    seed_epoch: i32,
    loot_table_id: i32,
    loot: serde_json::Value,
    opened_at: DateTime<Utc>,
    idempotency_key: Option<String>,
}

#[derive(Default)]
struct LedgerColumns {
    chests: Vec<i64>,
    ids: Vec<Uuid>,
    players: Vec<String>,
    epochs: Vec<i32>,
    tables: Vec<i32>,
    loots: Vec<serde_json::Value>,
    at: Vec<DateTime<Utc>>,
    keys: Vec<Option<String>>,
}

/// The shard's horizon now: every transaction below it has finished.
async fn horizon(shard: &Arc<Shard>) -> Result<i64> {
    sqlx::query_file_scalar!("sql/snapshot_horizon.sql")
        .fetch_one(&shard.pool()?)
        .await
        .map_err(|e| shard.db_error(e))
}

/// (unopened chests, ledger rows) of a zone id on a shard.
async fn counts(shard: &Arc<Shard>, zone_id: i32) -> Result<(i64, i64)> {
    let row = sqlx::query_file!("sql/move_counts.sql", zone_id)
        .fetch_one(&shard.pool()?)
        .await
        .map_err(|e| shard.db_error(e))?;
    Ok((row.chests, row.claims))
}
