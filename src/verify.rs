//! `trove verify ZONE`: re-derive every claim's draw of a zone from the ledger and the zone's
//! seeds, and report every claim whose recorded loot differs from what its seed gives.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;
use crate::fairness::{Draw, Nonce};
use crate::loot::LootTable;
use crate::names::validate_zone_name;

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub claim_id: uuid::Uuid,
    pub chest_id: i64,
    pub player: String,
    pub seed_epoch: i32,
    pub recorded: serde_json::Value,
    pub expected: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub zone: String,
    pub claims_checked: u64,
    /// Claims whose epoch seed is public, so anyone can replay them too.
    pub claims_with_revealed_seed: u64,
    /// Every mismatching claim is counted; the first 1,000 are listed.
    pub mismatch_count: u64,
    pub mismatches: Vec<Mismatch>,
}

/// At most this many mismatches are listed (all are counted in `claims_checked`).
const MAX_LISTED: usize = 1000;

impl Engine {
    /// Streams the zone's ledger (never loading it whole) and replays each draw.
    pub async fn verify(&self, zone: &str) -> Result<VerifyReport> {
        validate_zone_name(zone)?;
        let info = self.zone_info(zone, true).await?;
        let shard = &self.shards.all()[info.shard];
        let pool = shard.pool()?;
        let mut tables: HashMap<i32, Arc<LootTable>> =
            info.tables.iter().map(|t| (t.id, Arc::clone(t))).collect();
        let mut report = VerifyReport {
            zone: zone.to_owned(),
            claims_checked: 0,
            claims_with_revealed_seed: 0,
            mismatch_count: 0,
            mismatches: Vec::new(),
        };
        let mut rows = sqlx::query_file!("sql/verify_claims.sql", info.id).fetch(&pool);
        while let Some(row) = rows.try_next().await.map_err(|e| shard.db_error(e))? {
            let table = match tables.get(&row.loot_table_id) {
                Some(t) => Arc::clone(t),
                None => {
                    let t = sqlx::query_file!("sql/loot_table_by_id.sql", row.loot_table_id)
                        .fetch_one(&pool)
                        .await
                        .map_err(|e| shard.db_error(e))?;
                    let t = Arc::new(LootTable::stored(
                        t.id, t.name, t.version, t.entries, t.rolls,
                    )?);
                    tables.insert(t.id, Arc::clone(&t));
                    t
                }
            };
            // Version 2 draws with the recorded nonce and client seed (a version-2 claim
            // without them mismatches); version 1 drew with the claim id.
            let nonce = match (row.draw_version, row.nonce, row.client_seed.as_deref()) {
                (1, _, _) => Some(Nonce::ClaimId(row.claim_id)),
                (_, Some(nonce), Some(client_seed)) => Some(Nonce::Counter { client_seed, nonce }),
                _ => None,
            };
            let expected = match nonce {
                Some(n) => {
                    serde_json::json!(Draw::new(&row.seed, zone, &row.player, n).loot(&table))
                }
                None => serde_json::json!({"error": "a version-2 draw without its nonce"}),
            };
            report.claims_checked += 1;
            if row.revealed_at.is_some() {
                report.claims_with_revealed_seed += 1;
            }
            if expected == row.loot {
                continue;
            }
            report.mismatch_count += 1;
            if report.mismatches.len() < MAX_LISTED {
                report.mismatches.push(Mismatch {
                    claim_id: row.claim_id,
                    chest_id: row.chest_id,
                    player: row.player,
                    seed_epoch: row.seed_epoch,
                    recorded: row.loot,
                    expected,
                });
            }
        }
        Ok(report)
    }
}
