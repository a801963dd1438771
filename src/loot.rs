//! Loot tables: weighted entries with quantity ranges and rarity, immutable once stored, and
//! the rolling algorithm every draw (and every replay of a draw) uses.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fairness::below;

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

fn valid_item_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Rolls a table: for each of `rolls`, pick an entry with probability proportional to its
/// weight (`below(total_weight)` walked through the entries in order), then a quantity
/// uniform in `min_qty..=max_qty` (`min_qty + below(max_qty - min_qty + 1)`).
pub fn roll(table: &LootTable, rng: &mut impl rand_chacha::rand_core::RngCore) -> Vec<LootItem> {
    let spec = &table.spec;
    let total: u64 = spec.entries.iter().map(|e| u64::from(e.weight)).sum();
    (0..spec.rolls)
        .filter_map(|_| {
            let mut ticket = below(rng, total);
            let entry = spec.entries.iter().find(|e| {
                let w = u64::from(e.weight);
                if ticket < w {
                    true
                } else {
                    ticket -= w;
                    false
                }
            })?;
            let span = u64::from(entry.max_qty - entry.min_qty) + 1;
            Some(LootItem {
                item: entry.item.clone(),
                qty: entry.min_qty + below(rng, span) as u32,
                rarity: entry.rarity,
            })
        })
        .collect()
}

/// Validates a loot table name (same alphabet as zone names).
pub fn validate_table_name(name: &str) -> Result<()> {
    crate::zones::validate_zone_name(name).map_err(|_| {
        Error::invalid(
            "invalid_loot_table_name",
            "loot table names match ^[a-z0-9][a-z0-9_.:-]{0,63}$",
        )
    })
}

impl Engine {
    /// Stores `spec` as the next version of `name` on the table's home shard and returns that
    /// version. Putting the same content as the latest version returns it unchanged, so the
    /// PUT is idempotent. Chests keep the version they were spawned with.
    pub async fn put_loot_table(&self, name: &str, spec: &LootTableSpec) -> Result<i32> {
        validate_table_name(name)?;
        spec.validate()?;
        let shard = self.shards.for_loot_table(name);
        let pool = shard.pool()?;
        let entries =
            serde_json::to_value(&spec.entries).map_err(|e| Error::Internal(e.to_string()))?;
        let stored: Result<i32, sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            sqlx::query_file!("sql/loot_table_lock.sql", name)
                .execute(&mut *tx)
                .await?;
            let latest = sqlx::query_file!("sql/loot_table_latest.sql", name)
                .fetch_optional(&mut *tx)
                .await?;
            let version = match latest {
                Some(l) if l.entries == entries && l.rolls == i16::from(spec.rolls) => l.version,
                latest => {
                    let version = latest.map_or(1, |l| l.version + 1);
                    sqlx::query_file_scalar!(
                        "sql/loot_table_insert.sql",
                        name,
                        version,
                        entries,
                        i16::from(spec.rolls)
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    version
                }
            };
            tx.commit().await?;
            Ok(version)
        }
        .await;
        stored.map_err(|e| shard.db_error(e))
    }

    /// The newest version of a loot table, read from its home shard.
    pub async fn latest_loot_table(&self, name: &str) -> Result<LootTable> {
        self.loot_table(name, None).await
    }

    /// One version of a loot table (the newest when `version` is None), from its home shard,
    /// which keeps every version: replaying an old claim needs the one its chest kept.
    pub async fn loot_table(&self, name: &str, version: Option<i32>) -> Result<LootTable> {
        validate_table_name(name)?;
        let shard = self.shards.for_loot_table(name);
        let row = sqlx::query_file!("sql/loot_table_version.sql", name, version)
            .fetch_optional(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))?
            .ok_or_else(|| match version {
                Some(v) => Error::LootTableNotFound(format!("{name} version {v}")),
                None => Error::LootTableNotFound(name.to_owned()),
            })?;
        Ok(LootTable {
            id: row.id,
            name: row.name,
            version: row.version,
            spec: LootTableSpec {
                entries: serde_json::from_value(row.entries)
                    .map_err(|e| Error::Internal(format!("stored loot table unreadable: {e}")))?,
                rolls: row.rolls as u8,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn table(entries: Vec<LootEntry>, rolls: u8) -> LootTable {
        LootTable {
            id: 1,
            name: "t".into(),
            version: 1,
            spec: LootTableSpec { entries, rolls },
        }
    }

    fn entry(item: &str, weight: u32, min: u32, max: u32, rarity: Rarity) -> LootEntry {
        LootEntry {
            item: item.into(),
            weight,
            min_qty: min,
            max_qty: max,
            rarity,
        }
    }

    #[test]
    fn weights_and_quantity_ranges_are_respected() {
        let t = table(
            vec![
                entry("gold", 90, 1, 50, Rarity::Common),
                entry("gem", 10, 2, 2, Rarity::Epic),
            ],
            2,
        );
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([3u8; 32]);
        let (mut gold, mut gem) = (0, 0);
        for _ in 0..5000 {
            let loot = roll(&t, &mut rng);
            assert_eq!(loot.len(), 2);
            for item in loot {
                match item.item.as_str() {
                    "gold" => {
                        assert!((1..=50).contains(&item.qty));
                        gold += 1
                    }
                    "gem" => {
                        assert_eq!((item.qty, item.rarity), (2, Rarity::Epic));
                        gem += 1
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        }
        let share = f64::from(gem) / f64::from(gem + gold);
        assert!((0.08..0.12).contains(&share), "gem share {share}");
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
    fn rarity_orders_by_rareness() {
        assert!(Rarity::Legendary > Rarity::Epic && Rarity::Uncommon > Rarity::Common);
    }
}
