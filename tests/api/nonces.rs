//! Draws the server cannot steer: per-player counter nonces (gapless; a refused or failed claim
//! consumes none), client seeds, and who authorised each claim.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Executor;
use trove::fairness::{Draw, Nonce};
use trove::loot::LootTable;

use crate::helpers::{fresh_db_on, spawn_app_on, TestApp};

/// The player's client seed and next nonce in a zone, as the API tells them.
async fn position(app: &TestApp, zone: &str, player: &str) -> Value {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/zones/{zone}/players/{player}/client-seed"),
            Some(&app.token(player)),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn set_seed(app: &TestApp, zone: &str, player: &str, seed: &str) -> crate::helpers::Resp {
    app.call(
        Method::PUT,
        &format!("/v1/zones/{zone}/players/{player}/client-seed"),
        Some(&app.token(player)),
        Some(json!({ "client_seed": seed })),
        &[],
    )
    .await
}

/// The starter table at version 1, as anyone reads it.
async fn starter(app: &TestApp) -> LootTable {
    app.table_version("starter", 1).await.1
}

/// The loot a claim's draw gives, replayed from its public fields and the revealed seed.
fn replayed(seed: &[u8], zone: &str, claim: &Value, table: &LootTable) -> Value {
    let nonce = Nonce::Counter {
        client_seed: claim["client_seed"].as_str().expect("client seed"),
        nonce: claim["nonce"].as_i64().expect("nonce"),
    };
    let player = claim["player"].as_str().expect("player");
    json!(Draw::new(seed, zone, player, nonce).loot(table))
}

async fn revealed_seed(app: &TestApp, zone: &str) -> Vec<u8> {
    let r = app.reveal(zone).await;
    hex::decode(r.body["seed"].as_str().expect("seed")).expect("hex")
}

/// Terminates the shard backend sleeping in a `pg_sleep` trigger (a claim mid-statement).
async fn kill_sleeping_claim(db: &mut sqlx::PgConnection) {
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *db)
        .await
        .expect("kill");
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the claim never reached its insert");
}

