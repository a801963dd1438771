//! Copying a zone's client-seed rows. Unlike chests and the ledger they change in place: the
//! first pass copies them all, each later pass the rows whose client seed was set since the
//! previous pass began. (Nonces are the ledger's and move with its rows: migrations/0009.)

use std::sync::Arc;

use super::copy::Copy;
use super::Mover;
use crate::error::Result;
use crate::shards::Shard;

impl Mover<'_> {
    /// Every client-seed row of the zone (the first pass), in pages by player.
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
            let rows = page.into_iter().map(|n| (n.player, n.client_seed)).unzip();
            self.write_nonces(target, copy, rows).await?;
        }
    }

    /// The rows whose client seed a transaction at or after `xid` set.
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
            let rows = page.into_iter().map(|n| (n.player, n.client_seed)).unzip();
            self.write_nonces(target, copy, rows).await?;
        }
    }

    async fn write_nonces(
        &mut self,
        target: &Arc<Shard>,
        copy: &Copy,
        (players, client_seeds): (Vec<String>, Vec<String>),
    ) -> Result<()> {
        sqlx::query_file!(
            "sql/move_nonces_write.sql",
            copy.target_id,
            &players,
            &client_seeds
        )
        .execute(&self.copy_pool(target.index)?)
        .await
        .map_err(|e| target.db_error(e))?;
        self.committed();
        self.throttle().await;
        Ok(())
    }
}
