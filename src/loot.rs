//! Loot tables as data: weighted entries with quantity ranges and rarity, their limits, and
//! what a draw gives. Storing and reading versions is `loot_tables`; rolling is `fairness`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::valid_item_name;

/// Item rarity, ordered from least to most rare.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Rarity {
    Common,
    Uncommon,
    Rare,
    Epic,
    Legendary,
}

impl Rarity {
    /// The name serde gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rarity::Common => "common",
            Rarity::Uncommon => "uncommon",
            Rarity::Rare => "rare",
            Rarity::Epic => "epic",
            Rarity::Legendary => "legendary",
        }
    }
}

/// One weighted line of a loot table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LootEntry {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,64}$")]
    pub item: String,
    /// Relative chance: this entry wins `weight / sum(weights)` of the rolls.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub weight: u32,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub min_qty: u32,
    /// At least `min_qty`.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_qty: u32,
    pub rarity: Rarity,
}

/// The body of `PUT /v1/loot-tables/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LootTableSpec {
    #[schema(min_items = 1, max_items = 256)]
    pub entries: Vec<LootEntry>,
    /// Independent rolls per chest (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 16, default = 1)]
    pub rolls: u8,
}

fn one() -> u8 {
    1
}

/// What one roll gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LootItem {
    pub item: String,
    pub qty: u32,
    pub rarity: Rarity,
}

/// A stored loot table version. `id` is local to the shard it was read from.
#[derive(Debug, Clone)]
pub struct LootTable {
    pub id: i32,
    pub name: String,
    pub version: i32,
    pub spec: LootTableSpec,
}

impl LootTable {
    /// A version as stored in a shard's `loot_tables` row.
    pub fn stored(
        id: i32,
        name: String,
        version: i32,
        entries: serde_json::Value,
        rolls: i16,
    ) -> Result<Self> {
        let entries = serde_json::from_value(entries).map_err(|e| {
            Error::Internal(format!(
                "stored loot table {name} v{version} is unreadable: {e}"
            ))
        })?;
        Ok(LootTable {
            id,
            name,
            version,
            spec: LootTableSpec {
                entries,
                rolls: u8::try_from(rolls).unwrap_or(1),
            },
        })
    }
}

pub const MAX_ENTRIES: usize = 256;
pub const MAX_WEIGHT: u32 = 1_000_000;
pub const MAX_QTY: u32 = 1_000_000;
pub const MAX_ROLLS: u8 = 16;

impl LootTableSpec {
    /// Checks every limit; a table that passes can always be rolled.
    pub fn validate(&self) -> Result<()> {
        if self.entries.is_empty() || self.entries.len() > MAX_ENTRIES {
            return Err(Error::invalid(
                "invalid_loot_table",
                format!("a loot table needs 1 to {MAX_ENTRIES} entries"),
            ));
        }
        if !(1..=MAX_ROLLS).contains(&self.rolls) {
            return Err(Error::invalid(
                "invalid_loot_table",
                format!("rolls must be 1 to {MAX_ROLLS}"),
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            let bad =
                |why: String| Error::invalid("invalid_loot_table", format!("entries[{i}]: {why}"));
            if !valid_item_name(&e.item) {
                return Err(bad("item must be 1-64 of [A-Za-z0-9_.:-]".into()));
            }
            if !(1..=MAX_WEIGHT).contains(&e.weight) {
                return Err(bad(format!("weight must be 1 to {MAX_WEIGHT}")));
            }
            if e.min_qty < 1 || e.max_qty > MAX_QTY || e.min_qty > e.max_qty {
                return Err(bad(format!("need 1 <= min_qty <= max_qty <= {MAX_QTY}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    pub(crate) fn entry(item: &str, weight: u32, min: u32, max: u32, rarity: Rarity) -> LootEntry {
        LootEntry {
            item: item.into(),
            weight,
            min_qty: min,
            max_qty: max,
            rarity,
        }
    }

    #[test]
    fn validation_rejects_out_of_range_tables() {
        let ok = LootTableSpec {
            entries: vec![entry("gold", 1, 1, 1, Rarity::Common)],
            rolls: 1,
        };
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.entries[0].weight = 0;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.entries[0].min_qty = 5;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.entries[0].item = "no spaces".into();
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.rolls = 0;
        assert!(bad.validate().is_err());
        let bad = LootTableSpec {
            entries: vec![],
            rolls: 1,
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn rarity_names_are_serdes() {
        for r in [
            Rarity::Common,
            Rarity::Uncommon,
            Rarity::Rare,
            Rarity::Epic,
            Rarity::Legendary,
        ] {
            assert_eq!(serde_json::to_value(r).expect("name"), r.as_str());
        }
    }

    #[test]
    fn rarity_orders_by_rareness() {
        assert!(Rarity::Legendary > Rarity::Epic && Rarity::Uncommon > Rarity::Common);
    }
}
