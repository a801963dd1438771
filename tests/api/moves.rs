//! Moving a zone to another shard online: it takes everything it owns, answers exactly as
//! before, and a mover that dies at any step leaves it served by exactly one shard.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trove::moves::{MoveOptions, ZONE_TABLES};

use crate::helpers::{
    fresh_db_on, run_trove, spawn_app_on, spawn_app_with, zone_on, RedisServer, TestApp, SECRET,
};
use crate::realtime::{connect, next, resume_on, subscribe};

/// Everything a client can read about a zone and a player's claims in it.
async fn answers(app: &TestApp, zone: &str, player: &str) -> Value {
    let admin = app.admin();
    let get = |path: String| {
        let admin = admin.clone();
        async move {
            app.call(Method::GET, &path, Some(&admin), None, &[])
                .await
                .body
        }
    };
    let mut view = app.zone(zone).await;
    view["shard"] = Value::Null;
    let history: Vec<Value> = get(format!("/v1/players/{player}/claims?limit=500")).await["claims"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["zone"] == zone)
        .collect();
    json!({
        "zone": view,
        "opened": get(format!("/v1/zones/{zone}/chests?state=opened&limit=1000")).await,
        "unopened": get(format!("/v1/zones/{zone}/chests?state=unopened&limit=1000")).await,
        "history": history,
        "table_v1": get("/v1/loot-tables/starter?version=1".into()).await,
    })
}

/// The state of the zone's copy on a shard, if it has one.
async fn state_on(app: &TestApp, shard: usize, zone: &str) -> Option<String> {
    let mut db = app.shard_db(shard).await;
    sqlx::query_scalar("SELECT state FROM zones WHERE name = $1")
        .bind(zone)
        .fetch_optional(&mut db)
        .await
        .expect("state")
}

