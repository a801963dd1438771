//! Copying a zone's nonce rows (each player's next nonce and client seed). Unlike chests and
//! the ledger they change in place: the first pass copies them all, each batch of ledger rows
//! brings its players' rows (their counters moved on with those claims), and each later pass
//! the rows whose client seed was set since the previous pass began.

use std::sync::Arc;

use super::copy::Copy;
use super::Mover;
use crate::error::Result;
use crate::shards::Shard;

impl Mover<'_> {
    /// Every nonce row of the zone (the first pass), in pages by player.
    pub(super) async fn copy_all_nonces(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &Copy,
    ) -> Result<()> {
        let mut after = String::new();
        loop {
            let page = sqlx::query_file!(
                "sql/move_nonces_page.sql",
                copy.source_id,
                after,
                self.opts.batch
            )
            .fetch_all(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.player.clone();
            let mut rows = NonceColumns::default();
            for n in page {
                rows.push(n.player, n.seed_epoch, n.next_nonce, n.client_seed);
            }
            self.write_nonces(target, copy, rows).await?;
        }
    }

    /// The nonce rows whose client seed a transaction at or after `xid` set.
    pub(super) async fn copy_nonces_set_since(
        &mut self,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        copy: &Copy,
        xid: i64,
    ) -> Result<()> {
        let (mut at, mut after) = (xid, String::new());
        loop {
            let page = sqlx::query_file!(
                "sql/move_nonces_set_since.sql",
                copy.source_id,
                at,
                after,
                self.opts.batch
            )
            .fetch_all(&source.pool()?)
            .await
            .map_err(|e| source.db_error(e))?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            (at, after) = (last.seed_set_xid, last.player.clone());
            let mut rows = NonceColumns::default();
            for n in page {
                rows.push(n.player, n.seed_epoch, n.next_nonce, n.client_seed);
            }
            self.write_nonces(target, copy, rows).await?;
        }
    }

    async fn write_nonces(
        &mut self,
        target: &Arc<Shard>,
        copy: &Copy,
        rows: NonceColumns,
    ) -> Result<()> {
        sqlx::query_file!(
            "sql/move_nonces_write.sql",
            copy.target_id,
            &rows.players,
            &rows.epochs,
            &rows.next,
            &rows.client_seeds
        )
        .execute(&self.copy_pool(target.index)?)
        .await
        .map_err(|e| target.db_error(e))?;
        self.committed();
        self.throttle().await;
        Ok(())
    }
}

/// Players' nonce rows as a move copies them.
#[derive(Default)]
pub(super) struct NonceColumns {
    pub(super) players: Vec<String>,
    pub(super) epochs: Vec<i32>,
    pub(super) next: Vec<i64>,
    pub(super) client_seeds: Vec<String>,
}

impl NonceColumns {
    pub(super) fn push(&mut self, player: String, epoch: i32, next: i64, client_seed: String) {
        self.players.push(player);
        self.epochs.push(epoch);
        self.next.push(next);
        self.client_seeds.push(client_seed);
    }
}
