//! Growing a deployment: a zone lives where it was created, whatever the hash says after a
//! shard is appended; names and loot table versions stay unique; an instance whose shard
//! list disagrees with what the shards record refuses to serve.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trove::config::Config;
use trove::shards::shard_index;

use crate::helpers::{fresh_db_on, run_trove, spawn_app_on, TestApp, SECRET};
use crate::realtime::{connect, resume_on, subscribe};

/// Names (from `prefix`) whose hash over 2 shards is `two` and over 3 shards is `three`.
fn names(prefix: &str, two: usize, three: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|z| shard_index(z, 2) == two && shard_index(z, 3) == three)
        .take(n)
        .collect()
}

async fn zone(app: &TestApp, zone: &str) -> Value {
    app.zone(zone).await
}

/// Rows in table `table` (`zones` or `loot_tables`) of one shard with this name.
async fn rows_named(app: &TestApp, shard: usize, table: &str, name: &str) -> i64 {
    let mut db = app.shard_db(shard).await;
    let sql = format!("SELECT count(*) FROM {table} WHERE name = $1");
    sqlx::query_scalar(&sql)
        .bind(name)
        .fetch_one(&mut db)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appending_a_shard_orphans_no_zone_and_keeps_names_and_versions_unique() {
    let two = vec![fresh_db_on(0).await, fresh_db_on(1).await];
    let before = spawn_app_on(two.clone()).await;
    // A loot table whose hash home moves to the new shard, and zones on both shards, some of
    // which the hash will then name shard 2 (they must stay where they are).
    let table = names("tbl", 0, 2, 1).remove(0);
    let entries =
        json!([{"item": "gold", "weight": 1, "min_qty": 1, "max_qty": 5, "rarity": "common"}]);
    assert_eq!(before.put_table(&table, entries).await.body["version"], 1);
    let moved_hash: Vec<String> = [names("zm", 0, 2, 2), names("zm", 1, 2, 2)].concat();
    let stays: Vec<String> = [names("zs", 0, 0, 2), names("zs", 1, 1, 2)].concat();
    let all: Vec<String> = moved_hash.iter().chain(&stays).cloned().collect();
    for z in &all {
        assert_eq!(
            before.spawn_zone(z, 9, &table).await.status,
            StatusCode::CREATED
        );
        let c = before
            .claim(z, &before.token("early"), Some("k-before"))
            .await;
        assert_eq!(c.status, StatusCode::CREATED, "{:?}", c.body);
    }
    let mut ws = connect(&before, "watcher").await;
    let old_position = subscribe(&mut ws, &[&moved_hash[0]]).await["position"]
        .as_str()
        .expect("position")
        .to_owned();
    let _ = ws.close(None).await;

    // The documented way to add capacity: register the new database, then list it.
    let third = fresh_db_on(0).await;
    let shards = two.join(",");
    let env = [
        ("TROVE_SHARDS", shards.as_str()),
        ("TROVE_JWT_SECRET", SECRET),
    ];
    let (ok, out) = run_trove(&["shards", "add", &third], &env).await;
    assert!(ok && out.contains("shard 2 is registered"), "{out}");
    // Adding it again changes nothing.
    let (ok, out) = run_trove(&["shards", "add", &third], &env).await;
    assert!(ok && out.contains("shard 2 is registered"), "{out}");
    before.shutdown();

    // An instance still listing two shards, or listing them out of order, refuses to serve.
    for (urls, why) in [
        (two.clone(), "lists 2"),
        (
            vec![two[1].clone(), two[0].clone(), third.clone()],
            "out of order",
        ),
    ] {
        let config = Config::for_shards(urls, SECRET);
        let engine = trove::app::engine(&config).expect("engine");
        let keys = trove::auth::JwtKeys::new(SECRET.as_bytes()).expect("keys");
        let refused = trove::app::Application::bind(&config, engine, keys).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(why), "{why}: {message}");
    }

    let three: Vec<String> = two.iter().cloned().chain([third]).collect();
    let app = spawn_app_on(three.clone()).await;
    let (ok, out) = run_trove(&["shards"], &[("TROVE_SHARDS", &three.join(","))]).await;
    assert!(ok, "{out}");
    assert!(out.contains("shard 2 ") && out.contains("0 zones"), "{out}");
    for z in &all {
        let v = zone(&app, z).await;
        assert_eq!(v["shard"], shard_index(z, 2), "{z} stays where it was: {v}");
        assert_eq!(
            (v["total"].as_i64(), v["opened"].as_i64()),
            (Some(9), Some(1)),
            "{v}"
        );
        // A retry from before the add replays; a spawn grows the same zone.
        let again = app.claim(z, &app.token("early"), Some("k-before")).await;
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        let grown = app.spawn_zone(z, 3, &table).await;
        assert_eq!(grown.body["remaining"], 11, "{:?}", grown.body);
    }
    for z in &moved_hash {
        assert_eq!(rows_named(&app, 2, "zones", z).await, 0, "no second {z}");
    }
    // Every chest of every zone opens once: 12 chests, 12 distinct claims, then exhausted.
    for z in &all {
        let t = app.token("drainer");
        let mut chests = HashSet::new();
        for _ in 0..11 {
            let r = app.claim(z, &t, None).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            assert!(chests.insert(r.body["chest_id"].as_i64()), "{:?}", r.body);
        }
        assert_eq!(app.claim(z, &t, None).await.code(), "zone_exhausted");
        assert_eq!(app.ledger_count(z).await, 12);
    }
    // New zones are placed by the hash over three shards.
    let fresh = names("znew", 0, 2, 1).remove(0);
    assert_eq!(
        app.spawn_zone(&fresh, 2, &table).await.status,
        StatusCode::CREATED
    );
    assert_eq!(zone(&app, &fresh).await["shard"], 2);

    // The loot table is still numbered by its first home: version 2 follows version 1.
    let changed =
        json!([{"item": "gem", "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "rare"}]);
    assert_eq!(app.put_table(&table, changed).await.body["version"], 2);
    let admin = app.admin();
    let v1 = app
        .call(
            Method::GET,
            &format!("/v1/loot-tables/{table}?version=1"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(v1.body["entries"][0]["item"], "gold", "{:?}", v1.body);
    assert_eq!(
        rows_named(&app, 0, "loot_tables", &table).await,
        2,
        "both versions at home"
    );
    assert_eq!(
        rows_named(&app, 2, "loot_tables", &table).await,
        1,
        "only the copy a spawn made"
    );

    // A position from before the add still resumes (the new shard's part from its start).
    let reply = resume_on(&app, "watcher", &moved_hash[0], &old_position).await;
    assert_eq!(
        reply["type"], "chest_opened",
        "the replay comes first: {reply}"
    );
}

/// Chests per shard, from `trove shards`-like counts of live zones.
async fn chests_per_shard(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for shard in 0..app.shard_urls.len() {
        let mut db = app.shard_db(shard).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(chest_count), 0)::bigint FROM zones WHERE state = 'live'",
        )
        .fetch_one(&mut db)
        .await
        .expect("chests");
        out.push(n);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalance_after_an_add_evens_the_shards_online_and_a_drain_empties_one() {
    let two = vec![fresh_db_on(0).await, fresh_db_on(1).await];
    let before = spawn_app_on(two.clone()).await;
    before.starter().await;
    let zones: Vec<String> = (0..12).map(|i| format!("bal-{i}")).collect();
    for z in &zones {
        before.spawn_zone(z, 100, "starter").await;
    }
    let mut ws = connect(&before, "resumer").await;
    let old_position = subscribe(&mut ws, &[&zones[0]]).await["position"]
        .as_str()
        .expect("position")
        .to_owned();
    let third = fresh_db_on(1).await;
    let env2 = [
        ("TROVE_SHARDS", two.join(",")),
        ("TROVE_JWT_SECRET", SECRET.into()),
    ];
    let refs: Vec<(&str, &str)> = env2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(run_trove(&["shards", "add", &third], &refs).await.0);
    before.shutdown();

    let three: Vec<String> = two.iter().cloned().chain([third]).collect();
    let app = std::sync::Arc::new(spawn_app_on(three.clone()).await);
    let env3 = [
        ("TROVE_SHARDS", three.join(",")),
        ("TROVE_JWT_SECRET", SECRET.into()),
    ];
    let refs: Vec<(&str, &str)> = env3.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, plan) = run_trove(&["rebalance"], &refs).await;
    assert!(
        ok && plan.contains("move ") && plan.contains("a plan only"),
        "{plan}"
    );
    assert_eq!(chests_per_shard(&app).await[2], 0, "a plan moves nothing");
    // Claims keep coming (keyed) while the plan is carried out.
    let claimer = {
        let (app, zones) = (std::sync::Arc::clone(&app), zones.clone());
        tokio::spawn(async move {
            let t = app.token("during");
            let mut acks = Vec::new();
            for i in 0..120 {
                let (z, key) = (&zones[i % zones.len()], format!("r{i}"));
                let mut r = app.claim(z, &t, Some(&key)).await;
                while r.code() == "zone_moving" {
                    r = app.claim(z, &t, Some(&key)).await;
                }
                assert!(r.status.is_success(), "{:?}", r.body);
                acks.push((z.clone(), r.body["claim_id"].clone()));
            }
            acks
        })
    };
    let (ok, out) = run_trove(&["rebalance", "--apply", "--pause-ms", "0"], &refs).await;
    assert!(ok, "{out}");
    let acks = claimer.await.expect("claims");
    // Every move the command made is in the audit log, by the command line's user.
    let log = app
        .engine
        .audit_log(None, chrono::DateTime::UNIX_EPOCH, None, 1000)
        .await
        .expect("audit log");
    let moves: Vec<_> = log
        .entries
        .iter()
        .filter(|e| e.action == "move_zone")
        .collect();
    assert_eq!(
        moves.len(),
        out.matches("moved ").count(),
        "{out}\n{moves:#?}"
    );
    assert!(moves
        .iter()
        .all(|e| e.outcome == "ok" && e.actor.starts_with("cli:")));
    let per = chests_per_shard(&app).await;
    let mean = per.iter().sum::<i64>() as f64 / 3.0;
    assert!(
        per.iter().all(|&c| (c as f64 - mean).abs() <= mean * 0.1),
        "{per:?}\n{out}"
    );
    let mut total = 0;
    for z in &zones {
        total += app.ledger_count(z).await;
        assert_eq!(
            app.engine.verify(z).await.expect("verify").mismatch_count,
            0
        );
    }
    assert_eq!(total, acks.len() as i64);
    // A position from before the add still resumes (or gets a snapshot if its zone moved).
    let reply = resume_on(&app, "resumer", &zones[0], &old_position).await;
    assert!(
        reply["type"] == "subscribed" || reply["type"] == "chest_opened",
        "{reply}"
    );

    // A drain empties shard 1, and new zones stay off it.
    let (ok, out) = run_trove(&["shards", "drain", "1", "--apply"], &refs).await;
    assert!(ok, "{out}");
    assert_eq!(chests_per_shard(&app).await[1], 0, "{out}");
    let newcomer = names("after-drain", 1, 1, 1).remove(0);
    assert_eq!(
        app.spawn_zone(&newcomer, 5, "starter").await.status,
        StatusCode::CREATED
    );
    assert_ne!(zone(&app, &newcomer).await["shard"], 1);
    for z in &zones {
        assert_eq!(app.zone(z).await["total"], 100, "{z}");
    }
}
