//! The fairness probe: `trove probe --once` (the real binary, over HTTP and WebSocket) passes
//! against a healthy Trove and names the violation when the database is deliberately broken;
//! old synthetic zones are deleted and real ones never are.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    fresh_db, fresh_db_on, metric, migrated_template, run_trove, spawn_app, spawn_app_on,
    start_cluster, zone_on, TestApp,
};

async fn probe_once(app: &TestApp, extra: &[&str]) -> (bool, String) {
    let admin = app.admin();
    let mut args = vec![
        "probe",
        "--once",
        "--url",
        &app.base,
        "--admin-token",
        &admin,
    ];
    args.extend_from_slice(extra);
    run_trove(&args, &[]).await
}

/// Runs `sql` on every shard of the app.
async fn on_every_shard(app: &TestApp, sql: &str) {
    for i in 0..app.shard_urls.len() {
        let mut db = app.shard_db(i).await;
        sqlx::raw_sql(sql).execute(&mut db).await.expect("tamper");
    }
}

#[tokio::test]
async fn the_probe_passes_on_a_healthy_stack_and_stays_off_real_metrics() {
    let app = spawn_app().await;
    let (ok, out) = probe_once(&app, &[]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("2 shard(s), 40 chests") && out.contains(": 0 violation(s)"),
        "{out}"
    );

    // Synthetic claims are counted apart from real ones.
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("trove_claims_total{"),
        "probe claims leaked into trove_claims_total"
    );
    let synthetic = |outcome: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "trove_synthetic_claims_total{{outcome=\"{outcome}\""
                ))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // Dropped requests that committed are answered by their retry (replayed), so at most the
    // 40 chests count as opened; every one of the 120 players got an answer counted here.
    let (opened, replayed, exhausted) = (
        synthetic("opened"),
        synthetic("replayed"),
        synthetic("zone_exhausted"),
    );
    assert!(opened > 0.0 && opened <= 40.0, "{metrics}");
    assert!(opened + replayed + exhausted >= 120.0, "{metrics}");
}

#[tokio::test]
async fn the_probe_names_a_chest_opened_twice() {
    let app = spawn_app().await;
    // Break the zero-dupe promise on purpose: no primary key on the ledger, and every opened
    // chest put straight back.
    on_every_shard(
        &app,
        "ALTER TABLE claims DROP CONSTRAINT claims_pkey;
         CREATE FUNCTION reopen() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO chests VALUES (OLD.zone_id, OLD.chest_id, OLD.loot_table_id);
             RETURN NULL;
         END $$;
         CREATE TRIGGER reopen AFTER DELETE ON chests FOR EACH ROW EXECUTE FUNCTION reopen();",
    )
    .await;
    let (ok, out) = probe_once(&app, &["--no-websocket"]).await;
    assert!(!ok, "the probe passed a double-opening database:\n{out}");
    assert!(out.contains("VIOLATION duplicate_chest"), "{out}");
    assert!(out.contains("the probe found"), "{out}");
}

#[tokio::test]
async fn the_probe_names_an_acknowledged_claim_the_ledger_lost() {
    let app = spawn_app().await;
    // Every ledger row vanishes once its claim has been answered.
    on_every_shard(
        &app,
        "CREATE FUNCTION forget() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             DELETE FROM claims WHERE zone_id = NEW.zone_id AND chest_id = NEW.chest_id;
             RETURN NULL;
         END $$;
         CREATE TRIGGER forget AFTER INSERT ON claims FOR EACH ROW EXECUTE FUNCTION forget();",
    )
    .await;
    let (ok, out) = probe_once(&app, &[]).await;
    assert!(!ok, "the probe passed a database that loses claims:\n{out}");
    assert!(out.contains("VIOLATION lost_claim"), "{out}");
    assert!(out.contains("VIOLATION event_mismatch"), "{out}");
}

