//! `trove verify ZONE`: re-derive every claim's draw of a zone from the ledger and the zone's
//! seeds, and report every claim whose recorded loot differs from what its seed gives, every
//! break in a player's nonces (a gap, a repeat, or nonces out of the order the claims were
//! made in), and every seed that does not match its published commitment.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;
use crate::fairness::{commitment, Draw, Nonce};
use crate::loot::LootTable;
use crate::names::validate_zone_name;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub claim_id: uuid::Uuid,
    pub chest_id: i64,
    pub player: String,
    pub seed_epoch: i32,
    pub recorded: serde_json::Value,
    pub expected: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub zone: String,
    /// Nothing found wrong: no mismatch, no nonce problem, no bad commitment.
    pub clean: bool,
    pub claims_checked: u64,
    /// Claims whose epoch seed is public, so anyone can replay them too.
    pub claims_with_revealed_seed: u64,
    /// Every mismatching claim is counted; the first 1,000 are listed.
    pub mismatch_count: u64,
    pub mismatches: Vec<Mismatch>,
    /// Every break in a player's nonces is counted; the first 1,000 are listed.
    pub nonce_problem_count: u64,
    pub nonce_problems: Vec<NonceProblem>,
    /// Epochs whose seed is not the preimage of their commitment.
    pub bad_commitments: Vec<i32>,
}

impl VerifyReport {
    /// Nothing found wrong.
    pub fn clean(&self) -> bool {
        self.mismatch_count == 0 && self.nonce_problem_count == 0 && self.bad_commitments.is_empty()
    }
}

/// A break in one player's nonces within an epoch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NonceProblem {
    pub player: String,
    pub seed_epoch: i32,
    pub claim_id: uuid::Uuid,
    /// The nonce this claim should have had (the one after the player's previous claim).
    pub expected: i64,
    /// What it has (null: none, in a version-2 epoch).
    pub found: Option<i64>,
    /// `gap`, `repeat`, `missing` or `out_of_order` (made before the claim with the nonce
    /// below it).
    pub kind: &'static str,
}

/// At most this many mismatches are listed (all are counted in `claims_checked`).
const MAX_LISTED: usize = 1000;

impl Engine {
    /// Streams the zone's ledger (never loading it whole) and replays each draw.
    pub async fn verify(&self, zone: &str) -> Result<VerifyReport> {
        validate_zone_name(zone)?;
        let (shard, zone_id) = self.zone_location(zone).await?;
        let pool = shard.pool()?;
        // Loot table versions by id, loaded as the ledger names them.
        let mut tables: HashMap<i32, Arc<LootTable>> = HashMap::new();
        let mut report = VerifyReport {
            zone: zone.to_owned(),
            clean: false,
            claims_checked: 0,
            claims_with_revealed_seed: 0,
            mismatch_count: 0,
            mismatches: Vec::new(),
            nonce_problem_count: 0,
            nonce_problems: Vec::new(),
            bad_commitments: Vec::new(),
        };
        let epochs = sqlx::query_file!("sql/verify_commitments.sql", zone_id)
            .fetch_all(&pool)
            .await
            .map_err(|e| shard.db_error(e))?;
        // Each epoch's seed, opened once (a sealed one that does not open under its
        // commitment is as bad as a clear one that does not hash to it).
        let mut seeds: HashMap<i32, Vec<u8>> = HashMap::new();
        for e in epochs {
            match self.open_seed(e.seed, e.sealed.as_deref(), &e.commitment) {
                Ok(seed) if commitment(&seed)[..] == e.commitment[..] => {
                    seeds.insert(e.epoch, seed);
                }
                _ => report.bad_commitments.push(e.epoch),
            }
        }
        // The previous claim of the same (epoch, player), in nonce order.
        let mut previous: Option<(i32, String, i64, DateTime<Utc>)> = None;
        let mut rows = sqlx::query_file!("sql/verify_claims.sql", zone_id).fetch(&pool);
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
            let expected = match (nonce, seeds.get(&row.seed_epoch)) {
                (Some(n), Some(seed)) => {
                    serde_json::json!(Draw::new(seed, zone, &row.player, n).loot(&table))
                }
                (None, _) => serde_json::json!({"error": "a version-2 draw without its nonce"}),
                (_, None) => serde_json::json!({"error": "its epoch's seed does not open"}),
            };
            report.claims_checked += 1;
            if row.draw_version != 1 {
                let same = previous
                    .as_ref()
                    .filter(|(e, p, _, _)| *e == row.seed_epoch && *p == row.player);
                let expected = same.map_or(0, |(_, _, n, _)| n + 1);
                let kind = match row.nonce {
                    None => Some("missing"),
                    Some(n) if n > expected => Some("gap"),
                    Some(n) if n < expected => Some("repeat"),
                    // Nonce order is the order the claims were made in (each waits for the
                    // one before it to commit).
                    Some(_) if same.is_some_and(|(_, _, _, at)| row.opened_at < *at) => {
                        Some("out_of_order")
                    }
                    Some(_) => None,
                };
                if let Some(kind) = kind {
                    report.nonce_problem_count += 1;
                    if report.nonce_problems.len() < MAX_LISTED {
                        report.nonce_problems.push(NonceProblem {
                            player: row.player.clone(),
                            seed_epoch: row.seed_epoch,
                            claim_id: row.claim_id,
                            expected,
                            found: row.nonce,
                            kind,
                        });
                    }
                }
                if let Some(n) = row.nonce {
                    // A repeat does not move the count back.
                    let n = n.max(expected - 1);
                    previous = Some((row.seed_epoch, row.player.clone(), n, row.opened_at));
                }
            }
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
        report.clean = report.clean();
        Ok(report)
    }
}
