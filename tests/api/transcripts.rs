//! Epoch transcripts: after a reveal, every claim of the epoch, signed; a player's own
//! receipts catch a transcript that leaves out, renumbers or invents claims in their name.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Executor;
use trove::transcripts::audit;

use crate::helpers::{fresh_db_on, spawn_app_on, TestApp};
use crate::receipts::{keys, public};

async fn transcript(app: &TestApp, zone: &str, epoch: &str) -> (StatusCode, String) {
    let resp = app
        .client
        .get(format!(
            "{}/v1/zones/{zone}/epochs/{epoch}/transcript",
            app.base
        ))
        .bearer_auth(app.token("anyone"))
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn key_map(app: &TestApp) -> HashMap<String, ed25519_dalek::VerifyingKey> {
    keys(app)
        .await
        .iter()
        .map(|k| (k["key_id"].as_str().expect("id").to_owned(), public(k)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revealed_epochs_transcript_holds_every_claim_and_a_players_receipts_check_it() {
    let app = spawn_app_on(vec![fresh_db_on(0).await]).await;
    app.starter().await;
    let zone = "transcribed";
    app.spawn_zone(zone, 40, "starter").await;
    let (status, body) = transcript(&app, zone, "1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("epoch_not_revealed"));

    let alice = app.token("alice");
    let mut kept = Vec::new();
    for i in 0..5 {
        let r = app.claim(zone, &alice, Some(&format!("a{i}"))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        kept.push(r.body);
    }
    let for_alice = app
        .call(
            Method::POST,
            &format!("/v1/zones/{zone}/claims"),
            Some(&app.admin()),
            Some(json!({"player": "alice"})),
            &[],
        )
        .await;
    assert_eq!(for_alice.status, StatusCode::CREATED);
    for _ in 0..3 {
        assert_eq!(
            app.claim(zone, &app.token("bob"), None).await.status,
            StatusCode::CREATED
        );
    }
    let revealed = app.reveal(zone).await;
    let (status, text) = transcript(&app, zone, "1").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 1 + 9 + 1);
    assert_eq!(
        (&lines[0]["seed"], &lines[0]["draw_version"]),
        (&revealed.body["seed"], &json!(2))
    );
    assert_eq!(lines[10]["claims"], 9);
    // By player, then nonce.
    let order: Vec<(String, i64)> = lines[1..10]
        .iter()
        .map(|l| {
            (
                l["player"].as_str().expect("p").to_owned(),
                l["nonce"].as_i64().expect("n"),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let keys = key_map(&app).await;
    let clean = audit(&text, &kept, "alice", &keys);
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!((clean.claims, clean.receipts_checked), (9, 5));
    for (epoch, status) in [
        ("99", StatusCode::NOT_FOUND),
        ("x", StatusCode::BAD_REQUEST),
        ("0", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            transcript(&app, zone, epoch).await.0,
            status,
            "epoch {epoch}"
        );
    }

    // One field of one line changed in transit: the line's leaf and the digest give it away.
    let tampered = text.replacen("\"player\":\"bob\"", "\"player\":\"bobby\"", 1);
    assert!(!audit(&tampered, &kept, "alice", &keys).problems.is_empty());

    // A consistent rewrite by the operator: alice's nonce-2 claim deleted, her later ones
    // renumbered so the nonces stay gapless, and the transcript signed afresh. Her receipts
    // catch it both ways.
    let mut db = app.shard_db(0).await;
    let victim = kept[2]["claim_id"].as_str().expect("id").to_owned();
    sqlx::query("DELETE FROM claims WHERE claim_id = $1::uuid")
        .bind(&victim)
        .execute(&mut db)
        .await
        .expect("delete");
    db.execute(
        "UPDATE claims SET nonce = nonce - 1 WHERE player = 'alice' AND seed_epoch = 1 AND nonce > 2",
    )
    .await
    .expect("renumber");
    let (_, rewritten) = transcript(&app, zone, "1").await;
    let caught = audit(&rewritten, &kept, "alice", &keys);
    assert!(
        caught
            .problems
            .iter()
            .any(|p| p.contains(&victim) && p.contains("missing")),
        "{:?}",
        caught.problems
    );
    assert!(
        caught.problems.iter().any(|p| p.contains("has no receipt")),
        "the renumbered claims are not the ones she was answered: {:?}",
        caught.problems
    );
    assert!(
        !caught
            .problems
            .iter()
            .any(|p| p.contains("signature") || p.contains("was due")),
        "the rewrite itself is consistent: {:?}",
        caught.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_claim_lands_in_an_epoch_after_its_reveal() {
    let app = Arc::new(spawn_app_on(vec![fresh_db_on(0).await]).await);
    app.starter().await;
    let zone = "reveal-race";
    app.spawn_zone(zone, 2000, "starter").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let t = app.token(&format!("racer{w}"));
            let mut answered = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = app.claim(zone, &t, None).await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
                answered.push(r.body);
            }
            answered
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut first_looks = Vec::new();
    for epoch in 1..=3 {
        assert_eq!(app.reveal(zone).await.status, StatusCode::OK);
        // Read at once, while claims keep coming: final already.
        first_looks.push((epoch, transcript(&app, zone, &epoch.to_string()).await.1));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.expect("task"));
    }
    let keys = key_map(&app).await;
    for (epoch, first) in first_looks {
        let later = transcript(&app, zone, &epoch.to_string()).await.1;
        assert_eq!(first, later, "epoch {epoch} changed after its reveal");
        let of_epoch: Vec<Value> = answered
            .iter()
            .filter(|a| a["seed_epoch"] == epoch)
            .cloned()
            .collect();
        assert!(!of_epoch.is_empty());
        for w in 0..8 {
            let a = audit(&first, &of_epoch, &format!("racer{w}"), &keys);
            assert!(a.problems.is_empty(), "epoch {epoch}: {:?}", a.problems);
        }
    }
}

/// Runs the independent replay (tests/replay/replay.py: Python, its own HMAC and Merkle code,
/// the `cryptography` package's ChaCha20 and Ed25519) on the files in `dir`.
fn python_replay(dir: &std::path::Path) -> (bool, Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay/replay.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir)
        .output()
        .expect("python3 runs (the replay needs python3 and python3-cryptography)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let summary = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "replay.py printed {text:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_independent_replay_in_python_matches_every_claim_receipt_and_signature() {
    let mut config =
        trove::config::Config::for_shards(vec![fresh_db_on(0).await], crate::helpers::SECRET);
    // One claim statement at a time: concurrent claims share batches, so receipts carry
    // real Merkle paths.
    config.claim_concurrency = 1;
    let app = Arc::new(crate::helpers::spawn_app_with(config).await);
    app.starter().await;
    let zone = "replayed";
    app.spawn_zone(zone, 300, "starter").await;
    // Client seeds set after the commitment was published, one per player but the last.
    for p in 0..5 {
        let seed = format!("seed-of-player-{p}");
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/zones/{zone}/players/p{p}/client-seed"),
                Some(&app.token(&format!("p{p}"))),
                Some(json!({ "client_seed": seed })),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let mut tasks = Vec::new();
    for p in 0..6 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            let t = app.token(&format!("p{p}"));
            let mut kept = Vec::new();
            for i in 0..20 {
                let r = app.claim(zone, &t, Some(&format!("k{i}"))).await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
                kept.push(r.body);
            }
            kept
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.expect("task"));
    }
    assert!(answers
        .iter()
        .any(|a| a["receipt"]["leaf_count"].as_u64() > Some(1)));
    app.reveal(zone).await;
    let dir = std::env::temp_dir().join(format!("trove-replay-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (_, text) = transcript(&app, zone, "1").await;
    std::fs::write(dir.join("transcript.ndjson"), &text).expect("write");
    let keys = app
        .call(Method::GET, "/.well-known/trove-keys.json", None, None, &[])
        .await;
    std::fs::write(dir.join("keys.json"), keys.body.to_string()).expect("write");
    let (table, _) = app.table_version("starter", 1).await;
    std::fs::write(
        dir.join("tables.json"),
        json!({ "starter@1": table }).to_string(),
    )
    .expect("write");
    let kept: String = answers.iter().map(|a| format!("{a}\n")).collect();
    std::fs::write(dir.join("answers.ndjson"), kept).expect("write");

    let (ok, summary) = python_replay(&dir);
    assert!(ok, "{summary}");
    assert_eq!(
        (&summary["claims"], &summary["receipts"]),
        (&json!(120), &json!(120))
    );
    assert!(
        // 12 claim fields of 3 receipts and of 2 transcript lines, the proofs of 3
        // receipts (at least 6 parts each), the header's zone and epoch, the trailer's 4, a
        // seed.
        summary["tampered_rejected"].as_u64() >= Some(85),
        "{summary}"
    );

    // The replay can fail: one claim's loot rewritten in the transcript (its leaf too).
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // (An item the table does not have, so it differs from whatever was drawn.)
    lines[5]["loot"] = json!([{"item": "forged", "qty": 999, "rarity": "legendary"}]);
    let forged: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("transcript.ndjson"), forged).expect("write");
    let (ok, summary) = python_replay(&dir);
    assert!(!ok, "a rewritten loot went unnoticed: {summary}");
    let _ = std::fs::remove_dir_all(&dir);
}
