//! The boards Trove keeps and the points an item of each rarity is worth.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::ledger::recorded_loot;
use crate::loot::Rarity;

/// Points per item of each rarity, `common=1,uncommon=3,…`.
#[derive(Debug, Clone, PartialEq)]
pub struct RarityScores(pub BTreeMap<Rarity, f64>);

impl Default for RarityScores {
    fn default() -> Self {
        RarityScores(BTreeMap::from([
            (Rarity::Common, 1.0),
            (Rarity::Uncommon, 3.0),
            (Rarity::Rare, 10.0),
            (Rarity::Epic, 40.0),
            (Rarity::Legendary, 200.0),
        ]))
    }
}

impl FromStr for RarityScores {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, points) = part
                .split_once('=')
                .ok_or_else(|| format!("expected rarity=points, got {part:?}"))?;
            let rarity: Rarity =
                serde_json::from_value(serde_json::Value::String(name.trim().to_owned()))
                    .map_err(|_| format!("unknown rarity {name:?}"))?;
            let points: f64 = points
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| format!("bad points in {part:?}"))?;
            map.insert(rarity, points);
        }
        Ok(RarityScores(map))
    }
}

impl RarityScores {
    /// The loot value of one recorded draw.
    pub fn value(&self, loot: &serde_json::Value) -> f64 {
        recorded_loot(loot)
            .iter()
            .map(|i| self.0.get(&i.rarity).copied().unwrap_or(0.0))
            .sum()
    }

    pub(super) fn as_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(r, p)| {
                    let name = serde_json::to_value(r)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned));
                    (name.unwrap_or_default(), serde_json::json!(p))
                })
                .collect(),
        )
    }
}

/// The boards Trove keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Board {
    Chests,
    LootValue,
}

impl Board {
    pub const ALL: [Board; 2] = [Board::Chests, Board::LootValue];

    pub fn name(self) -> &'static str {
        match self {
            Board::Chests => "chests",
            Board::LootValue => "loot_value",
        }
    }

    pub fn parse(s: &str) -> Result<Board> {
        match s {
            "chests" => Ok(Board::Chests),
            "loot_value" => Ok(Board::LootValue),
            _ => Err(Error::invalid(
                "invalid_board",
                "boards are chests and loot_value",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarity_scores_parse_and_value_loot() {
        let s: RarityScores = "common=1,legendary=100".parse().expect("parse");
        let loot = serde_json::json!([
            {"item": "gold", "qty": 40, "rarity": "common"},
            {"item": "crown", "qty": 1, "rarity": "legendary"},
            {"item": "gem", "qty": 2, "rarity": "rare"}
        ]);
        assert_eq!(s.value(&loot), 101.0);
        assert!("common=x".parse::<RarityScores>().is_err());
        assert!("mythic=1".parse::<RarityScores>().is_err());
        assert!("common=-1".parse::<RarityScores>().is_err());
        assert_eq!(RarityScores::default().0.len(), 5);
    }
}
