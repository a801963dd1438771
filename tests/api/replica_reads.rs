//! Reads from standbys (`TROVE_READ_REPLICA_STALENESS_MS`): zone totals and chest listings
//! come from a standby within the staleness bound, never staler, and a player's own history
//! shows their claim at once.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sqlx::Connection;
use trove::config::Config;

use crate::helpers::{
    fresh_db, fresh_db_on, metric, migrated_template, spawn_app_with, start_cluster, start_standby,
    zone_on, TestApp, SECRET,
};

/// The staleness bound: long enough that a claim and a history read on a busy CI machine
/// fit inside it (at 2 s, CI once saw the paused standby judged too stale before the first
/// read after the claim).
const BOUND: Duration = Duration::from_millis(5000);

async fn standby_reads(app: &TestApp) -> f64 {
    let text = app.metrics_text().await;
    metric(&text, "trove_shard_standby_reads_total", &[("shard", "1")]).unwrap_or(0.0)
}

async fn opened_chests(app: &TestApp, zone: &str) -> usize {
    let t = app.token("lister");
    let r = app
        .call(
            Method::GET,
            &format!("/v1/zones/{zone}/chests?state=opened"),
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["chests"].as_array().map_or(0, Vec::len)
}

/// A shard of a primary and a streaming standby, the bound 5 s. Reads go to the standby
/// while it keeps up; with its replay paused, a claim is missing from what it serves (so the
/// reads really come from it) only until the bound: every read sent later than the bound
/// after the claim was acknowledged shows it (the primary answers). The claimer's history
/// shows the claim at once (it is read from the primary). Resumed, the standby serves again.
#[tokio::test]
async fn reads_come_from_a_standby_no_staler_than_the_bound() {
    let primary = start_cluster("reads-primary");
    migrated_template(&primary).await;
    let url = fresh_db(&primary).await;
    let db = url.rsplit('/').next().expect("a database name").to_owned();
    let standby = start_standby(&primary, "reads-standby");
    let group = format!(
        "postgres://trove@127.0.0.1:{},127.0.0.1:{}/{db}",
        primary.port, standby.port
    );
    let mut config = Config::for_shards(vec![fresh_db_on(0).await, group], SECRET);
    config.read_replica_staleness_ms = Some(BOUND.as_millis() as u64);
    let app = spawn_app_with(config).await;
    app.starter().await;
    let zone = zone_on(1, "replicated-reads");
    assert_eq!(
        app.spawn_zone(&zone, 100, "starter").await.status,
        StatusCode::CREATED
    );
    // The standby catches up with the spawn and starts serving the zone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = standby_reads(&app).await;
        let view = app.zone(&zone).await;
        if view["total"] == 100 && standby_reads(&app).await > before {
            break;
        }
        assert!(Instant::now() < deadline, "no read came from the standby");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut on_standby = sqlx::PgConnection::connect(&standby.url("postgres"))
        .await
        .expect("standby");
    sqlx::raw_sql("SELECT pg_wal_replay_pause()")
        .execute(&mut on_standby)
        .await
        .expect("pause replay");
    // A pause is a request the startup process takes up between records: wait until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&mut on_standby)
            .await
            .expect("pause state");
        if state == "paused" {
            break;
        }
        assert!(Instant::now() < deadline, "replay still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = app.token("claimer");
    let claim = app.claim(&zone, &t, None).await;
    assert_eq!(claim.status, StatusCode::CREATED, "{:?}", claim.body);
    let acknowledged = Instant::now();
    // Read-your-writes where it matters: the claimer's history is read from the primary.
    let history = app
        .call(
            Method::GET,
            "/v1/players/claimer/claims",
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{:?}", history.body);
    assert_eq!(
        history.body["claims"][0]["chest_id"],
        claim.body["chest_id"]
    );
    // Right after it the standby still answers, without the claim.
    let before = standby_reads(&app).await;
    assert_eq!(
        app.zone(&zone).await["opened"],
        0,
        "not from the standby, {:?} after the claim",
        acknowledged.elapsed()
    );
    assert_eq!(opened_chests(&app, &zone).await, 0);
    assert!(standby_reads(&app).await >= before + 2.0);
    let mut stale_for = Duration::ZERO;
    while acknowledged.elapsed() < BOUND + Duration::from_secs(1) {
        let sent = acknowledged.elapsed();
        let opened = app.zone(&zone).await["opened"].clone();
        if opened == 0 {
            stale_for = sent;
            assert!(sent <= BOUND, "a read {sent:?} after the claim missed it");
        } else {
            assert_eq!(opened, 1);
            assert_eq!(opened_chests(&app, &zone).await, 1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("the paused standby served reads up to {stale_for:?} after the claim");
    assert!(
        stale_for > Duration::ZERO,
        "the standby never served the stale view"
    );

    sqlx::raw_sql("SELECT pg_wal_replay_resume()")
        .execute(&mut on_standby)
        .await
        .expect("resume replay");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = standby_reads(&app).await;
        let view = app.zone(&zone).await;
        if view["opened"] == 1 && standby_reads(&app).await > before {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
