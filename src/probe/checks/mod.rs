//! What one probe round must find, as pure functions over what it observed: every answer
//! the players got, the ledger read back through the API, and the WebSocket events. Kept
//! apart from the I/O so each violation can be shown to fire on a made-up observation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::Value;

/// The ways a round can break Trove's promise. A bounded set: they label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// One chest answered to two different claims.
    DuplicateChest,
    /// Not exactly S distinct chests were won (or the ledger holds another number).
    WinnerCount,
    /// An acknowledged (2xx) claim is missing from the ledger or differs from it.
    LostClaim,
    /// The ledger holds an opened chest no answer accounts for.
    PhantomClaim,
    /// A retry with the same idempotency key was answered differently.
    ReplayMismatch,
    /// One idempotency key opened two chests.
    KeyOpenedTwice,
    /// An answer other than 201, a replayed 200, or 409 `zone_exhausted`.
    UnexpectedStatus,
    /// A request that should have been answered failed in transport.
    RequestFailed,
    /// The zone's totals disagree with what was spawned and won.
    ZoneTotals,
    /// WebSocket `chest_opened` events are not exactly one per winning claim.
    EventMismatch,
    /// The zone landed on another shard than the probe's hash says.
    WrongShard,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::DuplicateChest,
        Kind::WinnerCount,
        Kind::LostClaim,
        Kind::PhantomClaim,
        Kind::ReplayMismatch,
        Kind::KeyOpenedTwice,
        Kind::UnexpectedStatus,
        Kind::RequestFailed,
        Kind::ZoneTotals,
        Kind::EventMismatch,
        Kind::WrongShard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DuplicateChest => "duplicate_chest",
            Kind::WinnerCount => "winner_count",
            Kind::LostClaim => "lost_claim",
            Kind::PhantomClaim => "phantom_claim",
            Kind::ReplayMismatch => "replay_mismatch",
            Kind::KeyOpenedTwice => "key_opened_twice",
            Kind::UnexpectedStatus => "unexpected_status",
            Kind::RequestFailed => "request_failed",
            Kind::ZoneTotals => "zone_totals",
            Kind::EventMismatch => "event_mismatch",
            Kind::WrongShard => "wrong_shard",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken promise, with enough detail to find it in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: Kind,
    pub zone: String,
    pub detail: String,
}

/// What one HTTP claim request came back with.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 201 (opened) or 200 with `Idempotent-Replayed: true`; the body is the claim.
    Claim {
        status: u16,
        replayed: bool,
        body: Value,
    },
    /// Any other status, with its error code.
    Refused { status: u16, code: String },
    /// No HTTP answer (connection error, timeout).
    Failed(String),
}

