//! The zero-dupe promise under real concurrency, idempotent retries, targeted claims and loot
//! table versions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_no_scan, patient, spawn_app, spawn_app_with, spawn_patient_app, zone_on, SECRET,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_claims_on_a_hundred_chests_open_each_exactly_once() {
    let app = Arc::new(spawn_patient_app().await);
    app.starter().await;
    let zone = zone_on(0, "rush");
    assert_eq!(
        app.spawn_zone(&zone, 100, "starter").await.status,
        StatusCode::CREATED
    );

    let mut tasks = Vec::new();
    for i in 0..1000 {
        let app = Arc::clone(&app);
        let zone = zone.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.token(&format!("player-{i}"));
            app.claim(&zone, &token, None).await
        }));
    }
    let mut chests = HashSet::new();
    let (mut opened, mut exhausted) = (0, 0);
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            StatusCode::CREATED => {
                opened += 1;
                assert!(
                    chests.insert(r.body["chest_id"].as_i64().expect("chest id")),
                    "chest opened twice: {:?}",
                    r.body
                );
                assert!(!r.body["loot"].as_array().expect("loot").is_empty());
            }
            StatusCode::CONFLICT => {
                assert_eq!(r.code(), "zone_exhausted");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!((opened, exhausted), (100, 900));
    assert_eq!(chests, (1..=100).collect::<HashSet<i64>>());
    assert_eq!(app.ledger_count(&zone).await, 100);
    let z = app.zone(&zone).await;
    assert_eq!(
        (
            z["total"].as_i64(),
            z["opened"].as_i64(),
            z["remaining"].as_i64()
        ),
        (Some(100), Some(100), Some(0))
    );
}

/// Concurrent claims on a shard share statements (micro-batching): the ledger records each
/// claim's transaction id, so it shows how many transactions opened the chests. With
/// TROVE_CLAIM_BATCH_MAX=1 every claim is its own transaction again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_share_transactions_unless_batching_is_off() {
    for batch_max in [64u16, 1] {
        let base = spawn_app().await;
        // 600 claims wait for a connection at once (one transaction each without batching).
        let mut config = patient(trove::config::Config::for_shards(
            base.shard_urls.clone(),
            SECRET,
        ));
        config.claim_batch_max = batch_max;
        let app = Arc::new(spawn_app_with(config).await);
        app.starter().await;
        let zone = zone_on(1, "batched");
        app.spawn_zone(&zone, 2000, "starter").await;
        let admin = app.admin();
        let mut tasks = Vec::new();
        for i in 0..600 {
            let (app, zone, admin) = (Arc::clone(&app), zone.clone(), admin.clone());
            tasks.push(tokio::spawn(async move {
                app.call(
                    Method::POST,
                    &format!("/v1/zones/{zone}/claims"),
                    Some(&admin),
                    Some(json!({"player": format!("b{i}")})),
                    &[("Idempotency-Key", "once")],
                )
                .await
                .status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), StatusCode::CREATED);
        }
        let mut db = app.shard_db(1).await;
        let (claims, transactions): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(DISTINCT xid) FROM claims")
                .fetch_one(&mut db)
                .await
                .expect("ledger");
        assert_eq!(claims, 600);
        if batch_max == 1 {
            assert_eq!(transactions, 600);
        } else {
            assert!(
                transactions <= 300,
                "600 concurrent claims took {transactions} transactions"
            );
        }
    }
}

