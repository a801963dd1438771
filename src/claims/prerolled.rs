//! A claim's loot rolled in advance for each loot table its zone has (the statement keeps the
//! entry of the table of the chest it opens), sent to the shard as JSON written once, by hand.
//!
//! As a `serde_json::Value` it cost an allocation per key and string for every table of every
//! claim, and a second pass to serialise it for the driver; only the opened table's loot is
//! ever needed as a value (the claim's answer and receipt), so only that one is built.

use std::fmt::Write;
use std::sync::Arc;

use sqlx::encode::IsNull;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::{Encode, Postgres, Type};

use crate::fairness::Draw;
use crate::loot::{LootItem, LootTable};
use crate::names::valid_item_name;

/// `{"<loot table id>": [{"item","qty","rarity"}, ...], ...}` as the claim statement's jsonb
/// parameter takes it, and the items it was written from.
#[derive(Debug, Default)]
pub struct Prerolled {
    json: String,
    rolled: Vec<(i32, Vec<LootItem>)>,
}

impl Prerolled {
    /// What `draw` gives from each of `tables`.
    pub fn roll(draw: &Draw, tables: &[Arc<LootTable>]) -> Self {
        let mut json = String::with_capacity(64 * tables.len() + 2);
        let mut rolled = Vec::with_capacity(tables.len());
        json.push('{');
        for (i, table) in tables.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            let _ = write!(json, "\"{}\":", table.id);
            let items = draw.loot(table);
            write_items(&items, &mut json);
            rolled.push((table.id, items));
        }
        json.push('}');
        Prerolled { json, rolled }
    }

    /// The loot rolled for table `id`, as the ledger records it (taken: asked once, by the
    /// claim that opened a chest of that table).
    pub fn take(&mut self, id: i32) -> Option<serde_json::Value> {
        let (_, items) = self.rolled.iter_mut().find(|(t, _)| *t == id)?;
        serde_json::to_value(std::mem::take(items)).ok()
    }

    #[cfg(test)]
    fn json(&self) -> &str {
        &self.json
    }
}

/// Loot items as compact JSON, keys in serde's (and sorted) order: `item`, `qty`, `rarity`.
/// Item names are `[A-Za-z0-9_.:-]` (`valid_item_name`, checked when a table is stored), so
/// they need no escaping; one that somehow does goes through serde_json.
pub fn write_items(items: &[LootItem], out: &mut String) {
    out.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"item\":");
        if valid_item_name(&it.item) {
            out.push('"');
            out.push_str(&it.item);
            out.push('"');
        } else {
            out.push_str(&serde_json::Value::from(it.item.as_str()).to_string());
        }
        let _ = write!(out, ",\"qty\":{},\"rarity\":\"", it.qty);
        out.push_str(it.rarity.as_str());
        out.push_str("\"}");
    }
    out.push(']');
}

impl Type<Postgres> for Prerolled {
    fn type_info() -> PgTypeInfo {
        <serde_json::Value as Type<Postgres>>::type_info()
    }
}

impl PgHasArrayType for Prerolled {
    fn array_type_info() -> PgTypeInfo {
        <serde_json::Value as PgHasArrayType>::array_type_info()
    }
}

impl Encode<'_, Postgres> for Prerolled {
    /// jsonb's binary form: the format version (1), then the JSON text.
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<IsNull, Box<dyn std::error::Error + Send + Sync>> {
        buf.push(1);
        buf.extend_from_slice(self.json.as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::Nonce;
    use crate::loot::{LootTableSpec, Rarity};

    fn table(id: i32, items: &[(&str, Rarity)]) -> LootTable {
        LootTable {
            id,
            name: format!("t{id}"),
            version: 1,
            spec: LootTableSpec {
                entries: items
                    .iter()
                    .map(|(item, rarity)| crate::loot::tests::entry(item, 1, 1, 100, *rarity))
                    .collect(),
                rolls: 3,
            },
        }
    }

    #[test]
    fn the_json_is_what_serde_json_writes_and_each_tables_loot_is_the_draws() {
        let tables = [
            Arc::new(table(
                7,
                &[("gold", Rarity::Common), ("odd\"name", Rarity::Rare)],
            )),
            Arc::new(table(12, &[("gem.blue:1", Rarity::Legendary)])),
        ];
        let draw = Draw::new(
            &[5; 32],
            "z",
            "p",
            Nonce::Counter {
                client_seed: "",
                nonce: 0,
            },
        );
        let mut pre = Prerolled::roll(&draw, &tables);
        let expected = serde_json::json!({
            "7": draw.loot(&tables[0]),
            "12": draw.loot(&tables[1]),
        });
        let parsed: serde_json::Value = serde_json::from_str(pre.json()).expect("valid JSON");
        assert_eq!(parsed, expected);
        let mut compact = String::new();
        write_items(&draw.loot(&tables[0]), &mut compact);
        assert_eq!(
            compact,
            serde_json::to_string(&draw.loot(&tables[0])).expect("serde")
        );
        assert_eq!(pre.take(12), Some(expected["12"].clone()));
        assert_eq!(pre.take(99), None);
    }
}
