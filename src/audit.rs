//! The audit log of admin power: who spawned, revealed, published a loot table version,
//! deleted probe zones or verified a zone, when, with which request, and what came of it.
//! A change writes its row in its own transaction (so `ok` means it committed); a refused
//! or failed call writes one afterwards with the error code the caller got. Rows live on the
//! shard the action touched (the catalog shard when it touched none in particular) and are
//! gathered from every shard when read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::{Caller, Role};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// One admin call, as the audit log will name it.
#[derive(Debug, Clone)]
pub struct Audit {
    pub actor: String,
    pub role: Role,
    pub action: &'static str,
    pub zone: Option<String>,
    pub target: Option<String>,
    pub request_id: Option<String>,
}

impl Audit {
    pub fn new(caller: &Caller, action: &'static str, request_id: Option<&str>) -> Self {
        Audit {
            actor: caller.player.clone(),
            role: caller.role,
            action,
            zone: None,
            target: None,
            request_id: request_id.map(str::to_owned),
        }
    }

    /// A change Trove makes itself, not for a token (the local stack's demo world, benches).
    pub fn system(actor: &str, action: &'static str) -> Self {
        Audit {
            actor: actor.to_owned(),
            role: Role::Admin,
            action,
            zone: None,
            target: None,
            request_id: None,
        }
    }

    /// The zone the call names (a refused call's may be any string: kept to 64 characters).
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.chars().take(64).collect());
        self
    }

    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.chars().take(64).collect());
        self
    }

    /// Writes the row on `conn` (inside the change's transaction for an `ok`).
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let role = match self.role {
            Role::Admin => "admin",
            Role::Player => "player",
        };
        sqlx::query_file!(
            "sql/audit_insert.sql",
            Uuid::now_v7(),
            self.actor,
            role,
            self.action,
            self.zone,
            self.target,
            self.request_id,
            outcome,
            detail
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub audit_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The caller's role (`player` for a refused attempt with a player token).
    pub role: String,
    pub action: String,
    pub zone: Option<String>,
    pub target: Option<String>,
    pub request_id: Option<String>,
    /// `ok`, or the error code the caller got.
    pub outcome: String,
    /// What the change did (counts, versions, epochs) or why it was refused.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// Where a page of the audit log resumes: the last entry's time and id.
pub fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{id}", at.timestamp_micros())
}

pub fn decode_cursor(s: &str) -> Result<(DateTime<Utc>, Uuid)> {
    let bad = || Error::invalid("invalid_cursor", "after is not a cursor this listing gave");
    let (micros, id) = s.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

impl Engine {
    /// Records a call that did not change anything (refused, or failed before its change
    /// committed) with the code the caller got.
    pub async fn audit_refusal(&self, audit: &Audit, code: &str, message: &str) {
        let detail = serde_json::json!({ "message": message });
        if let Err(e) = self.audit_record(audit, code, detail).await {
            tracing::error!(action = audit.action, actor = %audit.actor, error = %e,
                "could not write the audit row of a refused admin call");
        }
    }

    /// Writes a row outside any change (a refusal, or an action that reads: a verification),
    /// on the zone's shard if it has one, else the catalog shard.
    pub async fn audit_record(
        &self,
        audit: &Audit,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let shard = match &audit.zone {
            Some(zone) => self.shards.zone_shard(zone).await.ok(),
            None => None,
        };
        let shard = shard.unwrap_or(&self.shards.all()[0]);
        let mut conn = shard.acquire().await?;
        audit
            .record(&mut conn, outcome, detail)
            .await
            .map_err(|e| shard.db_error(e))
    }

    /// The audit log from `since`, oldest first, after `after`, at most `limit` entries,
    /// gathered from every shard (a down shard fails the read rather than hiding its rows).
    pub async fn audit_log(
        &self,
        zone: Option<&str>,
        since: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<AuditPage> {
        let (at, id) = after.unwrap_or((DateTime::UNIX_EPOCH, Uuid::nil()));
        let mut tasks = tokio::task::JoinSet::new();
        for shard in self.shards.all() {
            let (shard, zone) = (shard.clone(), zone.map(str::to_owned));
            tasks.spawn(async move {
                let mut conn = shard.acquire().await?;
                let rows = match zone {
                    Some(z) => {
                        sqlx::query_file_as!(
                            AuditEntry,
                            "sql/audit_page_zone.sql",
                            z,
                            since,
                            at,
                            id,
                            limit
                        )
                        .fetch_all(&mut *conn)
                        .await
                    }
                    None => {
                        sqlx::query_file_as!(AuditEntry, "sql/audit_page.sql", since, at, id, limit)
                            .fetch_all(&mut *conn)
                            .await
                    }
                };
                rows.map_err(|e| shard.db_error(e))
            });
        }
        let mut entries = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            entries.extend(joined.map_err(|e| Error::Internal(format!("audit read: {e}")))??);
        }
        entries.sort_by_key(|e| (e.at, e.audit_id));
        entries.truncate(limit as usize);
        let next = (entries.len() as i64 == limit)
            .then(|| entries.last().map(|e| encode_cursor(e.at, e.audit_id)))
            .flatten();
        Ok(AuditPage { entries, next })
    }
}

/// `trove audit`: the whole log (or one zone's, or since a time) as lines, oldest first.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this zone's entries.
    #[arg(long)]
    pub zone: Option<String>,
    /// Entries from this time on (RFC 3339).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

impl AuditArgs {
    pub async fn run(&self, engine: &Engine) -> Result<String> {
        if let Some(z) = &self.zone {
            crate::names::validate_zone_name(z)?;
        }
        let since = self.since.unwrap_or(DateTime::UNIX_EPOCH);
        let mut out = String::new();
        let mut after = None;
        loop {
            let page = engine
                .audit_log(self.zone.as_deref(), since, after, 1000)
                .await?;
            for e in &page.entries {
                out.push_str(&self.line(e));
                out.push('\n');
            }
            match page.next.as_deref() {
                Some(n) => after = Some(decode_cursor(n)?),
                None => return Ok(out),
            }
        }
    }

    fn line(&self, e: &AuditEntry) -> String {
        if self.json {
            return serde_json::to_string(e).unwrap_or_default();
        }
        let what = [e.zone.as_deref(), e.target.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{} {} ({}) {} {what}: {} request {} {}",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            e.actor,
            e.role,
            e.action,
            e.outcome,
            e.request_id.as_deref().unwrap_or("-"),
            e.detail
        )
    }
}