#[tokio::test]
async fn old_synthetic_zones_are_deleted_and_real_ones_never() {
    let app = spawn_app().await;
    app.starter().await;
    let admin = app.admin();
    let real = zone_on(0, "real");
    let synthetic = zone_on(1, "probe.synthetic");
    assert_eq!(
        app.spawn_zone(&real, 5, "starter").await.status,
        StatusCode::CREATED
    );
    let spawned = app.spawn_synthetic_zone(&synthetic, 5, "starter").await;
    assert_eq!(spawned.status, StatusCode::CREATED);
    for zone in [&real, &synthetic] {
        let r = app
            .call(
                Method::POST,
                &format!("/v1/zones/{zone}/claims"),
                Some(&admin),
                Some(json!({"player": "p1"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }

    // Players may not delete; a young zone stays.
    let path = "/v1/synthetic-zones?older_than_secs=3600";
    let player = app.token("p1");
    let r = app
        .call(Method::DELETE, path, Some(&player), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::DELETE, path, Some(&admin), None, &[])
        .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({"deleted": 0}))
    );
    let r = app
        .call(
            Method::DELETE,
            "/v1/synthetic-zones?older_than_secs=-1",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );

    let r = app
        .call(
            Method::DELETE,
            "/v1/synthetic-zones?older_than_secs=0",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({"deleted": 1}))
    );
    assert_eq!(app.zone(&synthetic).await["error"], "zone_not_found");
    assert_eq!(app.ledger_count(&synthetic).await, 0);
    let mut db = app.shard_db(1).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM chests")
        .fetch_one(&mut db)
        .await
        .expect("count");
    assert_eq!(left, 0, "the synthetic zone's chests were left behind");
    // The real zone, its chests and its ledger are untouched.
    let z = app.zone(&real).await;
    assert_eq!(
        (z["total"].as_i64(), z["opened"].as_i64()),
        (Some(5), Some(1))
    );
    assert_eq!(app.ledger_count(&real).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_once_the_probe_keeps_going_and_reports_windows_as_metrics() {
    let app = spawn_app().await;
    let port = trove::local::free_port(29000 + (std::process::id() % 500) as u16 * 3);
    let mut probe = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"))
        .args(["probe", "--url", &app.base, "--admin-token", &app.admin()])
        .args([
            "--chests",
            "5",
            "--claimers",
            "12",
            "--racing",
            "2",
            "--dropped",
            "2",
        ])
        .args(["--interval", "1s", "--window", "2s"])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start trove probe");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(std::time::Instant::now() < deadline, "no window reported");
        let Ok(r) = app
            .client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        else {
            continue;
        };
        let text = r.text().await.expect("probe metrics");
        let windows = metric(&text, "trove_probe_window_rounds", &[]).unwrap_or(0.0);
        let clean = metric(&text, "trove_probe_rounds_total", &[("result", "clean")]);
        if windows >= 1.0 && clean >= Some(2.0) {
            break text;
        }
    };
    let _ = probe.kill().await;
    assert_eq!(
        metric(&text, "trove_probe_window_clean_ratio", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "trove_probe_rounds_total", &[("result", "violated")]),
        Some(0.0)
    );
    for kind in trove::probe::Kind::ALL {
        assert_eq!(
            metric(
                &text,
                "trove_probe_violations_total",
                &[("kind", kind.as_str())]
            ),
            Some(0.0),
            "{kind}"
        );
    }
    assert_eq!(
        metric(&text, "trove_probe_last_round_clean", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_with_a_shard_down_is_not_called_clean() {
    // Shard 1 is a cluster of this test's own, so stopping it disturbs no other test.
    let own = start_cluster("probe-down");
    migrated_template(&own).await;
    let app = spawn_app_on(vec![fresh_db_on(0).await, fresh_db(&own).await]).await;
    own.stop().expect("stop shard 1");
    let (ok, out) = probe_once(&app, &[]).await;
    assert!(!ok, "a round that could not check shard 1 passed:\n{out}");
    assert!(
        out.contains("could not run") && out.contains("shard 1"),
        "{out}"
    );
    assert!(
        !out.contains("VIOLATION"),
        "a down shard is not a broken promise:\n{out}"
    );
}
