//! Deterministic draws, commit-reveal, and `verify` catching a tampered ledger.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use trove::fairness::{Draw, Nonce};
use trove::shards::shard_index;

use crate::helpers::{spawn_app, zone_on};

#[tokio::test]
async fn revealed_seeds_replay_every_draw_and_verify_catches_tampering() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "fair");
    let spawned = app.spawn_zone(&zone, 50, "starter").await;
    assert_eq!(
        spawned.body,
        json!({"zone": zone, "spawned": 50, "remaining": 50})
    );
    let before = app.zone(&zone).await;
    let commitment = before["seed_commitment"]
        .as_str()
        .expect("commitment")
        .to_owned();
    assert!(before["seed"].is_null());

    let mut claims = Vec::new();
    for i in 0..10 {
        let t = app.token(&format!("p{i}"));
        let r = app.claim(&zone, &t, None).await;
        assert_eq!(r.status, StatusCode::CREATED);
        claims.push(r.body);
    }
    // Reveal: the seed matches what was committed, and a new epoch begins.
    let admin = app.admin();
    let revealed = app
        .call(
            Method::POST,
            &format!("/v1/zones/{zone}/reveal"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(revealed.status, StatusCode::OK);
    let seed = hex::decode(revealed.body["seed"].as_str().expect("seed")).expect("hex");
    assert_eq!(hex::encode(Sha256::digest(&seed)), commitment);
    assert_eq!(revealed.body["next_epoch"], 2);
    let after = app.zone(&zone).await;
    assert_ne!(after["seed_commitment"], json!(commitment));
    assert_eq!(after["epochs"][0]["seed"], revealed.body["seed"]);
    assert_eq!(after["seed"], revealed.body["seed"]);

    // The table changes after the draws: a new version, which changes nothing already drawn.
    let changed = app
        .call(
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&admin),
            Some(json!({"entries": [{"item": "rock", "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "common"}]})),
            &[],
        )
        .await;
    assert_eq!(changed.body["version"], 2);

    // Anyone with the revealed seed replays each claim's loot from its public fields and the
    // loot table version it names, all read through the API.
    let (_, table) = app.table_version("starter", 1).await;
    for c in &claims {
        assert_eq!(
            (&c["loot_table"], &c["loot_table_version"]),
            (&json!("starter"), &json!(1))
        );
        // Each player's first claim in the epoch: nonce 0, no client seed set.
        assert_eq!((&c["nonce"], &c["client_seed"]), (&json!(0), &json!("")));
        let nonce = Nonce::Counter {
            client_seed: "",
            nonce: 0,
        };
        let draw = Draw::new(&seed, &zone, c["player"].as_str().expect("player"), nonce);
        assert_eq!(json!(draw.loot(&table)), c["loot"]);
        assert_eq!(c["seed_epoch"], 1);
        // Same seed material, same draw.
        assert_eq!(
            draw.start,
            Draw::new(&seed, &zone, c["player"].as_str().expect("p"), nonce).start
        );
    }
    // Claims after the reveal draw from the new, unrevealed epoch.
    let t = app.token("late");
    let late = app.claim(&zone, &t, None).await;
    assert_eq!(late.body["seed_epoch"], 2);

    let report = app.engine.verify(&zone).await.expect("verify");
    assert_eq!(
        (report.claims_checked, report.claims_with_revealed_seed),
        (11, 10)
    );
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    let cli = app.verify_cli(&zone);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // Tamper with one recorded draw directly in SQL.
    let victim = claims[3]["claim_id"].as_str().expect("id").to_owned();
    let mut db = app.shard_db(shard_index(&zone, 2)).await;
    sqlx::query("UPDATE claims SET loot = '[{\"item\":\"crown\",\"qty\":1,\"rarity\":\"legendary\"},{\"item\":\"crown\",\"qty\":1,\"rarity\":\"legendary\"}]' WHERE claim_id = $1::uuid")
        .bind(&victim)
        .execute(&mut db)
        .await
        .expect("tamper");
    let report = app.engine.verify(&zone).await.expect("verify");
    assert_eq!((report.mismatch_count, report.mismatches.len()), (1, 1));
    assert_eq!(report.mismatches[0].claim_id.to_string(), victim);
    let cli = app.verify_cli(&zone);
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stdout).contains(&victim));
}
