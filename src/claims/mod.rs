//! Claims: opening a chest (any or a given one) in one statement on the zone's shard, with
//! idempotent retries, and a player's history gathered from every shard. Concurrent claims on
//! a shard share statements (`batch`).

mod batch;
mod nonces;
mod prerolled;

pub(crate) use batch::Queues;
pub use batch::{Batching, ClaimStatus, SentTotals};
pub use nonces::{ClientSeed, Next, NonceCache, PlayerTurns};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fairness::{Draw, Nonce};
use crate::names::{validate_idempotency_key, validate_player_id, validate_zone_name};
use crate::receipts::{leaf_hash, receipt_bytes, Fields, Receipt};
use crate::zones::ZoneInfo;

/// One opened chest, exactly as recorded in the ledger (a replay returns the same bytes).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Claim {
    pub claim_id: Uuid,
    pub zone: String,
    pub chest_id: i64,
    pub player: String,
    /// `[{"item","qty","rarity"}]` as drawn.
    #[schema(value_type = Vec<crate::loot::LootItem>)]
    pub loot: serde_json::Value,
    #[serde(serialize_with = "rfc3339")]
    pub opened_at: DateTime<Utc>,
    /// The seed epoch the draw used; with the revealed seed anyone can replay it.
    pub seed_epoch: i32,
    /// The loot table version the chest was spawned with (`GET /v1/loot-tables/{name}?version=`),
    /// the last input anyone needs to replay the draw.
    pub loot_table: String,
    pub loot_table_version: i32,
    /// The draw's nonce: the player's claim counter in the epoch (0, 1, 2, ... gapless).
    /// Null in epochs committed before version-2 draws (their nonce was `claim_id`).
    pub nonce: Option<i64>,
    /// The client seed the draw used ("" when the player set none); null with `nonce`.
    pub client_seed: Option<String>,
    /// Who authorised the claim: `player` (the player's own token) or `admin:<subject>`.
    /// Null on claims from before it was recorded.
    pub authorised_by: Option<String>,
}

/// A time as chrono's `Serialize` writes it (RFC 3339, UTC as `Z`, the fewest of 0, 3, 6 or 9
/// fractional digits), formatted once rather than through a character-by-character writer.
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A claim with the server's signed receipt for it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub claim: Claim,
    pub receipt: Receipt,
}

/// The result of a claim request.
#[derive(Debug, Clone)]
pub struct ClaimOutcome {
    pub claim: Claim,
    /// True when an earlier request with the same idempotency key opened the chest.
    pub replayed: bool,
    /// Signed proof of what the server answered (a replay gets a new one for the same claim).
    pub receipt: Receipt,
}

impl Claim {
    /// What a receipt vouches for: every recorded field of the claim.
    pub fn receipt_fields(&self) -> Fields<'_> {
        Fields {
            zone: &self.zone,
            seed_epoch: self.seed_epoch,
            player: &self.player,
            nonce: self.nonce,
            client_seed: self.client_seed.as_deref(),
            claim_id: self.claim_id,
            chest_id: self.chest_id,
            loot_table: &self.loot_table,
            loot_table_version: self.loot_table_version,
            loot: &self.loot,
            opened_at_micros: self.opened_at.timestamp_micros(),
            authorised_by: self.authorised_by.as_deref(),
        }
    }
}

/// Attempts per claim when the cached zone view is stale (a reveal or a new loot table).
const ATTEMPTS: usize = 3;
/// How long a claim waits for a moving zone's fence to lift (checking every `MOVING_PAUSE`)
/// before it answers 503 `zone_moving`: a move fences a zone for well under a second.
const MOVING_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const MOVING_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
/// A bound that is never reached in practice: each statement settles the first of any
/// colliding claims (and a key's twin replays once its first claim committed).
const MAX_COLLISIONS: usize = 1000;
/// Redraws after the claim statement said the player's nonce or client seed moved on (each
/// answer carries the next values, so one is the rule; more only under a race with another
/// instance's claims of the same player).
const MAX_NONCE_REDRAWS: usize = 64;

