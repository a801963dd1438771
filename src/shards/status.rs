//! Migrations and the health of every shard: `trove migrate`, `trove shards` and `/readyz`.

use std::time::Duration;

use sqlx::migrate::Migrator;

use super::{host_lines, HostRole, ShardSet};
use crate::error::{Error, Result};

/// The schema every shard carries; also runnable with plain `sqlx migrate run`.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// One shard's part of `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ShardReadiness {
    pub shard: usize,
    /// `up`, `down` or `not_migrated` (reachable but behind this binary's migrations).
    pub status: &'static str,
    pub migration_version: Option<i64>,
    pub expected_version: i64,
    pub error: Option<String>,
    /// A replicated shard's hosts: each one's role and lag (empty for a plain shard).
    pub hosts: Vec<HostRole>,
}

/// The newest migration this binary carries.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What `trove migrate`, `trove shards` and `GET /v1/shards` report per shard.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ShardStatus {
    pub shard: usize,
    pub url: String,
    pub reachable: bool,
    pub migration_version: Option<i64>,
    pub zones: Option<i64>,
    pub unopened_chests: Option<i64>,
    pub ledger_rows: Option<i64>,
    /// The identity its database records (none before it is registered).
    pub shard_id: Option<uuid::Uuid>,
    pub error: Option<String>,
    /// A replicated shard's hosts: each one's role and lag (empty for a plain shard).
    pub hosts: Vec<HostRole>,
}

impl ShardSet {
    /// Applies `migrations/` to every shard, in order (stops at the first failure), then
    /// checks they are the registered shards, registering a new deployment.
    pub async fn migrate(&self) -> Result<Vec<ShardStatus>> {
        for shard in self.all() {
            shard.locate_primary().await;
            let pool = shard.current_pool();
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| Error::Internal(format!("migrating shard {}: {e}", shard.index)))?;
        }
        self.register().await?;
        Ok(self.status().await)
    }

    /// Whether each shard answers (within `bound`) and carries every migration this binary
    /// knows. Shards are asked at once; a shard already known to be down is not asked.
    pub async fn readiness(&self, bound: Duration) -> Vec<ShardReadiness> {
        let expected = latest_migration();
        let checks = self.all().iter().map(|shard| async move {
            let version = if shard.is_up() {
                let ask = async {
                    let mut conn = shard.acquire().await?;
                    sqlx::query_file!("sql/shard_version.sql")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(|e| shard.db_error(e))
                };
                match tokio::time::timeout(bound, ask).await {
                    Ok(Ok(row)) => Ok(row.version.unwrap_or(0)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {bound:?}")),
                }
            } else {
                Err("shard is down".to_owned())
            };
            let (status, migration_version, error) = match version {
                Ok(v) if v >= expected => ("up", Some(v), None),
                Ok(v) => (
                    "not_migrated",
                    Some(v),
                    Some("run `trove migrate`".to_owned()),
                ),
                Err(e) => ("down", None, Some(e)),
            };
            ShardReadiness {
                shard: shard.index,
                status,
                migration_version,
                expected_version: expected,
                error,
                hosts: shard.host_roles().await,
            }
        });
        futures_util::future::join_all(checks).await
    }

    /// Reachability, migration version, identity and contents of every shard.
    pub async fn status(&self) -> Vec<ShardStatus> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.all() {
            // `trove shards` starts cold: a group's first host may be a standby.
            shard.locate_primary().await;
            let pool = shard.current_pool();
            let row = sqlx::query_file!("sql/shard_status.sql")
                .fetch_one(&pool)
                .await;
            let identity = match &row {
                Ok(_) => shard.identity().await.ok().flatten(),
                Err(_) => None,
            };
            out.push(match row {
                Ok(row) => ShardStatus {
                    shard: shard.index,
                    url: shard.display_url.clone(),
                    reachable: true,
                    migration_version: row.version,
                    zones: Some(row.zones),
                    unopened_chests: Some(row.chests - row.opened),
                    ledger_rows: Some(row.opened),
                    shard_id: identity.map(|i| i.shard_id),
                    error: None,
                    hosts: shard.host_roles().await,
                },
                Err(e) => ShardStatus {
                    shard: shard.index,
                    url: shard.display_url.clone(),
                    reachable: shard.ping().await,
                    migration_version: None,
                    zones: None,
                    unopened_chests: None,
                    ledger_rows: None,
                    shard_id: None,
                    error: Some(e.to_string()),
                    hosts: shard.host_roles().await,
                },
            });
        }
        out
    }
}

/// A zone move the catalog records as in progress.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct MoveInProgress {
    pub zone: String,
    pub from: i32,
    pub to: i32,
    pub phase: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl ShardSet {
    /// The zone moves in progress (a crashed one waits for its command to run again).
    pub async fn moves_in_progress(&self) -> Result<Vec<MoveInProgress>> {
        let pool = self.all()[0].current_pool();
        let rows = sqlx::query_file!("sql/catalog_moves.sql")
            .fetch_all(&pool)
            .await
            .map_err(Error::Database)?;
        Ok(rows
            .into_iter()
            .map(|r| MoveInProgress {
                zone: r.name,
                from: r.from_shard,
                to: r.to_shard,
                phase: r.phase,
                updated_at: r.updated_at,
            })
            .collect())
    }
}

/// `trove shards`: one line per shard, and how many are not ready (down or not migrated).
pub fn report(statuses: &[ShardStatus]) -> (Vec<String>, usize) {
    let mut down = 0;
    let lines = statuses
        .iter()
        .flat_map(|s| {
            let shard = shard_line(s, &mut down);
            std::iter::once(shard).chain(host_lines(&s.hosts))
        })
        .collect();
    (lines, down)
}

fn shard_line(s: &ShardStatus, down: &mut usize) -> String {
    match (s.reachable, s.migration_version, s.zones) {
        (true, Some(v), Some(z)) => {
            let id = s
                .shard_id
                .map_or("not registered".into(), |id| format!("id {id}"));
            format!(
                    "shard {} {}: up, migration {v}, {z} zones, {} unopened chests, {} ledger rows, {id}",
                    s.shard,
                    s.url,
                    s.unopened_chests.unwrap_or(0),
                    s.ledger_rows.unwrap_or(0)
                )
        }
        (reachable, _, _) => {
            *down += 1;
            let state = if reachable {
                "up, not migrated"
            } else {
                "DOWN"
            };
            let why = s.error.as_deref().unwrap_or_default();
            format!("shard {} {}: {state} ({why})", s.shard, s.url)
        }
    }
}
