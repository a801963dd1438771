//! The README's test vectors ("Provably fair draws"): Trove's draw, receipt, Merkle tree,
//! signatures and transcript digest on fixed inputs, the same from the independent Python
//! implementation (tests/replay/replay.py --vectors), and the README showing every value.

use serde_json::{json, Value};
use trove::fairness::{draw_seed, Draw, Nonce};
use trove::loot::LootTable;
use trove::receipts::{leaf_hash, receipt_bytes, Fields, Hash, ReceiptKeys, TranscriptDigest};

/// Trove's values for the vectors' inputs, in the shape replay.py prints them.
fn trove_vectors() -> Value {
    let table = LootTable {
        id: 1,
        name: "starter".into(),
        version: 1,
        spec: serde_json::from_value(json!({"rolls": 1, "entries": [
            {"item": "gold", "weight": 70, "min_qty": 1, "max_qty": 50, "rarity": "common"},
            {"item": "gem", "weight": 30, "min_qty": 1, "max_qty": 2, "rarity": "rare"}]}))
        .expect("table"),
    };
    let seed = [0u8; 32];
    let opened_at = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00.123456Z")
        .expect("time")
        .timestamp_micros();
    let (mut starts, mut loots, mut leaves) = (vec![], vec![], Vec::<Hash>::new());
    let mut receipt = String::new();
    for (i, nonce) in [3i64, 4, 5].into_iter().enumerate() {
        let n = Nonce::Counter {
            client_seed: "lucky",
            nonce,
        };
        let draw = Draw::new(&seed, "z", "p", n);
        let loot = json!(draw.loot(&table));
        let claim_id = format!("0192f7a0-0000-7000-8000-00000000000{}", i + 1);
        let bytes = receipt_bytes(&Fields {
            zone: "z",
            seed_epoch: 1,
            player: "p",
            nonce: Some(nonce),
            client_seed: Some("lucky"),
            claim_id: uuid::Uuid::parse_str(&claim_id).expect("uuid"),
            chest_id: 42 + i as i64,
            loot_table: "starter",
            loot_table_version: 1,
            loot: &loot,
            opened_at_micros: opened_at,
            authorised_by: Some("player"),
        });
        if nonce == 3 {
            receipt = hex::encode(&bytes);
        }
        starts.push(draw.start);
        loots.push(loot);
        leaves.push(leaf_hash(&bytes));
    }
    let keys = ReceiptKeys::new(&"11".repeat(32), &[]).expect("key");
    let signed = keys.sign(&leaves);
    let mut digest = TranscriptDigest::new("z", 1);
    for leaf in &leaves {
        digest.push(leaf);
    }
    let (digest, count) = digest.finish();
    let n3 = Nonce::Counter {
        client_seed: "lucky",
        nonce: 3,
    };
    json!({
        "draw_seed": hex::encode(draw_seed(&seed, "z", "p", n3)),
        "starts": starts,
        "loots": loots,
        "receipt": receipt,
        "leaves": leaves.iter().map(hex::encode).collect::<Vec<_>>(),
        "root": signed[0].root,
        "public_key": hex::encode(keys.public_key().as_bytes()),
        "key_id": keys.key_id(),
        "batch_signature": signed[0].signature,
        "digest": hex::encode(digest),
        "transcript_signature": keys.sign_transcript(&digest, count),
    })
}

#[test]
fn trove_and_an_independent_implementation_compute_the_readmes_test_vectors() {
    let ours = trove_vectors();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay/replay.py");
    let out = std::process::Command::new("python3")
        .args([script, "--vectors"])
        .output()
        .expect("python3 runs (the replay needs python3 and python3-cryptography)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).expect("vectors JSON");
    assert_eq!(ours, theirs);

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let flat = readme.split_whitespace().collect::<String>();
    let mut shown = vec![];
    for (name, v) in ours.as_object().expect("object") {
        match v {
            Value::String(s) => shown.push((name.clone(), s.clone())),
            Value::Array(items) => {
                for item in items {
                    let text = match item {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    shown.push((name.clone(), text));
                }
            }
            other => shown.push((name.clone(), other.to_string())),
        }
    }
    for (name, value) in shown {
        // (Long values may be wrapped over lines in the README.)
        assert!(
            flat.contains(&value.split_whitespace().collect::<String>()),
            "README \"Provably fair draws\" does not show {name} = {value}"
        );
    }
}