/// After a refused or failed claim: the player's next nonce is still `nonce`, and their next
/// claim (with the same idempotency key, if the failed one had one) opens a chest with it,
/// so with the draw the failed attempt had. (A shard marked down after a dropped connection
/// comes back within moments: 503s are waited out.)
async fn retried(app: &TestApp, zone: &str, key: Option<&str>, nonce: usize) -> Value {
    assert_eq!(position(app, zone, "victim").await["next_nonce"], nonce);
    let token = app.token("victim");
    let mut r = app.claim(zone, &token, key).await;
    for _ in 0..50 {
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = app.claim(zone, &token, key).await;
    }
    assert_eq!(r.status, StatusCode::CREATED, "{key:?}: {:?}", r.body);
    assert_eq!(r.body["nonce"], nonce, "{key:?}: {}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_count_each_players_claims_and_refused_or_failed_claims_consume_none() {
    let app = Arc::new(spawn_app_on(vec![fresh_db_on(0).await]).await);
    app.starter().await;
    let zone = "nonce-gaps";
    app.spawn_zone(zone, 3, "starter").await;
    let token = app.token("victim");
    let mut claims = Vec::new();
    for (i, key) in [None, Some("k1"), None].into_iter().enumerate() {
        let r = app.claim(zone, &token, key).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(
            (
                &r.body["nonce"],
                &r.body["client_seed"],
                &r.body["authorised_by"]
            ),
            (&json!(i), &json!(""), &json!("player"))
        );
        claims.push(r.body);
    }
    // A keyed retry replays its claim and consumes nothing.
    let again = app.claim(zone, &token, Some("k1")).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &claims[1]));

    // Each way a claim can fail, without and with an idempotency key, then its retry.
    // Refused (409: nothing left), then one chest more.
    for key in [None, Some("k-409")] {
        let refused = app.claim(zone, &token, key).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
        app.spawn_zone(zone, 1, "starter").await;
        claims.push(retried(&app, zone, key, claims.len()).await);
    }
    app.spawn_zone(zone, 10, "starter").await;

    // The claim statement fails inside the shard (a constraint it breaks).
    let mut db = app.shard_db(0).await;
    for key in [None, Some("k-fail")] {
        db.execute(
            "ALTER TABLE claims ADD CONSTRAINT no_victim CHECK (player <> 'victim') NOT VALID",
        )
        .await
        .expect("constraint");
        let failed = app.claim(zone, &token, key).await;
        assert!(failed.status.is_server_error(), "{:?}", failed.body);
        db.execute("ALTER TABLE claims DROP CONSTRAINT no_victim")
            .await
            .expect("drop");
        claims.push(retried(&app, zone, key, claims.len()).await);
    }

    // The connection drops before the commit (the backend is killed mid-statement).
    db.execute(
        "CREATE FUNCTION slow_victim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.player = 'victim' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END $$",
    )
    .await
    .expect("function");
    for key in [None, Some("k-drop")] {
        db.execute(
            "CREATE TRIGGER slow_victim BEFORE INSERT ON claims
                 FOR EACH ROW EXECUTE FUNCTION slow_victim()",
        )
        .await
        .expect("trigger");
        let dropped = {
            let (app, token) = (Arc::clone(&app), token.clone());
            tokio::spawn(async move { app.claim(zone, &token, key).await })
        };
        kill_sleeping_claim(&mut db).await;
        let dropped = dropped.await.expect("task");
        assert!(!dropped.status.is_success(), "{:?}", dropped.body);
        db.execute("DROP TRIGGER slow_victim ON claims")
            .await
            .expect("drop trigger");
        claims.push(retried(&app, zone, key, claims.len()).await);
    }

    // Every claim's loot is its nonce's draw (the revealed seed, no client seed).
    let table = starter(&app).await;
    let seed = revealed_seed(&app, zone).await;
    for c in &claims {
        assert_eq!(replayed(&seed, zone, c, &table), c["loot"], "{c}");
    }
    let report = app.engine.verify(zone).await.expect("verify");
    assert_eq!((report.claims_checked, report.mismatch_count), (9, 0));
    assert!(report.clean(), "{:?}", report.nonce_problems);
    // The next epoch counts from 0 again.
    let next = app.claim(zone, &token, None).await;
    assert_eq!(
        (&next.body["seed_epoch"], &next.body["nonce"]),
        (&json!(2), &json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_players_claims_through_two_instances_at_once_take_every_nonce_once() {
    let url = fresh_db_on(0).await;
    let a = Arc::new(spawn_app_on(vec![url.clone()]).await);
    let b = Arc::new(spawn_app_on(vec![url]).await);
    a.starter().await;
    let zone = "nonce-race";
    a.spawn_zone(zone, 200, "starter").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = Arc::clone(if i % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(async move {
            let t = app.token("racer");
            let mut out = Vec::new();
            for j in 0..10 {
                let key = format!("r{i}-{j}");
                let key = (j % 2 == 0).then_some(key.as_str());
                let r = app.claim(zone, &t, key).await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
                out.push(r.body);
            }
            out
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await.expect("task"));
    }
    let mut nonces: Vec<i64> = claims
        .iter()
        .map(|c| c["nonce"].as_i64().expect("n"))
        .collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (0..80).collect::<Vec<_>>());
    // A client seed set on one instance is used by the other's next claim (its cache is
    // corrected by the claim statement).
    let set = set_seed(&a, zone, "racer", "my-lucky-seed").await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(
        (&set.body["client_seed"], &set.body["next_nonce"]),
        (&json!("my-lucky-seed"), &json!(80))
    );
    let seeded = b.claim(zone, &b.token("racer"), None).await;
    assert_eq!(
        (&seeded.body["client_seed"], &seeded.body["nonce"]),
        (&json!("my-lucky-seed"), &json!(80))
    );
    claims.push(seeded.body.clone());
    let table = starter(&a).await;
    let seed = revealed_seed(&a, zone).await;
    for c in &claims {
        assert_eq!(replayed(&seed, zone, c, &table), c["loot"], "{c}");
    }
    // The client seed changed the draw: the same nonce without it gives another start.
    let player = "racer";
    let with = Draw::new(
        &seed,
        zone,
        player,
        Nonce::Counter {
            client_seed: "my-lucky-seed",
            nonce: 80,
        },
    );
    let without = Draw::new(
        &seed,
        zone,
        player,
        Nonce::Counter {
            client_seed: "",
            nonce: 80,
        },
    );
    assert_ne!(with.start, without.start);
    assert_eq!(
        a.engine.verify(zone).await.expect("verify").mismatch_count,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_claim_for_a_player_is_recorded_as_such_and_uses_the_players_nonce() {
    let app = spawn_app_on(vec![fresh_db_on(0).await]).await;
    app.starter().await;
    let zone = "nonce-admin";
    app.spawn_zone(zone, 10, "starter").await;
    let own = app.claim(zone, &app.token("ward"), None).await;
    assert_eq!(own.body["authorised_by"], "player");
    let admin = app
        .call(
            Method::POST,
            &format!("/v1/zones/{zone}/claims"),
            Some(&app.admin()),
            Some(json!({"player": "ward"})),
            &[],
        )
        .await;
    assert_eq!(admin.status, StatusCode::CREATED, "{:?}", admin.body);
    assert_eq!(
        (
            &admin.body["player"],
            &admin.body["authorised_by"],
            &admin.body["nonce"]
        ),
        (&json!("ward"), &json!("admin:admin"), &json!(1))
    );
    // The player's history shows both, with who authorised each.
    let history = app
        .call(
            Method::GET,
            "/v1/players/ward/claims",
            Some(&app.token("ward")),
            None,
            &[],
        )
        .await;
    let by: Vec<&Value> = history.body["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .map(|c| &c["authorised_by"])
        .collect();
    assert_eq!(by, [&json!("admin:admin"), &json!("player")]);
    // Bad input changes nothing; another player's seed is not yours to set.
    for bad in ["has space", &"x".repeat(65), "tab\there"] {
        let r = set_seed(&app, zone, "ward", bad).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid_client_seed")
        );
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/zones/{zone}/players/ward/client-seed"),
            Some(&app.token("intruder")),
            Some(json!({"client_seed": "mine"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = set_seed(&app, "no-such-zone", "ward", "x").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(position(&app, zone, "ward").await["client_seed"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_epoch_keeps_drawing_with_claim_ids_and_the_next_one_counts_nonces() {
    let url = fresh_db_on(0).await;
    let setup = spawn_app_on(vec![url.clone()]).await;
    setup.starter().await;
    let zone = "nonce-v1";
    setup.spawn_zone(zone, 10, "starter").await;
    // As a zone whose epoch was committed before version 2 existed.
    let mut db = setup.shard_db(0).await;
    db.execute("UPDATE zone_seeds SET draw_version = 1")
        .await
        .expect("v1");
    let app = spawn_app_on(vec![url]).await;
    let old = app.claim(zone, &app.token("elder"), None).await;
    assert_eq!(old.status, StatusCode::CREATED, "{:?}", old.body);
    assert_eq!(
        (&old.body["nonce"], &old.body["client_seed"]),
        (&Value::Null, &Value::Null)
    );
    let table = starter(&app).await;
    let seed = revealed_seed(&app, zone).await;
    let id = uuid::Uuid::parse_str(old.body["claim_id"].as_str().expect("id")).expect("uuid");
    let v1 = Draw::new(&seed, zone, "elder", Nonce::ClaimId(id));
    assert_eq!(json!(v1.loot(&table)), old.body["loot"]);
    let new = app.claim(zone, &app.token("elder"), None).await;
    assert_eq!(
        (&new.body["seed_epoch"], &new.body["nonce"]),
        (&json!(2), &json!(0))
    );
    assert_eq!(
        app.engine
            .verify(zone)
            .await
            .expect("verify")
            .mismatch_count,
        0
    );
    // A version-2 epoch's claim stripped of its nonce is a mismatch.
    db.execute("UPDATE claims SET nonce = NULL WHERE seed_epoch = 2")
        .await
        .expect("strip");
    assert_eq!(
        app.engine
            .verify(zone)
            .await
            .expect("verify")
            .mismatch_count,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_nonce_gaps_reorderings_and_seeds_that_break_their_commitment() {
    let app = spawn_app_on(vec![fresh_db_on(0).await]).await;
    app.starter().await;
    let zone = "nonce-verify";
    app.spawn_zone(zone, 10, "starter").await;
    let t = app.token("counted");
    let mut ids = Vec::new();
    for _ in 0..4 {
        let r = app.claim(zone, &t, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        ids.push(r.body["claim_id"].as_str().expect("id").to_owned());
    }
    assert!(app.engine.verify(zone).await.expect("verify").clean());
    let mut db = app.shard_db(0).await;

    // Two claims' times swapped: nonce order no longer the order they were made in.
    sqlx::query(
        "UPDATE claims c SET opened_at = o.opened_at FROM claims o
         WHERE (c.claim_id, o.claim_id) IN (($1::uuid, $2::uuid), ($2::uuid, $1::uuid))",
    )
    .bind(&ids[2])
    .bind(&ids[3])
    .execute(&mut db)
    .await
    .expect("swap");
    let report = app.engine.verify(zone).await.expect("verify");
    let kinds: Vec<&str> = report.nonce_problems.iter().map(|p| p.kind).collect();
    assert_eq!((report.mismatch_count, kinds), (0, vec!["out_of_order"]));
    // The operator's command says so too, and fails.
    let cli = app.verify_cli(zone);
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(
        !cli.status.success() && out.contains("\"out_of_order\""),
        "{out}"
    );

    // A claim deleted: the player's nonces have a gap.
    sqlx::query("DELETE FROM claims WHERE claim_id = $1::uuid")
        .bind(&ids[1])
        .execute(&mut db)
        .await
        .expect("delete");
    let report = app.engine.verify(zone).await.expect("verify");
    let gap = report
        .nonce_problems
        .iter()
        .find(|p| p.kind == "gap")
        .expect("the gap is reported");
    assert_eq!((gap.expected, gap.found), (1, Some(2)));
    let cli = app.verify_cli(zone);
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(!cli.status.success() && out.contains("\"gap\""), "{out}");
    assert!(String::from_utf8_lossy(&cli.stderr).contains("break(s) in players' nonces"));

    // A commitment changed under a sealed seed: the seed no longer opens as its epoch's.
    db.execute("UPDATE zone_seeds SET commitment = sha256('other'::bytea)")
        .await
        .expect("tamper");
    let report = app.engine.verify(zone).await.expect("verify");
    assert_eq!(report.bad_commitments, vec![1]);
    assert!(!report.clean());
}
