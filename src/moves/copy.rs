//! Copying a zone's rows from its source to the target copy, in short transactions.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Mover;
use crate::error::{Error, Result};
use crate::ledger::Cursor;
use crate::shards::Shard;

impl Mover<'_> {
    pub(super) async fn source_zone(&self, source: &Arc<Shard>) -> Result<SourceZone> {
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
            sealed: row.sealed,
            commitments: row.commitments,
            draw_versions: row.draw_versions,
            seeded_at: row.seeded_at,
            revealed_at: row.revealed_at.unwrap_or_default(),
            counters: row.counters,
            spawn_firsts: row.spawn_firsts,
            spawn_counts: row.spawn_counts,
            spawned_at: row.spawned_at,
        })
    }

    /// The target copy's id and state, if there is one.
    pub(super) async fn target_zone(&self, target: &Arc<Shard>) -> Result<Option<(i32, String)>> {
        let row = sqlx::query_file!("sql/move_target_state.sql", self.zone)
            .fetch_optional(&target.pool()?)
            .await
            .map_err(|e| target.db_error(e))?;
        Ok(row.map(|r| (r.id, r.state)))
    }

    /// Creates (or finds) the target copy and copies the loot table versions it needs.
    pub(super) async fn prepare(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
    ) -> Result<Copy> {
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
    pub(super) async fn sync_tables(
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

    pub(super) fn table(&self, source_id: i32) -> Result<i32> {
        self.tables
            .get(&source_id)
            .copied()
            .ok_or_else(|| Error::Internal(format!("loot table {source_id} was not copied")))
    }

    /// Everything: every unopened chest, then every ledger row.
    pub(super) async fn full_pass(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &mut Copy,
    ) -> Result<()> {
        let since = horizon(source).await?;
        self.copy_chests(source, target, copy).await?;
        self.copy_all_nonces(source, target, copy).await?;
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
                    nonce: r.nonce,
                    client_seed: r.client_seed,
                    authorised_by: r.authorised_by,
                })
                .collect();
            self.write_claims(source, target, copy, batch).await?;
        }
        copy.claims_since = Some(Cursor::below(since));
        Ok(())
    }

    /// What the source gained since the last pass began: ledger rows (by the tail index, from
    /// that pass's horizon) and chests spawned since. Returns how many ledger rows it copied.
    pub(super) async fn catch_up(
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
                        nonce: r.nonce,
                        client_seed: r.client_seed,
                        authorised_by: r.authorised_by,
                    })
                })
                .collect();
            copied += batch.len();
            if !batch.is_empty() {
                self.write_claims(source, target, copy, batch).await?;
            }
        }
        // Client seeds set since the previous pass began (claims' counters came with them).
        let set_since = copy.claims_since.unwrap_or_default().xid;
        self.copy_nonces_set_since(source, target, copy, set_since)
            .await?;
        copy.claims_since = Some(Cursor::below(since).max(copy.claims_since.unwrap_or_default()));
        Ok(copied)
    }

    /// Unopened chests after the last one copied (all of them on the first call).
    pub(super) async fn copy_chests(
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
                    .execute(&self.copy_pool(target.index)?)
                    .await
                    .map_err(|e| target.db_error(e))?;
            if let Some((chests, _)) = &mut copy.tracked {
                *chests += done.rows_affected() as i64;
            }
            self.committed();
            self.throttle().await;
        }
    }

    pub(super) async fn write_claims(
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
            cols.nonces.push(r.nonce);
            cols.client_seeds.push(r.client_seed);
            cols.authorisers.push(r.authorised_by);
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
            &cols.keys as &[Option<String>],
            &cols.nonces as &[Option<i64>],
            &cols.client_seeds as &[Option<String>],
            &cols.authorisers as &[Option<String>]
        )
        .fetch_one(&self.copy_pool(target.index)?)
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
}

/// The source's zone row and its small rows.
pub(super) struct SourceZone {
    pub(super) id: i32,
    pub(super) seed_epoch: i32,
    pub(super) chest_count: i64,
    pub(super) synthetic: bool,
    pub(super) created_at: DateTime<Utc>,
    pub(super) epochs: Vec<i32>,
    /// Per epoch: the seed in the clear (revealed) and sealed, each empty where absent.
    pub(super) seeds: Vec<Vec<u8>>,
    pub(super) sealed: Vec<Vec<u8>>,
    pub(super) commitments: Vec<Vec<u8>>,
    pub(super) draw_versions: Vec<i16>,
    pub(super) seeded_at: Vec<DateTime<Utc>>,
    pub(super) revealed_at: Vec<Option<DateTime<Utc>>>,
    pub(super) counters: Vec<i64>,
    pub(super) spawn_firsts: Vec<i64>,
    pub(super) spawn_counts: Vec<i64>,
    pub(super) spawned_at: Vec<DateTime<Utc>>,
}

/// How far a copy has got.
pub(super) struct Copy {
    pub(super) source_id: i32,
    pub(super) target_id: i32,
    /// Chests up to this id are copied (chests only ever get higher ids).
    pub(super) chests_after: i64,
    /// Ledger rows after this tail position may not be copied yet.
    pub(super) claims_since: Option<Cursor>,
    /// The copy's (chests, ledger rows), kept up to date from a count before the fence.
    pub(super) tracked: Option<(i64, i64)>,
}

/// One ledger row as a move copies it.
pub(super) struct Ledger {
    pub(super) chest_id: i64,
    pub(super) claim_id: Uuid,
    pub(super) player: String,
    pub(super) seed_epoch: i32,
    pub(super) loot_table_id: i32,
    pub(super) loot: serde_json::Value,
    pub(super) opened_at: DateTime<Utc>,
    pub(super) idempotency_key: Option<String>,
    pub(super) nonce: Option<i64>,
    pub(super) client_seed: Option<String>,
    pub(super) authorised_by: Option<String>,
}

#[derive(Default)]
pub(super) struct LedgerColumns {
    pub(super) chests: Vec<i64>,
    pub(super) ids: Vec<Uuid>,
    pub(super) players: Vec<String>,
    pub(super) epochs: Vec<i32>,
    pub(super) tables: Vec<i32>,
    pub(super) loots: Vec<serde_json::Value>,
    pub(super) at: Vec<DateTime<Utc>>,
    pub(super) keys: Vec<Option<String>>,
    pub(super) nonces: Vec<Option<i64>>,
    pub(super) client_seeds: Vec<Option<String>>,
    pub(super) authorisers: Vec<Option<String>>,
}

/// The shard's horizon now: every transaction below it has finished.
pub(super) async fn horizon(shard: &Arc<Shard>) -> Result<i64> {
    sqlx::query_file_scalar!("sql/snapshot_horizon.sql")
        .fetch_one(&shard.pool()?)
        .await
        .map_err(|e| shard.db_error(e))
}

/// (unopened chests, ledger rows) of a zone id on a shard.
pub(super) async fn counts(shard: &Arc<Shard>, zone_id: i32) -> Result<(i64, i64)> {
    let row = sqlx::query_file!("sql/move_counts.sql", zone_id)
        .fetch_one(&shard.pool()?)
        .await
        .map_err(|e| shard.db_error(e))?;
    Ok((row.chests, row.claims))
}
