//! Epoch transcripts: after a reveal, every claim of that epoch in canonical form, with a
//! signed digest, so a player can check that all their receipts are in it (and nothing in
//! their name is that they did not make) and anyone can replay the whole epoch.
//!
//! The transcript is NDJSON: a header line (zone, epoch, draw version, the seed and its
//! commitment), one line per claim (a claim's fields as its answer has them, plus its receipt
//! leaf) by player and nonce, and a trailer with the claim count, the digest
//! (`receipts::TranscriptDigest`) and the server's signature over it.

use futures_util::TryStreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use crate::claims::Claim;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::names::validate_zone_name;
use crate::receipts::{leaf_hash, receipt_bytes, TranscriptDigest};

/// Lines buffered ahead of a slow reader (then the database read waits for it).
const BUFFER: usize = 256;

impl Engine {
    /// The transcript of a revealed epoch, line by line as it is read from the ledger. A read
    /// that fails midway ends the stream with the error (the trailer never comes, so a reader
    /// cannot take a cut-off transcript for a whole one).
    pub async fn transcript(
        &self,
        zone: &str,
        epoch: i32,
    ) -> Result<mpsc::Receiver<Result<String>>> {
        validate_zone_name(zone)?;
        // Not the zone's draw material: a revealed epoch's transcript needs no sealed seed.
        let (shard, zone_id) = self.zone_location(zone).await?;
        let pool = shard.pool()?;
        let row = sqlx::query_file!("sql/transcript_epoch.sql", zone_id, epoch)
            .fetch_optional(&pool)
            .await
            .map_err(|e| shard.db_error(e))?
            .ok_or_else(|| Error::EpochNotFound {
                zone: zone.to_owned(),
                epoch,
            })?;
        let Some(seed) = row.seed else {
            return Err(Error::EpochNotRevealed {
                zone: zone.to_owned(),
                epoch,
            });
        };
        let header = json!({
            "transcript": "trove/transcript/v1",
            "zone": zone,
            "epoch": epoch,
            "draw_version": row.draw_version,
            "seed": hex::encode(seed),
            "seed_commitment": hex::encode(row.commitment),
            "revealed_at": row.revealed_at,
        });
        let (tx, rx) = mpsc::channel(BUFFER);
        let (zone, keys) = (zone.to_owned(), std::sync::Arc::clone(&self.receipts));
        tokio::spawn(async move {
            if tx.send(Ok(header.to_string())).await.is_err() {
                return;
            }
            let mut digest = TranscriptDigest::new(&zone, epoch);
            let mut rows = sqlx::query_file_as!(Claim, "sql/transcript_claims.sql", zone_id, epoch)
                .fetch(&pool);
            loop {
                let line = match rows.try_next().await {
                    Ok(Some(claim)) => {
                        let leaf = leaf_hash(&receipt_bytes(&claim.receipt_fields()));
                        digest.push(&leaf);
                        serde_json::to_value(&claim).map(|mut v| {
                            v["leaf"] = hex::encode(leaf).into();
                            v.to_string()
                        })
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(shard.db_error(e))).await;
                        return;
                    }
                };
                let line = line.map_err(|e| Error::Internal(format!("transcript line: {e}")));
                if tx.send(line).await.is_err() {
                    return; // the reader went away
                }
            }
            let (digest, count) = digest.finish();
            let trailer = json!({
                "claims": count,
                "digest": hex::encode(digest),
                "key_id": keys.key_id(),
                "signature": keys.sign_transcript(&digest, count),
            });
            let _ = tx.send(Ok(trailer.to_string())).await;
        });
        Ok(rx)
    }
}

/// What a player's audit of an epoch found wrong (empty: nothing).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Audit {
    pub claims: usize,
    pub receipts_checked: usize,
    pub problems: Vec<String>,
}

/// A claim answer (or transcript line) as the fields its receipt vouches for.
pub fn fields_of(claim: &serde_json::Value) -> Option<crate::receipts::Fields<'_>> {
    let opened_at = chrono::DateTime::parse_from_rfc3339(claim["opened_at"].as_str()?).ok()?;
    Some(crate::receipts::Fields {
        zone: claim["zone"].as_str()?,
        seed_epoch: i32::try_from(claim["seed_epoch"].as_i64()?).ok()?,
        player: claim["player"].as_str()?,
        nonce: claim["nonce"].as_i64(),
        client_seed: claim["client_seed"].as_str(),
        claim_id: uuid::Uuid::parse_str(claim["claim_id"].as_str()?).ok()?,
        chest_id: claim["chest_id"].as_i64()?,
        loot_table: claim["loot_table"].as_str()?,
        loot_table_version: i32::try_from(claim["loot_table_version"].as_i64()?).ok()?,
        loot: &claim["loot"],
        opened_at_micros: opened_at.timestamp_micros(),
        authorised_by: claim["authorised_by"].as_str(),
    })
}