/// Rows of the zone on a shard, in every table that holds zone rows.
async fn rows_on(app: &TestApp, shard: usize, zone: &str) -> i64 {
    let mut db = app.shard_db(shard).await;
    let id: Option<i32> = sqlx::query_scalar("SELECT id FROM zones WHERE name = $1")
        .bind(zone)
        .fetch_optional(&mut db)
        .await
        .expect("zone id");
    let Some(id) = id else { return 0 };
    let mut n = 1;
    for t in ZONE_TABLES.iter().filter(|t| **t != "zones") {
        let c: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t} WHERE zone_id = $1"))
            .bind(id)
            .fetch_one(&mut db)
            .await
            .expect("count");
        n += c;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_with_a_zone_id_is_one_a_move_copies() {
    let app = spawn_app_on(vec![fresh_db_on(0).await, fresh_db_on(1).await]).await;
    let mut db = app.shard_db(0).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT table_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name = 'zone_id'",
    )
    .fetch_all(&mut db)
    .await
    .expect("tables");
    assert!(tables.len() >= 6, "{tables:?}");
    for t in tables {
        assert!(
            ZONE_TABLES.contains(&t.as_str()),
            "{t} has a zone_id but moves do not copy it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_zone_answers_exactly_as_before_and_keeps_serving_on_its_new_shard() {
    let app = spawn_app_on(vec![fresh_db_on(0).await, fresh_db_on(1).await]).await;
    app.starter().await;
    let zone = zone_on(0, "mover");
    app.spawn_zone(&zone, 120, "starter").await;
    let t = app.token("walker");
    let mut keyed = Vec::new();
    for i in 0..30 {
        let key = format!("k{i}");
        let r = app.claim(&zone, &t, Some(&key)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        keyed.push((key, r.body));
    }
    let reveal = app.reveal(&zone).await;
    assert_eq!(reveal.status, StatusCode::OK, "{:?}", reveal.body);
    for _ in 0..5 {
        assert_eq!(app.claim(&zone, &t, None).await.status, StatusCode::CREATED);
    }
    // A second version of the table, so the zone's chests use two.
    let changed =
        json!([{"item": "gem", "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "rare"}]);
    assert_eq!(app.put_table("starter", changed).await.body["version"], 2);
    app.spawn_zone(&zone, 20, "starter").await;
    // A client seed set before the move (a nonce row with no claim yet).
    let seeded = app
        .call(
            Method::PUT,
            &format!("/v1/zones/{zone}/players/seeder/client-seed"),
            Some(&app.token("seeder")),
            Some(json!({"client_seed": "carried-along"})),
            &[],
        )
        .await;
    assert_eq!(seeded.status, StatusCode::OK, "{:?}", seeded.body);
    let before = answers(&app, &zone, "walker").await;

    let report = app
        .engine
        .move_zone(
            &zone,
            1,
            &MoveOptions {
                batch: 50,
                ..MoveOptions::default()
            },
        )
        .await
        .expect("move");
    assert_eq!((report.from, report.to), (0, 1));
    assert_eq!((report.chests, report.claims), (105, 35), "{report:?}");

    assert_eq!(app.zone(&zone).await["shard"], 1);
    assert_eq!(answers(&app, &zone, "walker").await, before);
    // The old copy serves nothing and stays (for the ledger tails) until cleaned up.
    assert_eq!(state_on(&app, 0, &zone).await.as_deref(), Some("moved"));
    let young = app
        .engine
        .clean_moved(std::time::Duration::from_secs(60))
        .await;
    assert_eq!(young.expect("cleanup"), 0);
    let old = app.engine.clean_moved(std::time::Duration::ZERO).await;
    assert_eq!(old.expect("cleanup"), 1);
    assert_eq!(
        rows_on(&app, 0, &zone).await,
        0,
        "nothing of the zone left on shard 0"
    );
    let verified = app.engine.verify(&zone).await.expect("verify");
    assert_eq!((verified.claims_checked, verified.mismatch_count), (35, 0));
    // Keys from before the move replay the first answer.
    for (key, first) in &keyed {
        let again = app.claim(&zone, &t, Some(key)).await;
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        assert_eq!(&again.body, first);
    }
    // The players' nonces and client seeds came along.
    let position = app
        .call(
            Method::GET,
            &format!("/v1/zones/{zone}/players/seeder/client-seed"),
            Some(&app.token("seeder")),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (&position.body["client_seed"], &position.body["next_nonce"]),
        (&json!("carried-along"), &json!(0))
    );
    // And the zone keeps serving there: every chest left opens once, the walker's nonces in
    // epoch 2 going on from the 5 before the move.
    let mut opened = BTreeSet::new();
    loop {
        let r = app.claim(&zone, &t, None).await;
        if r.status != StatusCode::CREATED {
            assert_eq!(r.code(), "zone_exhausted", "{:?}", r.body);
            break;
        }
        assert_eq!(r.body["nonce"], 5 + opened.len(), "{:?}", r.body);
        assert!(opened.insert(r.body["chest_id"].as_i64().expect("id")));
    }
    assert_eq!(opened.len(), 105);
    assert_eq!(app.ledger_count(&zone).await, 140);
    // Moving it back works the same way.
    app.engine
        .move_zone(&zone, 0, &MoveOptions::default())
        .await
        .expect("move back");
    assert_eq!(app.zone(&zone).await["remaining"], 0);
    assert_eq!(app.ledger_count(&zone).await, 140);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_killed_after_any_transaction_leaves_one_serving_shard_and_a_rerun_finishes() {
    let urls = vec![fresh_db_on(0).await, fresh_db_on(1).await];
    let app = spawn_app_on(urls.clone()).await;
    app.starter().await;
    let shards = urls.join(",");
    let env = |crash: &str| -> Vec<(&str, String)> {
        vec![
            ("TROVE_SHARDS", shards.clone()),
            ("TROVE_JWT_SECRET", SECRET.into()),
            ("TROVE_MOVE_CRASH_AFTER", crash.into()),
        ]
    };
    let mut crash_points = 0;
    for crash in 1.. {
        let zone = format!("crash-{crash}");
        let zone = (0..)
            .map(|i| format!("{zone}-{i}"))
            .find(|z| trove::shards::shard_index(z, 2) == 0)
            .expect("a name on shard 0");
        app.spawn_zone(&zone, 30, "starter").await;
        let t = app.token("victim");
        for i in 0..10 {
            let key = format!("pre-{i}");
            assert_eq!(
                app.claim(&zone, &t, Some(&key)).await.status,
                StatusCode::CREATED
            );
        }
        let args = ["zones", "move", &zone, "--to", "1", "--batch", "4"];
        let crash_env = env(&crash.to_string());
        let refs: Vec<(&str, &str)> = crash_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, out) = run_trove(&args, &refs).await;
        if ok {
            // No crash point left: the move ran to its end.
            assert!(out.contains("moved"), "{out}");
            break;
        }
        assert!(out.contains(&format!("crash point {crash}")), "{out}");
        crash_points += 1;
        // Exactly one shard serves it, with nothing lost: claims work or wait for the move.
        let r = app.claim(&zone, &t, Some("pre-0")).await;
        assert!(
            r.status == StatusCode::OK || r.code() == "zone_moving",
            "after crash point {crash}: {:?}",
            r.body
        );
        let live: i64 = {
            let mut n = 0;
            for shard in 0..2 {
                let mut db = app.shard_db(shard).await;
                let c: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM zones WHERE name = $1 AND state = 'live'",
                )
                .bind(&zone)
                .fetch_one(&mut db)
                .await
                .expect("count");
                n += c;
            }
            n
        };
        assert!(live <= 1, "after crash point {crash}: {live} live copies");
        // Running the command again finishes the move.
        let plain = env("");
        let refs: Vec<(&str, &str)> = plain.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, out) = run_trove(&args, &refs).await;
        assert!(
            ok && out.contains("moved"),
            "rerun after crash point {crash}: {out}"
        );
        assert_eq!(
            app.zone(&zone).await["shard"],
            1,
            "after crash point {crash}"
        );
        let old = state_on(&app, 0, &zone).await;
        assert_eq!(old.as_deref(), Some("moved"), "after crash point {crash}");
        app.engine
            .clean_moved(std::time::Duration::ZERO)
            .await
            .expect("cleanup");
        assert_eq!(
            rows_on(&app, 0, &zone).await,
            0,
            "after crash point {crash}"
        );
        for i in 0..10 {
            let again = app.claim(&zone, &t, Some(&format!("pre-{i}"))).await;
            assert_eq!(again.status, StatusCode::OK, "after crash point {crash}");
        }
        let fresh = app.claim(&zone, &t, None).await;
        assert_eq!(
            fresh.status,
            StatusCode::CREATED,
            "after crash point {crash}"
        );
        assert_eq!(app.ledger_count(&zone).await, 11);
        let verified = app.engine.verify(&zone).await.expect("verify");
        assert_eq!(verified.mismatch_count, 0);
    }
    // A zone of 20 unopened chests and 10 claims, in batches of 4: the move's start (1), the
    // target copy (1) and its loot table (1), 5 chest batches, 3 ledger batches (the player
    // set no client seed, so there is no row of theirs to copy: their nonces are the
    // ledger's), the fence (1) and its phase (1), the last sync (1), the target switch (1),
    // the catalog switch (1), marking the source's copy moved (1), and the end (1).
    assert_eq!(crash_points, 18, "crash points");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zones_moved_again_and_again_under_a_keyed_claim_storm_lose_nothing() {
    let redis = RedisServer::start().await;
    // Three shards (the third a second database on the first cluster).
    let urls = vec![
        fresh_db_on(0).await,
        fresh_db_on(1).await,
        fresh_db_on(0).await,
    ];
    let app = Arc::new(spawn_app_with(crate::redis::config(&urls, &redis)).await);
    app.starter().await;
    let zones: Vec<String> = (0..6).map(|i| format!("storm-{i}")).collect();
    for z in &zones {
        assert_eq!(
            app.spawn_zone(z, 300, "starter").await.status,
            StatusCode::CREATED
        );
    }
    let storming = Arc::new(AtomicBool::new(true));
    let mover = {
        let (app, zones, storming) = (Arc::clone(&app), zones.clone(), Arc::clone(&storming));
        tokio::spawn(async move {
            let opts = MoveOptions {
                batch: 100,
                ..MoveOptions::default()
            };
            let mut moves = 0;
            while storming.load(Ordering::Relaxed) || moves < 6 {
                let z = &zones[moves % zones.len()];
                let from = app.zone(z).await["shard"].as_u64().expect("shard") as usize;
                let r = app
                    .engine
                    .move_zone(z, (from + 1) % 3, &opts)
                    .await
                    .expect("move");
                assert_eq!(r.to, (from + 1) % 3);
                moves += 1;
            }
            moves
        })
    };
    let mut clients = Vec::new();
    for w in 0..64 {
        let (app, zones) = (Arc::clone(&app), zones.clone());
        clients.push(tokio::spawn(async move {
            let t = app.token(&format!("storm-{w}"));
            let mut acks = Vec::new();
            for i in 0..12 {
                let (zone, key) = (&zones[(w + i) % zones.len()], format!("k{w}-{i}"));
                // A claim refused while its zone is fenced is sent again with its key.
                let mut tries = 0;
                let r = loop {
                    let r = app.claim(zone, &t, Some(&key)).await;
                    if r.code() != "zone_moving" || tries > 20 {
                        break r;
                    }
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                };
                assert!(r.status.is_success(), "{zone} {key}: {:?}", r.body);
                acks.push((zone.clone(), key, t.clone(), r.body));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for c in clients {
        acks.extend(c.await.expect("client"));
    }
    storming.store(false, Ordering::Relaxed);
    let moves = mover.await.expect("mover");
    assert!(moves >= 6, "{moves} moves");

    // Every acknowledged claim is in the ledger once, and nothing else is.
    let mut total = 0;
    for z in &zones {
        total += app.ledger_count(z).await;
        let v = app.engine.verify(z).await.expect("verify");
        assert_eq!(v.mismatch_count, 0, "{z}");
    }
    assert_eq!(
        total,
        acks.len() as i64,
        "ledger rows against acknowledged claims"
    );
    let ids: BTreeSet<String> = acks.iter().map(|a| a.3["claim_id"].to_string()).collect();
    assert_eq!(ids.len(), acks.len(), "two acknowledgements of one claim");
    let chests: BTreeSet<(String, i64)> = acks
        .iter()
        .map(|a| (a.0.clone(), a.3["chest_id"].as_i64().expect("chest")))
        .collect();
    assert_eq!(chests.len(), acks.len(), "a chest opened twice");
    // Keys from before any of the moves replay their first answer.
    for (zone, key, t, first) in &acks {
        let again = app.claim(zone, t, Some(key)).await;
        assert_eq!(
            again.status,
            StatusCode::OK,
            "{zone} {key}: {:?}",
            again.body
        );
        assert_eq!(&again.body["claim_id"], &first["claim_id"]);
    }
    let scopes: Vec<String> = ["global".to_owned()].into_iter().chain(zones).collect();
    crate::redis::boards_match_ledger(&app, &scopes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_on_another_instance_sees_every_claim_of_a_moving_zone_once() {
    let urls = vec![fresh_db_on(0).await, fresh_db_on(1).await];
    let a = Arc::new(spawn_app_on(urls.clone()).await);
    let b = spawn_app_on(urls).await;
    a.starter().await;
    let zone = zone_on(0, "watched-move");
    a.spawn_zone(&zone, 400, "starter").await;
    let mut ws = connect(&b, "watcher").await;
    let first = subscribe(&mut ws, &[&zone]).await;
    let old_position = first["position"].as_str().expect("position").to_owned();
    let claimer = {
        let (a, zone) = (Arc::clone(&a), zone.clone());
        tokio::spawn(async move {
            let t = a.token("busy");
            let mut ids = Vec::new();
            for i in 0..200 {
                let r = a.claim(&zone, &t, Some(&format!("w{i}"))).await;
                assert!(r.status.is_success(), "{:?}", r.body);
                ids.push(r.body["claim_id"].clone());
            }
            ids
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    a.engine
        .move_zone(&zone, 1, &MoveOptions::default())
        .await
        .expect("move");
    let claimed = claimer.await.expect("claimer");
    // Events before the switch, one snapshot at it, events after: every claim once.
    let (mut before, mut snapshot, mut after) = (BTreeSet::new(), None, BTreeSet::new());
    while snapshot.map_or(0, |s: i64| s) + (after.len() as i64) < 200 {
        let v = crate::realtime::next(&mut ws, std::time::Duration::from_secs(10))
            .await
            .expect("events stopped before every claim was accounted for");
        match v["type"].as_str() {
            Some("chest_opened") if snapshot.is_none() => {
                assert!(before.insert(v["claim_id"].to_string()))
            }
            Some("chest_opened") => assert!(after.insert(v["claim_id"].to_string()), "twice: {v}"),
            Some("resync") => {
                assert!(snapshot.is_none(), "a second snapshot: {v}");
                assert_eq!(v["zones"][0]["total"], 400, "{v}");
                snapshot = v["zones"][0]["opened"].as_i64();
            }
            // The spawn before the subscription, delivered after it.
            Some("chests_spawned") => {}
            _ => panic!("unexpected {v}"),
        }
    }
    let snapshot = snapshot.expect("the move's snapshot");
    assert!(
        before.len() as i64 <= snapshot,
        "{} events before a snapshot of {snapshot}",
        before.len()
    );
    assert!(before.is_disjoint(&after));
    let all: BTreeSet<String> = claimed.iter().map(Value::to_string).collect();
    assert!(after.is_subset(&all) && before.is_subset(&all));
    assert_eq!(snapshot + after.len() as i64, 200);
    // A resume from before the move gets a snapshot rather than a partial replay.
    let reply = resume_on(&b, "late", &zone, &old_position).await;
    assert_eq!(
        (reply["type"].as_str(), reply["resumed"].as_bool()),
        (Some("subscribed"), Some(false)),
        "{reply}"
    );
    assert_eq!(reply["zones"][0]["opened"], 200);
}

/// The ledger tails' horizon leaves out a move's copy sessions (their rows are never events)
/// while a zone is in motion on the shard, and nothing else: an ordinary open transaction
/// still holds every event back until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_transaction_does_not_hold_back_other_zones_events_and_any_other_one_does() {
    use sqlx::{ConnectOptions, Connection, Executor};
    let app = spawn_app_on(vec![fresh_db_on(0).await]).await;
    app.starter().await;
    app.spawn_zone("steady-events", 10, "starter").await;
    app.spawn_zone("arriving-copy", 1, "starter").await;
    let mut db = app.shard_db(0).await;
    // As on a move's target while its copy runs.
    db.execute("UPDATE zones SET state = 'incoming' WHERE name = 'arriving-copy'")
        .await
        .expect("in motion");
    let open = |name: &'static str| {
        let url = app.shard_urls[0].clone();
        async move {
            let mut c = url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .expect("url")
                .application_name(name)
                .connect()
                .await
                .expect("connect");
            c.execute("BEGIN; SELECT pg_current_xact_id()")
                .await
                .expect("an xid");
            c
        }
    };
    let mut ws = connect(&app, "watcher").await;
    subscribe(&mut ws, &["steady-events"]).await;
    let token = app.token("p");
    let copy = open("trove-move-copy").await;
    let r = app.claim("steady-events", &token, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let got = opened(&mut ws, std::time::Duration::from_secs(3)).await;
    assert_eq!(
        got.expect("the event, although a copy transaction is open")["claim_id"],
        r.body["claim_id"]
    );

    let other = open("anything-else").await;
    let r = app.claim("steady-events", &token, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(
        opened(&mut ws, std::time::Duration::from_millis(1500))
            .await
            .is_none(),
        "an ordinary open transaction holds events back"
    );
    other.close().await.expect("end it");
    let got = opened(&mut ws, std::time::Duration::from_secs(3)).await;
    assert_eq!(
        got.expect("the event, once it ended")["claim_id"],
        r.body["claim_id"]
    );
    copy.close().await.expect("end the copy");
}

/// The next `chest_opened` event, if one comes within `wait`.
async fn opened(ws: &mut crate::realtime::Ws, wait: std::time::Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next(ws, left).await {
            Some(v) if v["type"] == "chest_opened" => return Some(v),
            Some(_) => continue,
            None => return None,
        }
    }
}
