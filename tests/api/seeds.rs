//! Unrevealed seeds are sealed at rest under a key outside PostgreSQL: the database alone
//! never shows one; seeds from before sealing are sealed at start-up; keys rotate.

use reqwest::StatusCode;
use sqlx::Executor;
use trove::config::Config;

use crate::helpers::{fresh_db_on, serve, spawn_app_with, Served, TestApp, SECRET};

fn config(url: &str, key: Option<&str>, old: &[&str]) -> Config {
    let mut c = Config::for_shards(vec![url.to_owned()], SECRET);
    c.seed_key = key.map(str::to_owned);
    c.seed_old_keys = old.iter().map(|k| k.to_string()).collect();
    c
}

/// Everything the database holds about a zone's seeds, as text (what a dump would show).
async fn dump(app: &TestApp) -> String {
    let mut db = app.shard_db(0).await;
    sqlx::query_scalar("SELECT coalesce(string_agg(t::text, ' '), '') FROM zone_seeds t")
        .fetch_one(&mut db)
        .await
        .expect("dump")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_never_shows_an_unrevealed_seed_and_keys_rotate() {
    let url = fresh_db_on(0).await;
    let (k1, k2) = ("a1".repeat(32), "b2".repeat(32));
    let app = spawn_app_with(config(&url, Some(&k1), &[])).await;
    app.starter().await;
    app.spawn_zone("sealed", 20, "starter").await;
    let first = app.claim("sealed", &app.token("p"), None).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let before = dump(&app).await;
    let metrics = app.metrics_text().await;
    let view = app.zone("sealed").await.to_string();
    let seed = app.reveal("sealed").await.body["seed"]
        .as_str()
        .expect("seed")
        .to_owned();
    for (what, text) in [
        ("the database", &before),
        ("/metrics", &metrics),
        ("the zone", &view),
    ] {
        assert!(
            !text.contains(&seed),
            "{what} showed the seed before its reveal"
        );
    }
    assert!(
        dump(&app).await.contains(&seed),
        "revealed, it is in the clear"
    );

    // Rotation: K2 seals from now on, K1 still opens what it sealed, and the start seals
    // those seeds again under K2; then K1 can go.
    drop(app);
    let rotated = spawn_app_with(config(&url, Some(&k2), &[&k1])).await;
    assert_eq!(
        rotated
            .claim("sealed", &rotated.token("p"), None)
            .await
            .status,
        StatusCode::CREATED
    );
    let only_k2 = spawn_app_with(config(&url, Some(&k2), &[])).await;
    assert_eq!(
        only_k2
            .claim("sealed", &only_k2.token("p"), None)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(only_k2.reveal("sealed").await.status, StatusCode::OK);

    // A lost key: the epoch it sealed can never be opened, so claims there fail (they
    // never draw with anything else) and it can never be revealed.
    let lost = spawn_app_with(config(&url, Some(&"c3".repeat(32)), &[])).await;
    let r = lost.claim("sealed", &lost.token("p"), None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", r.body);
    assert!(!r.body.to_string().contains("seed\":"), "{:?}", r.body);
    assert!(lost.reveal("sealed").await.status.is_server_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_stored_in_the_clear_before_sealing_is_sealed_at_start_and_still_revealed() {
    let url = fresh_db_on(0).await;
    let app = spawn_app_with(config(&url, None, &[])).await;
    app.starter().await;
    app.spawn_zone("legacy", 10, "starter").await;
    // As an epoch committed before migration 0008: its seed in the clear.
    let known = "42".repeat(32);
    let mut db = app.shard_db(0).await;
    db.execute(
        format!(
            "UPDATE zone_seeds SET seed = '\\x{known}', sealed = NULL,
             commitment = sha256('\\x{known}'::bytea)"
        )
        .as_str(),
    )
    .await
    .expect("clear seed");
    drop(app);
    let app = spawn_app_with(config(&url, None, &[])).await;
    let (clear, sealed): (bool, bool) =
        sqlx::query_as("SELECT seed IS NOT NULL, sealed IS NOT NULL FROM zone_seeds")
            .fetch_one(&mut db)
            .await
            .expect("row");
    assert_eq!((clear, sealed), (false, true), "sealed at start-up");
    assert!(!dump(&app).await.contains(&known));
    assert_eq!(
        app.claim("legacy", &app.token("p"), None).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.reveal("legacy").await.body["seed"], known);
    assert_eq!(
        app.engine
            .verify("legacy")
            .await
            .expect("verify")
            .mismatch_count,
        0
    );
}

/// Everything the `trove` binary logs at its most verbose (every target at `trace`, JSON)
/// while it creates, draws with and reveals seeds never shows a seed it has not revealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_never_show_an_unrevealed_seed_even_at_trace() {
    let url = fresh_db_on(0).await;
    let setup = spawn_app_with(config(&url, None, &[])).await;
    setup.starter().await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"));
    cmd.arg("serve")
        .env("TROVE_SHARDS", &url)
        .env("TROVE_JWT_SECRET", SECRET)
        .env("TROVE_LISTEN", "127.0.0.1:0")
        .env("TROVE_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .env_remove("TROVE_REDIS_URL")
        .env_remove("TROVE_SEED_KEY");
    let Served {
        mut child,
        base,
        logs,
    } = serve(cmd).await;

    // A zone made, claimed in (with and without a client seed), revealed (which commits a
    // new seed), and claimed in again: all through the logged binary.
    let http = reqwest::Client::new();
    let (admin, player) = (setup.admin(), setup.token("p"));
    let send =
        |method: reqwest::Method, path: &str, token: &str, body: Option<serde_json::Value>| {
            let mut req = http
                .request(method, format!("{base}{path}"))
                .bearer_auth(token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            req.send()
        };
    let spawned = send(
        reqwest::Method::POST,
        "/v1/zones/quiet/chests",
        &admin,
        Some(serde_json::json!({"count": 20, "loot_table": "starter"})),
    )
    .await
    .expect("spawn");
    assert_eq!(spawned.status(), StatusCode::CREATED);
    let claim = || {
        send(
            reqwest::Method::POST,
            "/v1/zones/quiet/claims",
            &player,
            None,
        )
    };
    assert_eq!(claim().await.expect("claim").status(), StatusCode::CREATED);
    let seeded = send(
        reqwest::Method::PUT,
        "/v1/zones/quiet/players/p/client-seed",
        &player,
        Some(serde_json::json!({"client_seed": "lucky"})),
    )
    .await
    .expect("client seed");
    assert_eq!(seeded.status(), StatusCode::OK);
    assert_eq!(claim().await.expect("claim").status(), StatusCode::CREATED);
    let revealed = send(
        reqwest::Method::POST,
        "/v1/zones/quiet/reveal",
        &admin,
        None,
    )
    .await
    .expect("reveal");
    assert_eq!(revealed.status(), StatusCode::OK);
    assert_eq!(claim().await.expect("claim").status(), StatusCode::CREATED);
    child.kill().await.expect("stop trove");
    let logs = logs.await.expect("logs");
    assert!(
        logs.lines().count() > 50 && logs.contains("/v1/zones/{zone}/claims"),
        "the binary logged its requests at trace: {logs}"
    );

    // Epoch 2's seed, committed by that reveal and used by the last claim, revealed only now
    // (by the in-process app): the binary's logs never held it, in hex or in bytes.
    let seed = setup.reveal("quiet").await.body["seed"]
        .as_str()
        .expect("seed")
        .to_owned();
    let bytes = hex::decode(&seed).expect("hex");
    let as_list = format!("{bytes:?}").replace(' ', "");
    assert!(!logs.contains(&seed), "the logs show the unrevealed seed");
    assert!(!logs.replace(' ', "").contains(&as_list));
}