/// A client that gave up on its first attempt retries while that attempt still holds the
/// zone's last chest: the retry must wait for it and answer with its claim, not a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_while_the_first_attempt_holds_the_last_chest_replays_it() {
    let app = Arc::new(spawn_app().await);
    app.starter().await;
    let zone = zone_on(0, "last-chest");
    app.spawn_zone(&zone, 1, "starter").await;
    // The first attempt of `slowpoke` stays in its transaction (chest locked) for a while.
    let mut db = app.shard_db(0).await;
    sqlx::raw_sql(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
         CREATE TRIGGER slow AFTER INSERT ON claims FOR EACH ROW
         WHEN (NEW.player = 'slowpoke') EXECUTE FUNCTION slow();",
    )
    .execute(&mut db)
    .await
    .expect("slow trigger");
    let token = app.token("slowpoke");
    let first = {
        let (app, zone, token) = (Arc::clone(&app), zone.clone(), token.clone());
        tokio::spawn(async move { app.claim(&zone, &token, Some("k1")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Meanwhile another player finds nothing to open: the only chest is taken.
    let other = app.claim(&zone, &app.token("other"), None).await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::CONFLICT, "zone_exhausted")
    );
    let retry = app.claim(&zone, &token, Some("k1")).await;
    let first = first.await.expect("first attempt");
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.body, first.body);
    assert_eq!(app.ledger_count(&zone).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_retries_on_twenty_keys_open_exactly_twenty_chests() {
    let app = Arc::new(spawn_patient_app().await);
    app.starter().await;
    let zone = zone_on(1, "retry");
    app.spawn_zone(&zone, 500, "starter").await;
    let token = app.token("retrier");

    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = Arc::clone(&app);
        let (zone, token) = (zone.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("key-{}", i % 20);
            let r = app.claim(&zone, &token, Some(&key)).await;
            (key, r)
        }));
    }
    let mut by_key: HashMap<String, Vec<_>> = HashMap::new();
    for t in tasks {
        let (key, r) = t.await.expect("task");
        by_key.entry(key).or_default().push(r);
    }
    assert_eq!(by_key.len(), 20);
    let mut chests = HashSet::new();
    for (key, responses) in &by_key {
        let first = &responses[0].body;
        assert!(
            responses.iter().all(|r| &r.body == first),
            "{key}: responses differ"
        );
        let created = responses
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        let replayed = responses
            .iter()
            .filter(|r| {
                r.status == StatusCode::OK
                    && r.headers
                        .get("idempotent-replayed")
                        .is_some_and(|v| v == "true")
            })
            .count();
        assert_eq!((created, replayed), (1, 9), "{key}");
        assert!(chests.insert(first["chest_id"].as_i64().expect("chest")));
    }
    assert_eq!(app.ledger_count(&zone).await, 20);
    assert_eq!(app.zone(&zone).await["opened"], 20);

    // The same key in another zone is a separate request (keys are scoped per zone).
    let other = zone_on(0, "retry-other");
    app.spawn_zone(&other, 5, "starter").await;
    assert_eq!(
        app.claim(&other, &token, Some("key-0")).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_players_racing_for_one_chest_have_one_winner() {
    let app = Arc::new(spawn_app().await);
    app.starter().await;
    let zone = zone_on(0, "duel");
    app.spawn_zone(&zone, 10, "starter").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = Arc::clone(&app);
        let zone = zone.clone();
        tasks.push(tokio::spawn(async move {
            let t = app.token(&format!("duelist-{i}"));
            app.call(
                Method::POST,
                &format!("/v1/zones/{zone}/chests/7/claim"),
                Some(&t),
                None,
                &[],
            )
            .await
        }));
    }
    let mut statuses = HashMap::new();
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == StatusCode::CONFLICT {
            assert_eq!(r.code(), "chest_already_opened");
        }
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&StatusCode::CREATED), Some(&1), "{statuses:?}");
    assert_eq!(
        statuses.get(&StatusCode::CONFLICT),
        Some(&49),
        "{statuses:?}"
    );
    let t = app.token("late");
    let unknown = app
        .call(
            Method::POST,
            &format!("/v1/zones/{zone}/chests/11/claim"),
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "chest_not_found")
    );
    // A random claim never hands out the chest someone already has.
    for _ in 0..9 {
        let r = app.claim(&zone, &t, None).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_ne!(r.body["chest_id"], 7);
    }
    assert_eq!(app.claim(&zone, &t, None).await.code(), "zone_exhausted");
    assert_eq!(app.ledger_count(&zone).await, 10);

    // Keys must not be reused for a different chest.
    app.spawn_zone(&zone, 2, "starter").await;
    let k = [("Idempotency-Key", "same")];
    let first = app
        .call(
            Method::POST,
            &format!("/v1/zones/{zone}/chests/11/claim"),
            Some(&t),
            None,
            &k,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let reuse = app
        .call(
            Method::POST,
            &format!("/v1/zones/{zone}/chests/12/claim"),
            Some(&t),
            None,
            &k,
        )
        .await;
    assert_eq!(
        (reuse.status, reuse.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(app.ledger_count(&zone).await, 11);
}

#[tokio::test]
async fn changing_a_loot_table_never_changes_spawned_chests_or_drawn_loot() {
    let app = spawn_app().await;
    let v1 =
        json!([{"item": "copper", "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "common"}]);
    let v2 = json!([{"item": "silver", "weight": 1, "min_qty": 2, "max_qty": 2, "rarity": "rare"}]);
    let r = app.put_table("chest-kit", v1.clone()).await;
    assert_eq!(r.body, json!({"name": "chest-kit", "version": 1}));
    // Same content again: same version (PUT is idempotent).
    assert_eq!(app.put_table("chest-kit", v1).await.body["version"], 1);
    let zone = zone_on(1, "versions");
    app.spawn_zone(&zone, 4, "chest-kit").await;
    let t = app.token("collector");
    let before = app.claim(&zone, &t, None).await;
    assert_eq!(before.body["loot"][0]["item"], "copper");

    assert_eq!(app.put_table("chest-kit", v2).await.body["version"], 2);
    // Chests spawned with version 1 still give version 1 loot, on this instance...
    assert_eq!(
        app.claim(&zone, &t, None).await.body["loot"][0]["item"],
        "copper"
    );
    // ...and on a second instance, whose cached view of the zone predates the next spawn.
    let other = crate::helpers::spawn_app_on(app.shard_urls.clone()).await;
    assert_eq!(
        other.claim(&zone, &t, None).await.body["loot"][0]["item"],
        "copper"
    );
    // New chests get version 2; the second instance finds out on its first such chest.
    app.spawn_zone(&zone, 5, "chest-kit").await;
    let mut items = HashSet::new();
    for _ in 0..6 {
        let r = other.claim(&zone, &t, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        items.insert(r.body["loot"][0]["item"].as_str().expect("item").to_owned());
    }
    assert_eq!(
        items,
        HashSet::from(["copper".to_owned(), "silver".to_owned()])
    );
    // The first claim's recorded loot is unchanged in history.
    let hist = app
        .call(
            Method::GET,
            "/v1/players/collector/claims?limit=100",
            Some(&t),
            None,
            &[],
        )
        .await;
    let first = hist.body["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .find(|c| c["claim_id"] == before.body["claim_id"])
        .cloned();
    assert_eq!(
        first.map(|c| c["loot"].clone()),
        Some(before.body["loot"].clone())
    );
}

#[tokio::test]
async fn spawning_a_zone_with_an_unknown_table_is_404_and_creates_nothing() {
    let app = spawn_app().await;
    let zone = zone_on(0, "ghost");
    let r = app.spawn_zone(&zone, 10, "missing").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "loot_table_not_found")
    );
    let t = app.token("p");
    assert_eq!(app.claim(&zone, &t, None).await.code(), "zone_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_spawns_with_the_same_table_all_succeed() {
    let app = Arc::new(spawn_app().await);
    app.starter().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            let r = app.spawn_zone(&format!("burst-{i}"), 10, "starter").await;
            (r.status, r.body)
        }));
    }
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for shard in 0..2 {
        let mut db = app.shard_db(shard).await;
        let copies: i64 =
            sqlx::query_scalar("SELECT count(*) FROM loot_tables WHERE name = 'starter'")
                .fetch_one(&mut db)
                .await
                .expect("count");
        assert_eq!(copies, 1, "one copy of the version per shard");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_body_of_json_null_means_no_body() {
    let app = spawn_app().await;
    app.starter().await;
    app.spawn_zone("null-body", 5, "starter").await;
    let t = app.token("nully");
    let r = app
        .call(
            Method::POST,
            "/v1/zones/null-body/claims",
            Some(&t),
            Some(Value::Null),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["player"], "nully");
}

/// The claim statement reaches every table through an index from the claims' own keys, even
/// as a generic plan (which PostgreSQL switches prepared statements to): its cost depends on
/// the batch, never on how many zones, chests or claims the shard holds.
#[tokio::test]
async fn the_claim_statement_never_scans_a_table() {
    let app = spawn_app().await;
    let mut db = app.shard_db(0).await;
    sqlx::raw_sql(
        "INSERT INTO loot_tables (name, version, entries) SELECT 't' || g, 1, '[]' FROM generate_series(1, 5000) g;
         INSERT INTO zones (name, chest_count) SELECT 'z' || g, 20 FROM generate_series(1, 5000) g;
         INSERT INTO zone_seeds (zone_id, epoch, seed, commitment)
             SELECT id, 1, s, sha256(s) FROM zones, (SELECT decode(repeat('ab', 32), 'hex') AS s) x;
         INSERT INTO zone_counters (zone_id, slot) SELECT id, g FROM zones, generate_series(0, 15) g;
         INSERT INTO chests SELECT id, g, 1 FROM zones, generate_series(11, 20) g;
         INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot, idempotency_key)
             SELECT id, g, gen_random_uuid(), 'p' || g, 1, 1, '[]', 'k' || g FROM zones, generate_series(1, 10) g;
         INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot, nonce)
             SELECT id, 10 + g, gen_random_uuid(), 'p' || g, 1, 1, '[]', 0 FROM zones, generate_series(1, 10) g;
         INSERT INTO player_nonces (zone_id, player, client_seed)
             SELECT id, 'p' || g, 's' || g FROM zones, generate_series(1, 10) g;
         ANALYZE;",
    )
    .execute(&mut db)
    .await
    .expect("a shard with many zones");
    let statement = include_str!("../../sql/claim.sql");
    let args = "('{7,9}', '{1,1}', '{p1,p2}', '{k1,NULL}', '{5,6}', ARRAY['{\"1\":[]}', '{\"1\":[]}']::jsonb[], ARRAY[gen_random_uuid(), gen_random_uuid()], '{NULL,12}', '{1,NULL}', ARRAY['', NULL], '{player,admin:ops}')";
    for mode in ["force_generic_plan", "force_custom_plan"] {
        sqlx::raw_sql(&format!(
            "SET plan_cache_mode = {mode};
             PREPARE {mode}(integer[], integer[], text[], text[], bigint[], jsonb[], uuid[], bigint[], bigint[], text[], text[]) AS {statement}"
        ))
        .execute(&mut db)
        .await
        .expect("prepare");
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE {mode}{args}"))
            .fetch_all(&mut db)
            .await
            .expect("explain");
        let plan = assert_no_scan(&plan, mode);
        assert!(
            plan.contains("Index Scan using chests_pkey"),
            "{mode}:\n{plan}"
        );
        // The player's client seed by its key, and their last nonce by the nonce index.
        assert!(
            plan.contains("Index Scan using player_nonces_pkey"),
            "{mode}:\n{plan}"
        );
        assert!(plan.contains("using claims_nonce"), "{mode}:\n{plan}");
    }
}

#[tokio::test]
async fn chest_listings_page_by_id_and_filter_by_state() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "listed");
    app.spawn_zone(&zone, 5, "starter").await;
    let t = app.token("lister");
    for chest in [2, 4] {
        let r = app
            .call(
                Method::POST,
                &format!("/v1/zones/{zone}/chests/{chest}/claim"),
                Some(&t),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let list = |query: String| {
        let (app, zone, t) = (&app, &zone, &t);
        async move {
            let r = app
                .call(
                    Method::GET,
                    &format!("/v1/zones/{zone}/chests?{query}"),
                    Some(t),
                    None,
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body
        }
    };
    let ids = |page: &Value| -> Vec<i64> {
        page["chests"]
            .as_array()
            .expect("chests")
            .iter()
            .map(|c| c["chest_id"].as_i64().expect("id"))
            .collect()
    };
    let opened = list("state=opened".into()).await;
    assert_eq!(ids(&opened), vec![2, 4]);
    for c in opened["chests"].as_array().expect("chests") {
        assert_eq!(
            (&c["state"], &c["opened_by"]),
            (&json!("opened"), &json!("lister"))
        );
        assert!(c["opened_at"].is_string());
    }
    assert_eq!(ids(&list("state=unopened".into()).await), vec![1, 3, 5]);
    // Keyset pages of two: 1 2 | 3 4 | 5, each `next` the last id of its page.
    let first = list("limit=2".into()).await;
    assert_eq!((ids(&first), &first["next"]), (vec![1, 2], &json!(2)));
    let second = list("limit=2&after=2".into()).await;
    assert_eq!((ids(&second), &second["next"]), (vec![3, 4], &json!(4)));
    let last = list("limit=2&after=4".into()).await;
    assert_eq!((ids(&last), &last["next"]), (vec![5], &Value::Null));
    assert_eq!(last["chests"][0]["state"], "unopened");
    assert!(last["chests"][0]["opened_by"].is_null());
}

/// Runs the claim statement itself on shard 0 for claims in `zone` of (player, idempotency
/// key, nonce with client seed "": None draws as version 1); the i-th claim's draw starts at
/// chest 3i + 1 (wrapping around the zone). Returns the statement's rows.
async fn run_claim_statement(
    db: &mut sqlx::PgConnection,
    zone: &str,
    claims: &[(&str, Option<&str>, Option<i64>)],
) -> Vec<sqlx::postgres::PgRow> {
    let (zone_id, table): (i32, i32) = sqlx::query_as(
        "SELECT z.id, max(c.loot_table_id) FROM zones z JOIN chests c ON c.zone_id = z.id
         WHERE z.name = $1 GROUP BY z.id",
    )
    .bind(zone)
    .fetch_one(&mut *db)
    .await
    .expect("zone");
    let n = claims.len();
    let loot = json!({ table.to_string(): [] });
    sqlx::query(include_str!("../../sql/claim.sql"))
        .bind(vec![zone_id; n])
        .bind(vec![1i32; n])
        .bind(claims.iter().map(|c| c.0.to_owned()).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|c| c.1.map(str::to_owned))
                .collect::<Vec<_>>(),
        )
        .bind((0..n as i64).map(|i| 3 * i).collect::<Vec<_>>())
        .bind(vec![loot; n])
        .bind((0..n).map(|_| uuid::Uuid::now_v7()).collect::<Vec<_>>())
        .bind(vec![None::<i64>; n])
        .bind(claims.iter().map(|c| c.2).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|c| c.2.map(|_| String::new()))
                .collect::<Vec<_>>(),
        )
        .bind(vec!["player".to_owned(); n])
        .fetch_all(&mut *db)
        .await
        .expect("claim statement")
}

/// The claim statement for version-1 claims of one player, each with an idempotency key (what
/// these tests hold to is the keys' handling). Returns (status, claim id).
async fn claim_statement(
    db: &mut sqlx::PgConnection,
    zone: &str,
    player: &str,
    keys: &[&str],
) -> Vec<(String, Option<uuid::Uuid>)> {
    use sqlx::Row;
    let claims: Vec<_> = keys.iter().map(|k| (player, Some(*k), None)).collect();
    run_claim_statement(db, zone, &claims)
        .await
        .iter()
        .map(|row| (row.get("status!"), row.get("claim_id?")))
        .collect()
}

/// Version-2 claims in one statement: a player's first claim in the batch with their next
/// nonce opens a chest; their second in the same batch is `collided` (it goes again with the
/// next nonce) and a claim drawn with a nonce that is not the player's next is told `nonce`
/// with the next one. Neither consumes a nonce; an opened claim names its loot table only by
/// id (the engine has the name), a replay by name too.
#[tokio::test]
async fn a_batch_takes_one_nonce_per_player_and_answers_the_next_to_a_wrong_one() {
    use sqlx::Row;
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "batched-nonces");
    app.spawn_zone(&zone, 10, "starter").await;
    let mut db = app.shard_db(0).await;
    let rows = run_claim_statement(
        &mut db,
        &zone,
        &[
            ("ann", None, Some(0)),
            ("ann", None, Some(0)),
            ("bob", None, Some(3)),
            ("cy", Some("k"), Some(0)),
        ],
    )
    .await;
    let status = |r: &sqlx::postgres::PgRow| {
        (
            r.get::<String, _>("status!"),
            r.get::<Option<i64>, _>("nonce?"),
            r.get::<Option<i64>, _>("next_nonce?"),
        )
    };
    assert_eq!(status(&rows[0]), ("opened".into(), Some(0), None));
    assert_eq!(status(&rows[1]), ("collided".into(), None, None));
    assert_eq!(status(&rows[2]), ("nonce".into(), None, Some(0)));
    assert_eq!(
        rows[2].get::<Option<String>, _>("next_client_seed?"),
        Some(String::new())
    );
    assert_eq!(status(&rows[3]), ("opened".into(), Some(0), None));
    assert!(rows[0].get::<Option<i32>, _>("loot_table_id?").is_some());
    assert_eq!(rows[0].get::<Option<String>, _>("loot_table?"), None);
    // The next statement: ann's second claim takes nonce 1, bob's next is still 0, and cy's
    // retry with the same key replays, naming the table.
    let again = run_claim_statement(
        &mut db,
        &zone,
        &[
            ("ann", None, Some(1)),
            ("bob", None, Some(0)),
            ("cy", Some("k"), Some(1)),
        ],
    )
    .await;
    assert_eq!(status(&again[0]), ("opened".into(), Some(1), None));
    assert_eq!(status(&again[1]), ("opened".into(), Some(0), None));
    assert_eq!(status(&again[2]), ("replayed".into(), Some(0), None));
    assert_eq!(
        again[2].get::<Option<String>, _>("loot_table?").as_deref(),
        Some("starter")
    );
    assert_eq!(
        again[2].get::<Option<i32>, _>("loot_table_version?"),
        Some(1)
    );
    assert_eq!(app.ledger_count(&zone).await, 4);
}

