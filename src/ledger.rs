//! The claims ledger as its followers read it: positions on a shard's tail, the horizon rule
//! that makes every committed row seen exactly once, and the decoding of recorded loot.
//! Shared by the realtime fan-out and the leaderboards, which tail the same ledger.
//!
//! # The horizon rule
//! A follower reads rows whose transaction id lies below its snapshot's xmin horizon: every
//! transaction under the horizon has finished, so those rows are final although commits land
//! out of xid order, and a rolled-back claim never appears. A batch that came back full ends
//! at its last row (more may follow at once); any other batch has seen everything below the
//! horizon ([`batch_end`]).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::loot::{LootItem, Rarity};

/// A position on one shard's tail: every event with a key at or before it has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub xid: i64,
    pub zone_id: i32,
    pub chest_id: i64,
}

impl Cursor {
    /// Everything below `horizon` (all of it final).
    pub fn below(horizon: i64) -> Self {
        Cursor {
            xid: horizon - 1,
            zone_id: i32::MAX,
            chest_id: i64::MAX,
        }
    }
}

/// `<xid>_<zone>_<chest>`: the one text form of a cursor (in positions and in Redis).
impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.xid, self.zone_id, self.chest_id)
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let mut n = s.split('_');
        let mut next = || n.next().ok_or(());
        let c = Cursor {
            xid: next()?.parse().map_err(drop)?,
            zone_id: next()?.parse().map_err(drop)?,
            chest_id: next()?.parse().map_err(drop)?,
        };
        match n.next() {
            None => Ok(c),
            Some(_) => Err(()),
        }
    }
}

/// Where a batch read from `from` ends: at its last row when it came back `full` (there may be
/// more at once), else at the horizon (everything below it has been seen), never going back.
pub fn batch_end(full: bool, last: Option<Cursor>, horizon: i64, from: Cursor) -> Cursor {
    match (full, last) {
        (true, Some(last)) => last,
        _ => Cursor::below(horizon).max(from),
    }
}

/// A client's resume token: one cursor per shard, in shard order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position(pub Vec<Cursor>);

impl Position {
    /// `1.<cursor>.<cursor>…` (opaque to clients).
    pub fn encode(&self) -> String {
        let mut s = String::from("1");
        for c in &self.0 {
            s.push('.');
            s.push_str(&c.to_string());
        }
        s
    }

    /// A position for `shards` shards. One from before shards were added has fewer cursors:
    /// the new shards' parts start at the beginning of their ledgers.
    pub fn decode(s: &str, shards: usize) -> Result<Self> {
        let bad = || Error::invalid("invalid_position", "since must be a position Trove sent");
        let mut parts = s.split('.');
        if parts.next() != Some("1") {
            return Err(bad());
        }
        let mut cursors = parts
            .map(|p| p.parse::<Cursor>().map_err(|()| bad()))
            .collect::<Result<Vec<_>>>()?;
        if cursors.is_empty() || cursors.len() > shards {
            return Err(bad());
        }
        cursors.resize(shards, Cursor::default());
        Ok(Position(cursors))
    }
}

/// The items of a recorded draw (a ledger row's `loot`); nothing for a value that is not one.
pub fn recorded_loot(loot: &serde_json::Value) -> Vec<LootItem> {
    Vec::<LootItem>::deserialize(loot).unwrap_or_default()
}

/// The rarest item of a recorded draw.
pub fn best_rarity(loot: &serde_json::Value) -> Option<Rarity> {
    recorded_loot(loot).into_iter().map(|i| i.rarity).max()
}

/// `best_rarity` of the ledger's JSON text, read straight into rarities (no JSON tree and no
/// item names built): the tail reads every claim of its shard, watched or not.
pub fn best_rarity_text(loot: &str) -> Option<Rarity> {
    #[derive(Deserialize)]
    struct Item {
        rarity: Rarity,
    }
    let items: Vec<Item> = serde_json::from_str(loot).ok()?;
    items.into_iter().map(|i| i.rarity).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarity_from_text_agrees_with_rarity_from_the_tree() {
        for loot in [
            r#"[{"qty": 3, "item": "gold", "rarity": "common"}, {"qty": 1, "item": "gem", "rarity": "epic"}]"#,
            r#"[{"item": "x", "qty": 1, "rarity": "legendary"}]"#,
            "[]",
            "{}",
            r#"[{"item": "x"}]"#,
            "not json",
        ] {
            let tree = serde_json::from_str(loot).map_or(None, |v| best_rarity(&v));
            assert_eq!(best_rarity_text(loot), tree, "{loot}");
        }
    }

    #[test]
    fn positions_round_trip_and_reject_garbage() {
        let p = Position(vec![
            Cursor {
                xid: 10,
                zone_id: 2,
                chest_id: 3,
            },
            Cursor::below(99),
        ]);
        assert_eq!(Position::decode(&p.encode(), 2).ok(), Some(p.clone()));
        // From before a shard was added: the new shard's part starts at its beginning.
        let mut grown = p.clone();
        grown.0.push(Cursor::default());
        assert_eq!(Position::decode(&p.encode(), 3).ok(), Some(grown));
        assert!(Position::decode(&p.encode(), 1).is_err());
        for bad in [
            "",
            "1",
            "2.1_1_1",
            "1.x_1_1",
            "1.1_1",
            "1.1_1_1_1",
            "garbage",
        ] {
            assert!(Position::decode(bad, 1).is_err(), "{bad}");
        }
        assert!(
            Cursor::below(5)
                > Cursor {
                    xid: 4,
                    zone_id: 9,
                    chest_id: 9
                }
        );
        assert!(
            Cursor::below(5)
                < Cursor {
                    xid: 5,
                    zone_id: 0,
                    chest_id: 0
                }
        );
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            xid: 9,
            zone_id: 3,
            chest_id: 77,
        };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        assert!("1_2".parse::<Cursor>().is_err());
        assert!("a_b_c".parse::<Cursor>().is_err());
    }

    #[test]
    fn batches_end_at_their_last_row_or_the_horizon() {
        let from = Cursor {
            xid: 5,
            zone_id: 1,
            chest_id: 1,
        };
        let last = Cursor {
            xid: 7,
            zone_id: 1,
            chest_id: 2,
        };
        assert_eq!(batch_end(true, Some(last), 20, from), last);
        assert_eq!(batch_end(false, Some(last), 20, from), Cursor::below(20));
        // A horizon behind the cursor (a fresh snapshot on a lagging replica) never goes back.
        assert_eq!(batch_end(false, None, 3, from), from);
    }

    #[test]
    fn recorded_loot_decodes_and_ranks() {
        let loot = serde_json::json!([
            {"item": "gold", "qty": 4, "rarity": "common"},
            {"item": "crown", "qty": 1, "rarity": "legendary"}
        ]);
        assert_eq!(recorded_loot(&loot).len(), 2);
        assert_eq!(best_rarity(&loot), Some(Rarity::Legendary));
        assert_eq!(best_rarity(&serde_json::json!("nope")), None);
    }
}
