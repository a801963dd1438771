//! Shards that are replicated groups: writes go to the primary only, and after a failover
//! Trove finds the promoted primary without a restart.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    fresh_db, fresh_db_on, metric, migrated_template, spawn_app_on, start_cluster, start_standby,
    zone_on,
};

/// A group listed standby first: Trove finds the primary at start, claims there, and when the
/// primary is stopped and the standby promoted (by hand here: the failover engine's part),
/// the shard's zones answer 503 until Trove finds the new primary, then claim again, with
/// every acknowledged claim still in the ledger.
#[tokio::test]
async fn a_shard_group_follows_its_primary_across_a_promotion() {
    let primary = start_cluster("group-primary");
    migrated_template(&primary).await;
    let url = fresh_db(&primary).await;
    let db = url.rsplit('/').next().expect("a database name").to_owned();
    let standby = start_standby(&primary, "group-standby");
    let group = format!(
        "postgres://trove@127.0.0.1:{},127.0.0.1:{}/{db}",
        standby.port, primary.port
    );
    let app = spawn_app_on(vec![fresh_db_on(0).await, group]).await;
    app.starter().await;
    let zone = zone_on(1, "grouped");
    assert_eq!(
        app.spawn_zone(&zone, 100, "starter").await.status,
        StatusCode::CREATED
    );
    let t = app.token("follower");
    let first = app.claim(&zone, &t, Some("before-failover")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let text = app.metrics_text().await;
    let on = |text: &str, port: u16| {
        let host = format!("127.0.0.1:{port}");
        metric(
            text,
            "trove_shard_primary",
            &[("shard", "1"), ("host", &host)],
        )
    };
    assert_eq!(on(&text, primary.port), Some(1.0), "{text}");
    assert_eq!(on(&text, standby.port), Some(0.0), "{text}");

    // A clean stop sends the standby every committed claim before the primary exits.
    primary.stop().expect("stop the primary");
    standby.promote().expect("promote the standby");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.claim(&zone, &t, None).await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(r.code(), "shard_unavailable", "{:?}", r.body);
        assert!(
            Instant::now() < deadline,
            "no new primary found: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replay = app.claim(&zone, &t, Some("before-failover")).await;
    assert_eq!(replay.status, StatusCode::OK, "{:?}", replay.body);
    assert_eq!(replay.body["chest_id"], first.body["chest_id"]);
    assert_eq!(app.ledger_count(&zone).await, 2);
    let text = app.metrics_text().await;
    assert_eq!(on(&text, standby.port), Some(1.0), "{text}");
    assert_eq!(on(&text, primary.port), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "trove_shard_failovers_total", &[("shard", "1")]),
        Some(1.0),
        "{text}"
    );
}