impl Answer {
    fn claim(&self) -> Option<&Value> {
        match self {
            Answer::Claim { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// How a synthetic player's requests were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One request.
    Single,
    /// Two requests with the same key at once.
    Racing,
    /// A request whose response was dropped on the floor, then a retry with the same key.
    Dropped,
}

/// One synthetic player: its key, and every answer it got (not the dropped one).
#[derive(Debug, Clone)]
pub struct PlayerRun {
    pub player: String,
    pub plan: Plan,
    pub answers: Vec<Answer>,
    /// Sent after every other request finished, for players that won: must replay exactly.
    pub late_replay: Option<Answer>,
}

/// The zone as read back through the API after the claims.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// `GET /v1/zones/{zone}`: shard, total, opened, remaining.
    pub shard: usize,
    pub total: i64,
    pub opened: i64,
    pub remaining: i64,
    /// Opened chests and who opened them (`GET …/chests?state=opened`).
    pub opened_by: BTreeMap<i64, String>,
    /// Each winner's claims in this zone from its history (`GET /v1/players/{p}/claims`).
    pub histories: HashMap<String, Vec<Value>>,
}

/// Everything one shard's part of a round observed.
#[derive(Debug, Clone)]
pub struct Observation {
    pub shard: usize,
    pub zone: String,
    /// Chests spawned (S).
    pub chests: usize,
    pub players: Vec<PlayerRun>,
    pub ledger: Ledger,
    /// `(chest_id, claim_id)` of each `chest_opened` event, when watching over WebSocket.
    pub events: Option<Vec<(i64, String)>>,
}

/// Checks one observation against the promise; an empty list is a clean round.
pub fn check(o: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut flag = |kind: Kind, detail: String| {
        out.push(Violation {
            kind,
            zone: o.zone.clone(),
            detail,
        })
    };
    if o.ledger.shard != o.shard {
        flag(
            Kind::WrongShard,
            format!("zone is on shard {}, expected {}", o.ledger.shard, o.shard),
        );
    }

    // Each player's answers on their own: allowed statuses, and one story per key.
    let mut winners: BTreeMap<String, &Value> = BTreeMap::new();
    for p in &o.players {
        let all = p.answers.iter().chain(p.late_replay.as_ref());
        for (i, a) in all.enumerate() {
            let first_of_single = p.plan == Plan::Single && i == 0;
            match a {
                Answer::Claim {
                    status: 201,
                    replayed: false,
                    ..
                } => {}
                Answer::Claim {
                    status: 200,
                    replayed: true,
                    ..
                } if !first_of_single => {}
                Answer::Claim {
                    status, replayed, ..
                } => flag(
                    Kind::UnexpectedStatus,
                    format!("{}: {status} (replayed: {replayed})", p.player),
                ),
                Answer::Refused { status: 409, code } if code == "zone_exhausted" => {}
                Answer::Refused { status, code } => flag(
                    Kind::UnexpectedStatus,
                    format!("{}: {status} {code}", p.player),
                ),
                Answer::Failed(e) => flag(Kind::RequestFailed, format!("{}: {e}", p.player)),
            }
        }
        let claims: Vec<&Value> = p.answers.iter().filter_map(Answer::claim).collect();
        let ids: BTreeSet<&str> = claims
            .iter()
            .filter_map(|c| c["claim_id"].as_str())
            .collect();
        let opened = p
            .answers
            .iter()
            .filter(|a| matches!(a, Answer::Claim { status: 201, .. }))
            .count();
        if ids.len() > 1 || opened > 1 {
            flag(
                Kind::KeyOpenedTwice,
                format!("{}: one key opened {:?}", p.player, ids),
            );
        } else if claims.windows(2).any(|w| w[0] != w[1]) {
            flag(
                Kind::ReplayMismatch,
                format!("{}: retries answered with different claims", p.player),
            );
        }
        // Both racing requests were sent before either answered: one of them opened the
        // chest, so two replays mean the key had opened something before this round.
        if p.plan == Plan::Racing && !claims.is_empty() && opened == 0 {
            flag(
                Kind::ReplayMismatch,
                format!(
                    "{}: replays of a claim no request of this round made",
                    p.player
                ),
            );
        }
        let refused = p
            .answers
            .iter()
            .any(|a| matches!(a, Answer::Refused { .. }));
        if refused && !claims.is_empty() {
            flag(
                Kind::ReplayMismatch,
                format!("{}: one retry won a chest, another was refused", p.player),
            );
        }
        if let Some(first) = claims.first() {
            match &p.late_replay {
                Some(Answer::Claim { body, .. }) if body == *first => {}
                Some(other) => flag(
                    Kind::ReplayMismatch,
                    format!("{}: late replay answered {other:?}", p.player),
                ),
                None => {}
            }
            winners.insert(p.player.clone(), first);
        }
    }

    // Across players: one claim per chest, exactly S chests.
    let mut by_chest: BTreeMap<i64, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for (player, c) in &winners {
        let chest = c["chest_id"].as_i64().unwrap_or_default();
        let id = c["claim_id"].as_str().unwrap_or_default();
        by_chest.entry(chest).or_default().insert((player, id));
    }
    for (chest, who) in &by_chest {
        if who.len() > 1 {
            flag(
                Kind::DuplicateChest,
                format!("chest {chest} answered to {who:?}"),
            );
        }
    }
    if by_chest.len() != o.chests {
        flag(
            Kind::WinnerCount,
            format!(
                "{} distinct chests won of {} spawned",
                by_chest.len(),
                o.chests
            ),
        );
    }

    // The ledger, read back through the API, holds every acknowledged claim and no other.
    let l = &o.ledger;
    if (l.total, l.opened, l.remaining) != (o.chests as i64, o.chests as i64, 0) {
        flag(
            Kind::ZoneTotals,
            format!(
                "total {} opened {} remaining {}, expected {n} {n} 0",
                l.total,
                l.opened,
                l.remaining,
                n = o.chests
            ),
        );
    }
    for (player, c) in &winners {
        let chest = c["chest_id"].as_i64().unwrap_or_default();
        if l.opened_by.get(&chest) != Some(player) {
            flag(
                Kind::LostClaim,
                format!(
                    "{player} was told it opened chest {chest}; the ledger says {:?}",
                    l.opened_by.get(&chest)
                ),
            );
        }
        let recorded = l
            .histories
            .get(player)
            .and_then(|h| h.iter().find(|r| r["claim_id"] == c["claim_id"]));
        match recorded {
            Some(r) if r == *c => {}
            Some(r) => flag(
                Kind::LostClaim,
                format!("{player}: history records {r} but the answer was {c}"),
            ),
            None => flag(
                Kind::LostClaim,
                format!("{player}: claim {} is not in its history", c["claim_id"]),
            ),
        }
    }
    for (chest, player) in &l.opened_by {
        if !by_chest.contains_key(chest) {
            flag(
                Kind::PhantomClaim,
                format!("the ledger says {player} opened chest {chest}; no answer said so"),
            );
        }
    }
    if l.opened_by.len() != o.chests {
        flag(
            Kind::WinnerCount,
            format!(
                "the ledger lists {} opened chests of {}",
                l.opened_by.len(),
                o.chests
            ),
        );
    }

    // Exactly one event per winning claim.
    if let Some(events) = &o.events {
        let got: BTreeSet<(i64, &str)> = events.iter().map(|(c, id)| (*c, id.as_str())).collect();
        let want: BTreeSet<(i64, &str)> = winners
            .values()
            .map(|c| {
                (
                    c["chest_id"].as_i64().unwrap_or_default(),
                    c["claim_id"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        if got.len() != events.len() || got != want {
            flag(
                Kind::EventMismatch,
                format!(
                    "{} chest_opened events ({} distinct) for {} winning claims; {} missing",
                    events.len(),
                    got.len(),
                    want.len(),
                    want.difference(&got).count()
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