/// The same key twice in one batch: the first opens a chest, the twin locks none (it is told
/// `collided`, goes again, and replays the first).
#[tokio::test]
async fn twins_in_one_batch_open_one_chest_and_lock_no_other() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "twins");
    app.spawn_zone(&zone, 3, "starter").await;
    let mut db = app.shard_db(0).await;
    let first = claim_statement(&mut db, &zone, "twin", &["k", "k"]).await;
    assert_eq!(first[0].0, "opened");
    assert_eq!(first[1], ("collided".to_owned(), None));
    let again = claim_statement(&mut db, &zone, "twin", &["k"]).await;
    assert_eq!(again[0], ("replayed".to_owned(), first[0].1));
    assert_eq!(app.ledger_count(&zone).await, 1);
}

/// A retry that waited on its key's lock for the first attempt to commit reads the key with a
/// fresh snapshot: it replays that attempt instead of locking a chest it will not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_waited_for_its_first_attempt_replays_it_at_once() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "waited");
    app.spawn_zone(&zone, 3, "starter").await;
    // The "first attempt": holds the key's lock and writes its claim, not yet committed.
    let mut first = app.shard_db(0).await;
    let mut tx = sqlx::Connection::begin(&mut first).await.expect("begin");
    let first_id = uuid::Uuid::now_v7();
    sqlx::raw_sql(&format!(
        "SELECT pg_advisory_xact_lock(hashtextextended(z.id::text || '/p/k', 0)) FROM zones z WHERE z.name = '{zone}';
         INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot, idempotency_key)
             SELECT c.zone_id, c.chest_id, '{first_id}', 'p', 1, c.loot_table_id, '[]', 'k'
             FROM chests c JOIN zones z ON z.id = c.zone_id WHERE z.name = '{zone}' AND c.chest_id = 1;
         DELETE FROM chests c USING zones z WHERE z.id = c.zone_id AND z.name = '{zone}' AND c.chest_id = 1;"
    ))
    .execute(&mut *tx)
    .await
    .expect("first attempt");
    let retry = {
        let mut db = app.shard_db(0).await;
        let zone = zone.clone();
        tokio::spawn(async move { claim_statement(&mut db, &zone, "p", &["k"]).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !retry.is_finished(),
        "the retry must wait for the key's lock"
    );
    tx.commit().await.expect("commit the first attempt");
    let retry = retry.await.expect("retry");
    assert_eq!(retry[0], ("replayed".to_owned(), Some(first_id)));
    assert_eq!(app.ledger_count(&zone).await, 1);
}