impl Engine {
    /// Opens a chest for `player` in `zone`: any unopened one (`chest: None`) or the given one.
    ///
    /// One statement on the zone's shard does it all (see `sql/claim.sql`); a retry with the
    /// same idempotency key returns the first answer and never opens a second chest, even
    /// when two retries race or the first response was lost. `authorised_by` is recorded with
    /// the claim: `player`, or `admin:<subject>` for an admin claiming on a player's behalf.
    pub async fn claim(
        &self,
        zone: &str,
        player: &str,
        chest: Option<i64>,
        idempotency_key: Option<&str>,
        authorised_by: &str,
    ) -> Result<ClaimOutcome> {
        validate_zone_name(zone)?;
        validate_player_id(player)?;
        if let Some(key) = idempotency_key {
            validate_idempotency_key(key)?;
        }
        if let Some(id) = chest {
            if id < 1 {
                return Err(Error::ChestNotFound {
                    zone: zone.to_owned(),
                    chest_id: id,
                });
            }
        }
        let name: Arc<str> = Arc::from(zone);
        let _turn = self.turns.take(&name, player).await;
        let mut reload = false;
        let mut attempts = 0;
        let mut collisions = 0;
        let mut moving_since = None;
        let mut redraws = 0;
        while attempts < ATTEMPTS {
            let info = self.zone_info(zone, reload).await?;
            let shard = info.shard;
            let claim_id = crate::ids::uuid_v7();
            // Version 2: the player's next nonce and client seed; version 1: the claim id. A
            // player this instance has not seen in the zone is guessed new (nonce 0, no seed):
            // a wrong guess costs one `nonce` answer, a right one the round trip of a read.
            let next = match info.draw_version {
                1 => None,
                _ => Some(
                    self.nonces
                        .get(info.id, player, info.epoch)
                        .unwrap_or_else(|| Next::first(info.epoch)),
                ),
            };
            let nonce = match &next {
                Some(n) => Nonce::Counter {
                    client_seed: &n.client_seed,
                    nonce: n.nonce,
                },
                None => Nonce::ClaimId(claim_id),
            };
            let draw = Draw::keyed(&info.seed_key, zone, player, nonce);
            // Rolled for each submission (a collision submits the same draw again) rather
            // than rolled once and cloned: the roll is no dearer than the clone.
            let request = || batch::Request {
                zone_id: info.id,
                zone: Arc::clone(&name),
                epoch: info.epoch,
                player: player.to_owned(),
                key: idempotency_key.map(str::to_owned),
                start: draw.start,
                loot: prerolled::Prerolled::roll(&draw, &info.tables),
                claim_id,
                chest,
                nonce: next.as_ref().map(|n| n.nonce),
                client_seed: next.as_ref().map(|n| n.client_seed.clone()),
                authorised_by: authorised_by.to_owned(),
                info: Arc::clone(&info),
            };
            let mut status = self.claim_queues.submit(shard, request()).await?;
            // Another claim of the same batch took the chest this draw picked, or has the same
            // key: the same draw goes again in a later statement, where that chest is gone or
            // that claim is committed.
            while let ClaimStatus::Collided = status {
                collisions += 1;
                if collisions > MAX_COLLISIONS {
                    return Err(Error::Internal(format!(
                        "claim in zone {zone:?} collided {MAX_COLLISIONS} times in a row"
                    )));
                }
                status = self.claim_queues.submit(shard, request()).await?;
            }
            match status {
                ClaimStatus::Opened(Signed { claim, receipt }) => {
                    if let Some(n) = next {
                        let used = Next {
                            nonce: n.nonce + 1,
                            ..n
                        };
                        self.nonces.put(info.id, player, used);
                    }
                    return Ok(ClaimOutcome {
                        claim,
                        replayed: false,
                        receipt,
                    });
                }
                ClaimStatus::Replayed(signed) => return self.replay(signed, chest),
                // A keyed retry that waited for its first attempt already replayed it above
                // (the statement reads the key with a fresh snapshot), so a refusal stands.
                ClaimStatus::Exhausted => return Err(Error::ZoneExhausted(zone.to_owned())),
                ClaimStatus::AlreadyOpened => {
                    return Err(Error::ChestAlreadyOpened {
                        zone: zone.to_owned(),
                        chest_id: chest.unwrap_or_default(),
                    })
                }
                ClaimStatus::NotFound => {
                    return Err(Error::ChestNotFound {
                        zone: zone.to_owned(),
                        chest_id: chest.unwrap_or_default(),
                    })
                }
                ClaimStatus::Retry => {
                    // The key's insert conflicted with a claim written under it (answer with
                    // that claim), or our cached view lacks the chest's loot table (reload and
                    // draw again).
                    if let Some(key) = idempotency_key {
                        if let Some(prior) = self.claim_by_key(&info, player, key).await? {
                            return self.replay(self.sign_one(prior), chest);
                        }
                    }
                }
                ClaimStatus::Moving => {
                    // Fenced for a move: wait for the switch (then the zone is found on its
                    // new shard) rather than fail the claim.
                    let since = *moving_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > MOVING_WAIT {
                        return Err(Error::zone_moving(zone));
                    }
                    tokio::time::sleep(MOVING_PAUSE).await;
                    reload = true;
                    continue;
                }
                ClaimStatus::Nonce { next, client_seed } => {
                    // Not the player's next (a first guess, another instance's claim, a new
                    // client seed): draw again with what the statement read.
                    redraws += 1;
                    if redraws > MAX_NONCE_REDRAWS {
                        return Err(Error::Internal(format!(
                            "the nonce of {player:?} in zone {zone:?} kept moving"
                        )));
                    }
                    let next = Next {
                        epoch: info.epoch,
                        nonce: next,
                        client_seed,
                    };
                    self.nonces.put(info.id, player, next);
                    continue;
                }
                ClaimStatus::Stale | ClaimStatus::Collided => {}
            }
            attempts += 1;
            reload = true;
        }
        Err(Error::Internal(format!(
            "zone {zone:?} kept changing under the claim; gave up after {ATTEMPTS} attempts"
        )))
    }

