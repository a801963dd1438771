//! The phases of a move as one run takes them: copy, fence, finish, switch, and the old copy.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::copy::{counts, Copy};
use super::{MoveReport, Mover, Recorded, MAX_PASSES, SMALL_DELTA};
use crate::error::{Error, Result};
use crate::shards::Shard;

impl Mover<'_> {
    pub(super) async fn run(&mut self, r: Recorded) -> Result<MoveReport> {
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

    pub(super) async fn fence(&mut self, source: &Arc<Shard>, copy: &Copy) -> Result<()> {
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
    pub(super) async fn finish_copy(
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
            &z.spawned_at,
            &z.sealed,
            &z.commitments,
            &z.draw_versions
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
    pub(super) async fn switch(
        &mut self,
        target: &Arc<Shard>,
        copy: &Copy,
        to: usize,
    ) -> Result<()> {
        sqlx::query_file!("sql/move_switch_target.sql", copy.target_id)
            .execute(&target.pool()?)
            .await
            .map_err(|e| target.db_error(e))?;
        self.committed();
        self.switch_catalog(to).await
    }

    pub(super) async fn switch_catalog(&mut self, to: usize) -> Result<()> {
        let c = self.catalog();
        sqlx::query_file!("sql/catalog_move_switch.sql", self.zone, to as i32)
            .execute(&c.pool()?)
            .await
            .map_err(|e| c.db_error(e))?;
        self.committed();
        Ok(())
    }

    /// Drops a zone row (its small rows by cascade), then its chests and ledger in batches.
    pub(super) async fn drop_zone(&mut self, shard: &Arc<Shard>, zone_id: i32) -> Result<()> {
        let done = sqlx::query_file!("sql/move_drop_zone.sql", zone_id)
            .execute(&shard.pool()?)
            .await
            .map_err(|e| shard.db_error(e))?;
        if done.rows_affected() > 0 {
            self.committed();
        }
        loop {
            let gone = sqlx::query_file_scalar!("sql/move_drop_rows.sql", zone_id, self.opts.batch)
                .fetch_one(&self.copy_pool(shard.index)?)
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
