//! Signed receipts: every claim answer carries a Merkle inclusion proof and the signature of
//! its batch's root, checkable by anyone against the keys at `/.well-known/trove-keys.json`.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use trove::config::Config;
use trove::receipts::verify;
use trove::transcripts::{fields_of, receipt_of};

use crate::helpers::{fresh_db_on, spawn_app_with, TestApp, SECRET};

/// The receipt an answer carries checks out against the fields the answer shows.
fn check(answer: &Value, key: &VerifyingKey) -> bool {
    match (fields_of(answer), receipt_of(answer)) {
        (Some(fields), Some(receipt)) => verify(&receipt, &fields, key),
        _ => false,
    }
}

pub(crate) async fn keys(app: &TestApp) -> Vec<Value> {
    let r = app
        .call(Method::GET, "/.well-known/trove-keys.json", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["keys"].as_array().expect("keys").clone()
}

pub(crate) fn public(key: &Value) -> VerifyingKey {
    let bytes: [u8; 32] = hex::decode(key["public_key"].as_str().expect("hex"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    VerifyingKey::from_bytes(&bytes).expect("key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_claims_carry_receipts_anyone_can_check_and_no_field_can_be_changed() {
    let url = fresh_db_on(0).await;
    let first_key = "5e".repeat(32);
    let mut config = Config::for_shards(vec![url.clone()], SECRET);
    config.receipt_key = Some(first_key.clone());
    // One claim statement at a time, so concurrent claims share statements (and receipts'
    // trees) for certain.
    config.claim_concurrency = 1;
    let app = Arc::new(spawn_app_with(config.clone()).await);
    app.starter().await;
    app.spawn_zone("receipts", 200, "starter").await;
    let listed = keys(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["algorithm"], "Ed25519");
    let key = public(&listed[0]);

    let mut tasks = Vec::new();
    for i in 0..48 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            let r = app
                .claim(
                    "receipts",
                    &app.token(&format!("r{}", i % 12)),
                    Some(&format!("k{i}")),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.body
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    assert!(
        answers
            .iter()
            .any(|a| a["receipt"]["leaf_count"].as_u64() > Some(1)),
        "some claims shared a statement"
    );
    for a in &answers {
        assert!(check(a, &key), "{a}");
        assert_eq!(a["receipt"]["key_id"], listed[0]["key_id"]);
    }
    // A replay carries a receipt for the same claim (the same leaf).
    let again = app.claim("receipts", &app.token("r0"), Some("k0")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(check(&again.body, &key));
    assert_eq!(again.body["receipt"]["leaf"], answers[0]["receipt"]["leaf"]);

    // Any one field changed, and the receipt no longer proves it.
    let victim = answers
        .iter()
        .find(|a| a["receipt"]["leaf_count"].as_u64() > Some(1))
        .expect("a batched answer");
    let changes: [(&str, Value); 9] = [
        (
            "chest_id",
            Value::from(victim["chest_id"].as_i64().unwrap_or(0) + 1),
        ),
        ("player", "someone-else".into()),
        (
            "nonce",
            Value::from(victim["nonce"].as_i64().unwrap_or(0) + 1),
        ),
        ("client_seed", "x".into()),
        ("authorised_by", "admin:ops".into()),
        (
            "loot",
            serde_json::json!([{"item": "forged", "qty": 999, "rarity": "legendary"}]),
        ),
        ("opened_at", "2020-01-01T00:00:00Z".into()),
        ("seed_epoch", 9.into()),
        ("zone", "elsewhere".into()),
    ];
    for (field, value) in changes {
        let mut forged = victim.clone();
        forged[field] = value;
        assert!(!check(&forged, &key), "{field} changed, still verified");
    }
    for part in ["root", "signature"] {
        let mut forged = victim.clone();
        let s = forged["receipt"][part].as_str().expect("hex").to_owned();
        let flipped = if s.starts_with('0') { "1" } else { "0" };
        forged["receipt"][part] = format!("{flipped}{}", &s[1..]).into();
        assert!(!check(&forged, &key), "{part} changed, still verified");
    }
    let mut moved = victim.clone();
    moved["receipt"]["leaf_index"] =
        (victim["receipt"]["leaf_index"].as_u64().unwrap_or(0) ^ 1).into();
    assert!(!check(&moved, &key), "another leaf index");

    // Rotation: a new key signs from now on; the old one is still listed as retired, so
    // receipts it signed keep verifying.
    let mut rotated = config;
    rotated.receipt_key = Some("7a".repeat(32));
    rotated.receipt_retired_keys = vec![listed[0]["public_key"].as_str().expect("hex").to_owned()];
    let after = spawn_app_with(rotated).await;
    let listed_after = keys(&after).await;
    assert_eq!(listed_after.len(), 2);
    assert_eq!(
        (&listed_after[0]["current"], &listed_after[1]["current"]),
        (&true.into(), &false.into())
    );
    assert_eq!(listed_after[1]["key_id"], listed[0]["key_id"]);
    assert!(check(&answers[3], &public(&listed_after[1])));
    let fresh = after.claim("receipts", &after.token("late"), None).await;
    assert!(check(&fresh.body, &public(&listed_after[0])));
    assert!(
        !check(&fresh.body, &key),
        "the retired key signs nothing new"
    );
}