    /// The claim an idempotency key already produced in a zone, read with a fresh snapshot.
    async fn claim_by_key(
        &self,
        zone: &ZoneInfo,
        player: &str,
        key: &str,
    ) -> Result<Option<Claim>> {
        let shard = &self.shards.all()[zone.shard];
        sqlx::query_file_as!(Claim, "sql/claim_by_key.sql", zone.id, player, key)
            .fetch_optional(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))
    }

    /// A claim answered outside a batch, with a receipt of its own (a batch of one).
    fn sign_one(&self, claim: Claim) -> Signed {
        let leaf = leaf_hash(&receipt_bytes(&claim.receipt_fields()));
        let receipt = self.receipts.sign_one(leaf);
        Signed { claim, receipt }
    }

    /// A replay must answer the same request: a key first used on another chest is refused.
    fn replay(&self, signed: Signed, asked: Option<i64>) -> Result<ClaimOutcome> {
        let Signed { claim, receipt } = signed;
        if let Some(asked) = asked {
            if asked != claim.chest_id {
                return Err(Error::IdempotencyKeyReused(format!(
                    "it opened chest {} in zone {:?}, not chest {asked}",
                    claim.chest_id, claim.zone
                )));
            }
        }
        Ok(ClaimOutcome {
            claim,
            replayed: true,
            receipt,
        })
    }
}

/// Keyset cursor of a player's history: the last claim of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub opened_at: DateTime<Utc>,
    pub claim_id: Uuid,
}

impl HistoryCursor {
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.opened_at.timestamp_micros(),
            self.claim_id.simple()
        )
    }

    pub fn decode(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "invalid_cursor",
                "before must be a `next` value from a previous page",
            )
        };
        let (micros, id) = s.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        Ok(HistoryCursor {
            opened_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
            claim_id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub claims: Vec<Claim>,
    /// Pass as `before` for the next page; null on the last page.
    pub next: Option<String>,
}

impl Engine {
    /// A player's claims across all shards, newest first. Every shard answers its own newest
    /// `limit` claims before the cursor and the pages are merged; a down shard fails the read
    /// (503) rather than silently returning a partial history.
    pub async fn history(
        &self,
        player: &str,
        before: Option<HistoryCursor>,
        limit: i64,
    ) -> Result<HistoryPage> {
        validate_player_id(player)?;
        let (at, id) = match before {
            Some(c) => (c.opened_at, c.claim_id),
            // Year 9999: later than any claim, well inside PostgreSQL's range.
            None => (
                DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default(),
                Uuid::max(),
            ),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for shard in self.shards.all() {
            let shard = shard.clone();
            let player = player.to_owned();
            tasks.spawn(async move {
                sqlx::query_file_as!(Claim, "sql/player_history.sql", player, at, id, limit)
                    .fetch_all(&mut *shard.acquire().await?)
                    .await
                    .map_err(|e| shard.db_error(e))
            });
        }
        let mut claims = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|e| Error::Internal(format!("history task: {e}")))??;
            claims.extend(part);
        }
        claims.sort_by_key(|c| std::cmp::Reverse((c.opened_at, c.claim_id)));
        claims.truncate(limit as usize);
        let next = (claims.len() as i64 == limit)
            .then(|| claims.last())
            .flatten()
            .map(|c| {
                HistoryCursor {
                    opened_at: c.opened_at,
                    claim_id: c.claim_id,
                }
                .encode()
            });
        Ok(HistoryPage { claims, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opened_at_is_written_as_chrono_writes_it() {
        for micros in [
            0,
            1_700_000_000_000_000,
            1_700_000_000_123_000,
            1_700_000_000_123_456,
        ] {
            let at = DateTime::from_timestamp_micros(micros).expect("ts");
            #[derive(Serialize)]
            struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);
            assert_eq!(
                serde_json::to_string(&Ours(at)).expect("ours"),
                serde_json::to_string(&at).expect("chrono"),
                "{micros}"
            );
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = HistoryCursor {
            opened_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("ts"),
            claim_id: Uuid::now_v7(),
        };
        assert_eq!(HistoryCursor::decode(&c.encode()).ok(), Some(c));
        assert!(HistoryCursor::decode("nope").is_err());
        assert!(HistoryCursor::decode("12_notauuid").is_err());
    }
}
