//! Zones live only on their shard, histories gather from all shards, and a down shard fails
//! fast without taking the others with it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use trove::shards::shard_index;

use crate::helpers::{
    fresh_db, fresh_db_on, metric, migrated_template, spawn_app, spawn_app_on, start_cluster,
    zone_on,
};

#[tokio::test]
async fn zone_rows_live_only_on_their_shard_and_history_spans_shards() {
    let app = spawn_app().await;
    app.starter().await;
    let zones: Vec<String> = (0..12).map(|i| format!("spread-{i}")).collect();
    for z in &zones {
        assert_eq!(
            app.spawn_zone(z, 5, "starter").await.status,
            StatusCode::CREATED
        );
    }
    let on: Vec<usize> = zones.iter().map(|z| shard_index(z, 2)).collect();
    assert!(
        on.contains(&0) && on.contains(&1),
        "zones should spread: {on:?}"
    );

    let t = app.token("wanderer");
    let mut opened = Vec::new();
    for z in &zones {
        let r = app.claim(z, &t, None).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(app.zone(z).await["shard"], shard_index(z, 2));
        let mut claim = r.body;
        // A history lists claims as recorded; a claim's answer adds its receipt.
        claim.as_object_mut().expect("claim").remove("receipt");
        opened.push(claim);
    }
    for shard in 0..2 {
        let mut db = app.shard_db(shard).await;
        let mut here: Vec<String> = sqlx::query_scalar("SELECT name FROM zones ORDER BY name")
            .fetch_all(&mut db)
            .await
            .expect("zones");
        let mut expected: Vec<String> = zones
            .iter()
            .filter(|z| shard_index(z, 2) == shard)
            .cloned()
            .collect();
        here.sort();
        expected.sort();
        assert_eq!(here, expected, "shard {shard} zones");
        let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM claims")
            .fetch_one(&mut db)
            .await
            .expect("count");
        let chests: i64 = sqlx::query_scalar("SELECT count(*) FROM chests")
            .fetch_one(&mut db)
            .await
            .expect("count");
        assert_eq!(claims as usize, expected.len());
        assert_eq!(chests as usize, expected.len() * 4);
    }

    // History: newest first, from both shards, paged without gaps or repeats.
    let mut seen = Vec::new();
    let mut path = "/v1/players/wanderer/claims?limit=5".to_owned();
    loop {
        let page = app.call(Method::GET, &path, Some(&t), None, &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        for c in page.body["claims"].as_array().expect("claims") {
            seen.push(c.clone());
        }
        match page.body["next"].as_str() {
            Some(next) => path = format!("/v1/players/wanderer/claims?limit=5&before={next}"),
            None => break,
        }
    }
    opened.reverse();
    assert_eq!(seen, opened);
    // Players read only their own history; admins read anyone's.
    let other = app.token("someone-else");
    let denied = app
        .call(
            Method::GET,
            "/v1/players/wanderer/claims",
            Some(&other),
            None,
            &[],
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let admin = app.admin();
    let ok = app
        .call(
            Method::GET,
            "/v1/players/wanderer/claims",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(ok.body["claims"].as_array().map(Vec::len), Some(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_shard_answers_503_fast_while_the_other_keeps_working() {
    // Shard 1 is a cluster of this test's own, so stopping it disturbs no other test.
    let own = start_cluster("down-test");
    migrated_template(&own).await;
    let urls = vec![fresh_db_on(0).await, fresh_db(&own).await];
    let app = spawn_app_on(urls).await;
    app.starter().await;
    let up = zone_on(0, "alive");
    let down = zone_on(1, "doomed");
    app.spawn_zone(&up, 100, "starter").await;
    app.spawn_zone(&down, 100, "starter").await;
    let t = app.token("survivor");
    assert_eq!(app.claim(&down, &t, None).await.status, StatusCode::CREATED);

    own.stop().expect("stop shard 1");
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        let r = app.claim(&down, &t, None).await;
        let took = started.elapsed();
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "shard_unavailable"),
            "{:?}",
            r.body
        );
        assert_eq!(
            r.headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("")),
            Some("1")
        );
        if i > 0 {
            slowest = slowest.max(took);
        }
        let ok = app.claim(&up, &t, None).await;
        assert_eq!(
            ok.status,
            StatusCode::CREATED,
            "healthy shard must keep working: {:?}",
            ok.body
        );
    }
    // After the first detection the shard is known down: no waiting on connect timeouts.
    assert!(slowest < Duration::from_millis(500), "503 took {slowest:?}");
    let zone_read = app.zone(&down).await;
    assert_eq!(zone_read["error"], "shard_unavailable");
    // A history needs every shard: it is 503 rather than silently partial.
    let h = app
        .call(
            Method::GET,
            "/v1/players/survivor/claims",
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    // Operators see it: refused claims by outcome and shard, and the shard marked down.
    let text = app.metrics_text().await;
    let refused = metric(
        &text,
        "trove_claims_total",
        &[("outcome", "shard_unavailable"), ("shard", "1")],
    );
    assert_eq!(refused, Some(10.0), "{text}");
    assert_eq!(
        metric(&text, "trove_shard_up", &[("shard", "1")]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "trove_shard_up", &[("shard", "0")]),
        Some(1.0)
    );

    own.start().expect("restart shard 1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.claim(&down, &t, None).await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shard did not come back: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.ledger_count(&down).await, 2);
}
