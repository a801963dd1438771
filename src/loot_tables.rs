//! Storing and reading loot table versions. A table lives on its home shard, which numbers
//! its versions; every version is kept (immutable), so any claim's draw can be replayed with
//! the version its chest was spawned with. Spawns copy the version they use to the zone's
//! shard, so a claim never reads another shard.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::Audit;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::loot::{LootTable, LootTableSpec};
use crate::names::validate_table_name;

impl Engine {
    /// Stores `spec` as the next version of `name` on the table's home shard and returns that
    /// version. Putting the same content as the latest version returns it unchanged, so the
    /// PUT is idempotent. Chests keep the version they were spawned with.
    pub async fn put_loot_table(
        &self,
        name: &str,
        spec: &LootTableSpec,
        audit: &Audit,
    ) -> Result<i32> {
        validate_table_name(name)?;
        spec.validate()?;
        let shard = self.shards.loot_table_home(name, true).await?;
        let shard =
            shard.ok_or_else(|| Error::Internal(format!("loot table {name} got no home")))?;
        let pool = shard.pool()?;
        let entries =
            serde_json::to_value(&spec.entries).map_err(|e| Error::Internal(e.to_string()))?;
        let stored: Result<i32, sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            sqlx::query_file!("sql/loot_table_lock.sql", name)
                .execute(&mut *tx)
                .await?;
            let latest = sqlx::query_file!("sql/loot_table_latest.sql", name)
                .fetch_optional(&mut *tx)
                .await?;
            let (version, new) = match latest {
                Some(l) if l.entries == entries && l.rolls == i16::from(spec.rolls) => {
                    (l.version, false)
                }
                latest => {
                    let version = latest.map_or(1, |l| l.version + 1);
                    sqlx::query_file_scalar!(
                        "sql/loot_table_insert.sql",
                        name,
                        version,
                        entries,
                        i16::from(spec.rolls)
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    (version, true)
                }
            };
            let detail = serde_json::json!({"version": version, "new_version": new});
            audit.record(&mut tx, "ok", detail).await?;
            tx.commit().await?;
            Ok(version)
        }
        .await;
        stored.map_err(|e| shard.db_error(e))
    }

    /// The newest version of a loot table, read from its home shard.
    pub async fn latest_loot_table(&self, name: &str) -> Result<LootTable> {
        self.loot_table(name, None).await
    }

    /// One version of a loot table (the newest when `version` is None), from its home shard,
    /// which keeps every version: replaying an old claim needs the one its chest kept.
    pub async fn loot_table(&self, name: &str, version: Option<i32>) -> Result<LootTable> {
        validate_table_name(name)?;
        let not_found = || match version {
            Some(v) => Error::LootTableNotFound(format!("{name} version {v}")),
            None => Error::LootTableNotFound(name.to_owned()),
        };
        let shard = self
            .shards
            .loot_table_home(name, false)
            .await?
            .ok_or_else(not_found)?;
        let row = sqlx::query_file!("sql/loot_table_version.sql", name, version)
            .fetch_optional(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))?
            .ok_or_else(not_found)?;
        LootTable::stored(row.id, row.name, row.version, row.entries, row.rolls)
    }

    /// Loot tables named after `after`, in name order, at most `limit`, each with its newest
    /// version (every shard asked: a table's home is whichever shard the hash gave it).
    pub async fn list_loot_tables(&self, after: &str, limit: i64) -> Result<TableList> {
        let mut tasks = tokio::task::JoinSet::new();
        for shard in self.shards.all() {
            let (shard, after) = (shard.clone(), after.to_owned());
            tasks.spawn(async move {
                sqlx::query_file!("sql/loot_tables_list.sql", after, limit)
                    .fetch_all(&mut *shard.acquire().await?)
                    .await
                    .map_err(|e| shard.db_error(e))
            });
        }
        let mut newest: std::collections::BTreeMap<String, TableSummary> = Default::default();
        while let Some(joined) = tasks.join_next().await {
            let rows = joined.map_err(|e| Error::Internal(format!("table listing: {e}")))??;
            for r in rows {
                let entry = newest.entry(r.name.clone()).or_insert(TableSummary {
                    name: r.name,
                    latest_version: r.version,
                    created_at: r.created_at,
                });
                if r.version > entry.latest_version {
                    (entry.latest_version, entry.created_at) = (r.version, r.created_at);
                }
            }
        }
        let loot_tables: Vec<TableSummary> = newest.into_values().take(limit as usize).collect();
        let next = (loot_tables.len() as i64 == limit)
            .then(|| loot_tables.last().map(|t| t.name.clone()))
            .flatten();
        Ok(TableList { loot_tables, next })
    }
}

/// One loot table in the listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableSummary {
    pub name: String,
    pub latest_version: i32,
    /// When its newest version was stored.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableList {
    pub loot_tables: Vec<TableSummary>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}
