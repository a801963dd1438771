//! The `trove` subcommands a newcomer and an operator run: token, migrate, shards.

use reqwest::StatusCode;
use trove::auth::{JwtKeys, Role};

use crate::helpers::{empty_databases, run_trove, spawn_app_on, zone_on, SECRET};

async fn trove(args: &[&str], shards: &[String]) -> (bool, String) {
    let shards = shards.join(",");
    run_trove(
        args,
        &[("TROVE_SHARDS", &shards), ("TROVE_JWT_SECRET", SECRET)],
    )
    .await
}

#[tokio::test]
async fn token_prints_a_token_the_server_accepts_with_its_role() {
    // Configured shards (never contacted): no local stack is started for a token.
    let shards = ["postgres://trove@127.0.0.1:1/unused".to_owned()];
    let (ok, out) = trove(
        &["token", "--player", "alice", "--admin", "--ttl", "2h"],
        &shards,
    )
    .await;
    assert!(ok, "{out}");
    let keys = JwtKeys::new(SECRET.as_bytes()).expect("keys");
    let caller = keys.verify(out.trim()).await.expect("a valid token");
    assert_eq!(
        (caller.player.as_str(), caller.role),
        ("alice", Role::Admin)
    );
    let (ok, out) = trove(&["token", "--player", "bad id!"], &shards).await;
    assert!(!ok && out.contains("player ids"), "{out}");
    let (ok, out) = trove(&["token", "--player", "bob", "--ttl", "99999999d"], &shards).await;
    assert!(!ok && out.contains("ttl"), "{out}");
}

#[tokio::test]
async fn migrate_brings_every_shard_to_the_latest_version_and_shards_reports_them() {
    let urls = empty_databases().await;
    let (ok, out) = trove(&["shards"], &urls).await;
    assert!(!ok, "unmigrated shards must not look ready: {out}");
    assert!(out.contains("not migrated"), "{out}");

    let latest = trove::shards::latest_migration();
    let (ok, out) = trove(&["migrate"], &urls).await;
    assert!(ok, "{out}");
    for i in 0..2 {
        assert!(
            out.contains(&format!("shard {i} ")) && out.contains(&format!("version {latest}")),
            "{out}"
        );
    }
    // Running it again changes nothing and still succeeds.
    assert!(trove(&["migrate"], &urls).await.0);

    // A zone on each shard, then `trove shards` counts them where they live.
    let app = spawn_app_on(urls.clone()).await;
    app.starter().await;
    for shard in 0..2 {
        let zone = zone_on(shard, "counted");
        assert_eq!(
            app.spawn_zone(&zone, 3, "starter").await.status,
            StatusCode::CREATED
        );
    }
    let (ok, out) = trove(&["shards"], &urls).await;
    assert!(ok, "{out}");
    assert_eq!(
        out.matches(&format!("up, migration {latest}, 1 zones"))
            .count(),
        2,
        "{out}"
    );

    // A shard nobody answers on: reported DOWN, exit status non-zero.
    let mut broken = urls.clone();
    broken[1] = "postgres://trove@127.0.0.1:1/nowhere".into();
    let (ok, out) = trove(&["shards"], &broken).await;
    assert!(!ok && out.contains("DOWN"), "{out}");
}
