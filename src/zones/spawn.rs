//! Spawning chests: one bulk insert on the zone's shard, creating the zone (and its first
//! committed seed) if it is new, fenced like claims while the zone moves.

use super::{SpawnResult, MAX_SPAWN, MAX_ZONE_CHESTS};
use crate::audit::Audit;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fairness;
use crate::names::validate_zone_name;

impl Engine {
    /// Adds `count` chests of the latest version of `loot_table` to a zone, creating the zone
    /// (and its first committed seed) if it is new. One bulk insert on the zone's shard.
    pub async fn spawn(
        &self,
        zone: &str,
        count: i64,
        loot_table: &str,
        synthetic: bool,
        audit: &Audit,
    ) -> Result<SpawnResult> {
        validate_zone_name(zone)?;
        if !(1..=MAX_SPAWN).contains(&count) {
            return Err(Error::invalid(
                "invalid_count",
                format!("count must be 1 to {MAX_SPAWN}"),
            ));
        }
        let table = self.latest_loot_table(loot_table).await?;
        // Spawns are rare: ask the catalog afresh, so a zone that moved is found where it is.
        let shard = match self.shards.zone_shard_fresh(zone).await {
            Err(Error::ZoneNotFound(_)) => self.shards.place_zone(zone).await?,
            other => other?,
        };
        let pool = shard.pool()?;
        // A new zone's first seed: only its commitment and its sealed form are stored.
        let seed = fairness::new_server_seed()?;
        let commitment = fairness::commitment(&seed);
        let sealed = self.seeds.seal(&seed, &commitment)?;
        let placement = self.shards.placement();
        let result: Result<Grown, Error> = async {
            let mut tx = pool.begin().await?;
            let entries = serde_json::to_value(&table.spec.entries)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let inserted = sqlx::query_file_scalar!(
                "sql/loot_table_insert.sql",
                table.name,
                table.version,
                entries,
                i16::from(table.spec.rolls)
            )
            .fetch_optional(&mut *tx)
            .await?;
            let table_id = match inserted {
                Some(id) => id,
                // A concurrent spawn copied the same version first; a new statement sees it.
                None => {
                    sqlx::query_file_scalar!("sql/loot_table_id.sql", table.name, table.version)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            let created = sqlx::query_file_scalar!("sql/zone_create.sql", zone, synthetic)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(zone_id) = created {
                sqlx::query_file!("sql/zone_init.sql", zone_id, &sealed, &commitment[..])
                    .execute(&mut *tx)
                    .await?;
            }
            let grown = sqlx::query_file!("sql/zone_grow.sql", zone, count)
                .fetch_one(&mut *tx)
                .await?;
            if grown.state != "live" {
                return Ok(Grown::Moving);
            }
            if grown.chest_count > MAX_ZONE_CHESTS {
                return Ok(Grown::TooBig);
            }
            sqlx::query_file!(
                "sql/chests_spawn.sql",
                grown.id,
                grown.chest_count - count + 1,
                grown.chest_count,
                table_id
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query_file!(
                "sql/spawn_record.sql",
                grown.id,
                grown.chest_count - count + 1,
                count
            )
            .execute(&mut *tx)
            .await?;
            // A zone created here must still be placed here: a move may have switched it
            // away (and dropped its old row) since the placement was read.
            if created.is_some() && placement.zone_fresh(zone).await? != Some(shard.index) {
                return Ok(Grown::Moving);
            }
            let detail = serde_json::json!({
                "count": count,
                "first_chest": grown.chest_count - count + 1,
                "loot_table_version": table.version,
                "created_zone": created.is_some(),
                "synthetic": synthetic,
            });
            audit.record(&mut tx, "ok", detail).await?;
            tx.commit().await?;
            Ok(Grown::Done)
        }
        .await
        .map_err(|e| match e {
            Error::Database(e) => shard.db_error(e),
            other => other,
        });
        match result? {
            Grown::Done => {}
            Grown::Moving => return Err(Error::zone_moving(zone)),
            Grown::TooBig => {
                return Err(Error::invalid(
                    "invalid_count",
                    format!("a zone holds at most {MAX_ZONE_CHESTS} chests"),
                ))
            }
        }
        // Claims on this instance see the new table at once; other instances find out on
        // their first claim of such a chest (status retry) and reload.
        self.zones.forget(zone);
        let view = self.zone_counts(zone).await?;
        Ok(SpawnResult {
            zone: zone.to_owned(),
            spawned: count,
            remaining: view.1 - view.2,
        })
    }
}

/// How a spawn's transaction ended (it rolls back unless `Done`).
enum Grown {
    Done,
    /// The zone is moving (or moved away meanwhile): nothing was spawned.
    Moving,
    TooBig,
}
