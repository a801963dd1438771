//! Keeping unrevealed seeds sealed: those stored in the clear before seeds were sealed, and
//! those sealed under a key that has since been rotated out.

use crate::engine::Engine;
use crate::error::{Error, Result};

impl Engine {
    /// Seals, on every shard, each unrevealed seed that is in the clear or sealed under an
    /// old key (`TROVE_SEED_OLD_KEYS`). Returns how many it sealed. Run at start-up and by
    /// `trove seal-seeds`; a shard that does not answer is left for the next run.
    pub async fn seal_seeds(&self) -> Result<u64> {
        let mut sealed = 0;
        for shard in self.shards.all() {
            let pool = shard.pool()?;
            let rows = sqlx::query_file!("sql/seeds_unrevealed.sql")
                .fetch_all(&pool)
                .await
                .map_err(|e| shard.db_error(e))?;
            for r in rows {
                if r.seed.is_none()
                    && r.sealed
                        .as_deref()
                        .is_some_and(|s| self.seeds.is_current(s))
                {
                    continue;
                }
                let seed = self.open_seed(r.seed, r.sealed.as_deref(), &r.commitment)?;
                if crate::fairness::commitment(&seed)[..] != r.commitment[..] {
                    return Err(Error::Internal(format!(
                        "the seed of epoch {} of zone id {} on shard {} does not match its commitment",
                        r.epoch, r.zone_id, shard.index
                    )));
                }
                let blob = self.seeds.seal(&seed, &r.commitment)?;
                sqlx::query_file!("sql/seed_seal.sql", r.zone_id, r.epoch, &blob)
                    .execute(&pool)
                    .await
                    .map_err(|e| shard.db_error(e))?;
                sealed += 1;
            }
        }
        Ok(sealed)
    }
}