/// A receipt as a claim answer carries it.
pub fn receipt_of(answer: &serde_json::Value) -> Option<crate::receipts::Receipt> {
    let r = &answer["receipt"];
    let text = |k: &str| r[k].as_str().map(str::to_owned);
    Some(crate::receipts::Receipt {
        leaf: text("leaf")?,
        leaf_index: usize::try_from(r["leaf_index"].as_u64()?).ok()?,
        leaf_count: usize::try_from(r["leaf_count"].as_u64()?).ok()?,
        path: r["path"]
            .as_array()?
            .iter()
            .map(|h| h.as_str().map(str::to_owned))
            .collect::<Option<_>>()?,
        root: text("root")?,
        key_id: text("key_id")?,
        signature: text("signature")?,
    })
}

/// A player's check of an epoch's transcript against the claim answers they kept: the
/// transcript is whole and signed (every line's leaf, the digest, the count, the signature),
/// each player's nonces in it are gapless, every one of `answers` (this zone and epoch) is
/// signed and in the transcript, and every entry in `player`'s name is backed by one of
/// `answers` or was authorised by an admin. `keys`: the public keys by key id.
pub fn audit(
    transcript: &str,
    answers: &[serde_json::Value],
    player: &str,
    keys: &std::collections::HashMap<String, ed25519_dalek::VerifyingKey>,
) -> Audit {
    use std::collections::{HashMap, HashSet};
    let mut audit = Audit::default();
    let mut problem = |p: String| audit.problems.push(p);
    let lines: Vec<serde_json::Value> = transcript
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or(serde_json::Value::Null))
        .collect();
    let (Some(header), Some(trailer)) = (lines.first(), lines.last()) else {
        problem("the transcript is empty".into());
        return audit;
    };
    let (Some(zone), Some(epoch)) = (header["zone"].as_str(), header["epoch"].as_i64()) else {
        problem("the transcript has no header".into());
        return audit;
    };
    let epoch = i32::try_from(epoch).unwrap_or(-1);
    let mut digest = TranscriptDigest::new(zone, epoch);
    let mut in_transcript = HashSet::new();
    let mut mine = Vec::new();
    let mut next: HashMap<&str, i64> = HashMap::new();
    for line in &lines[1..lines.len() - 1] {
        let Some(f) = fields_of(line) else {
            problem(format!("an unreadable transcript line: {line}"));
            continue;
        };
        let leaf = leaf_hash(&receipt_bytes(&f));
        if line["leaf"].as_str() != Some(&hex::encode(leaf)) {
            problem(format!("claim {} does not hash to its leaf", f.claim_id));
        }
        if f.zone != zone || f.seed_epoch != epoch {
            problem(format!("claim {} is of another zone or epoch", f.claim_id));
        }
        if let Some(n) = f.nonce {
            let want = next.entry(f.player).or_insert(0);
            if n != *want {
                problem(format!("{}'s nonce {n} where {want} was due", f.player));
            }
            *want = n + 1;
        }
        digest.push(&leaf);
        in_transcript.insert(leaf);
        if f.player == player {
            mine.push((leaf, f.claim_id, f.authorised_by.unwrap_or("").to_owned()));
        }
        audit.claims += 1;
    }
    let (digest, count) = digest.finish();
    if trailer["claims"].as_u64() != Some(count as u64)
        || trailer["digest"].as_str() != Some(&hex::encode(digest))
    {
        problem("the trailer's count or digest is not the transcript's".into());
    }
    let key_id = trailer["key_id"].as_str().unwrap_or("");
    let signed = keys.get(key_id).is_some_and(|k| {
        let sig = trailer["signature"].as_str().unwrap_or("");
        crate::receipts::verify_transcript(key_id, &digest, count, sig, k)
    });
    if !signed {
        problem("the transcript's signature does not verify".into());
    }
    let mut backed = HashSet::new();
    for answer in answers {
        let (Some(f), Some(r)) = (fields_of(answer), receipt_of(answer)) else {
            problem(format!("an unreadable receipt: {answer}"));
            continue;
        };
        if f.zone != zone || f.seed_epoch != epoch {
            continue;
        }
        audit.receipts_checked += 1;
        let valid = keys
            .get(&r.key_id)
            .is_some_and(|k| crate::receipts::verify(&r, &f, k));
        if !valid {
            problem(format!(
                "the receipt of claim {} does not verify",
                f.claim_id
            ));
        }
        let leaf = leaf_hash(&receipt_bytes(&f));
        if !in_transcript.contains(&leaf) {
            let nonce = f.nonce.map_or("none".to_owned(), |n| n.to_string());
            problem(format!(
                "claim {} (nonce {nonce}) is missing from the transcript",
                f.claim_id
            ));
        }
        backed.insert(leaf);
    }
    for (leaf, claim_id, by) in mine {
        if !backed.contains(&leaf) && !by.starts_with("admin:") {
            problem(format!(
                "claim {claim_id} in {player}'s name has no receipt and no admin authorised it"
            ));
        }
    }
    audit
}
