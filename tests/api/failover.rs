//! Shards that are replicated groups: writes go to the primary only, and after a failover
//! Trove finds the promoted primary without a restart.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use trove::local::formation::{Detection, Etcd, Formation};
use trove::shards::MIGRATOR;

use crate::helpers::{
    fresh_db, fresh_db_on, metric, migrated_template, spawn_app_on, spawn_app_with, start_cluster,
    start_standby, test_dir, zone_on, RedisServer, TestApp,
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
    let app = spawn_app_on(vec![fresh_db_on(0).await, group.clone()]).await;
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
    // `/readyz` (and `trove shards`) name each host's role, and a standby's lag.
    let ready: serde_json::Value = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz json");
    let hosts = ready["shards"][1]["hosts"]
        .as_array()
        .expect("hosts")
        .clone();
    let role = |port: u16| {
        let host = format!("127.0.0.1:{port}");
        hosts
            .iter()
            .find(|h| h["host"] == host.as_str())
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(role(primary.port)["role"], "primary", "{ready}");
    assert_eq!(role(standby.port)["role"], "standby", "{ready}");
    assert!(
        role(standby.port)["lag_bytes"].as_u64().is_some(),
        "{ready}"
    );
    assert_eq!(
        ready["shards"][0]["hosts"],
        serde_json::json!([]),
        "{ready}"
    );
    // `trove shards add` takes a group too, its standby listed first.
    let added = fresh_db(&primary).await;
    let added_db = added.rsplit('/').next().expect("a database name");
    let second_group = format!(
        "postgres://trove@127.0.0.1:{},127.0.0.1:{}/{added_db}",
        standby.port, primary.port
    );
    let id = app
        .engine
        .shards
        .add(&second_group)
        .await
        .expect("a group added as a shard");
    assert_eq!(id.ordinal, 2);
    // `trove shards` starts cold, with the standby listed first.
    let cold = trove::shards::ShardSet::new(&trove::shards::Settings {
        urls: vec![fresh_db_on(0).await, group.clone()],
        pool_size: 2,
        acquire_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
        read_staleness: None,
    })
    .expect("shards");
    let (lines, down) = trove::shards::report(&cold.status().await);
    assert_eq!(down, 0, "{lines:?}");
    let standby_line = format!("  host 127.0.0.1:{}: standby, ", standby.port);
    assert!(
        lines.iter().any(|l| l.starts_with(&standby_line)),
        "{lines:?}"
    );

    // A clean stop sends the standby every committed claim before the primary exits.
    primary.stop().expect("stop the primary");
    standby.promote().expect("promote the standby");
    let r = claim_until_answered(&app, &zone, &t, None, Duration::from_secs(10)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
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

/// A claim retried (as a client would) while its shard answers 503 `shard_unavailable` or
/// 408 `request_timeout`, until it is answered with a success, within `within`.
pub(crate) async fn claim_until_answered(
    app: &TestApp,
    zone: &str,
    token: &str,
    key: Option<&str>,
    within: Duration,
) -> crate::helpers::Resp {
    let deadline = Instant::now() + within;
    loop {
        let r = app.claim(zone, token, key).await;
        if r.status.is_success() {
            return r;
        }
        // 408: the attempt outlasted the request (waiting for a commit): outcome unknown.
        let code = r.code();
        assert!(
            code == "shard_unavailable" || code == "request_timeout",
            "{:?}",
            r.body
        );
        assert!(Instant::now() < deadline, "never answered: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one storm client saw: every key it was acknowledged for, with the chest, and every
/// answer that was not a success on the zone of the shard that stayed up.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) acknowledged: Vec<(String, i64)>,
    pub(crate) errors_elsewhere: Vec<String>,
    /// When the failed shard's zone first refused a claim, and first opened one again after.
    pub(crate) first_failure: Option<Instant>,
    pub(crate) first_success_after: Option<Instant>,
}

/// `clients` players claim with idempotency keys until `stop`, half on `failing` (the zone of
/// the replicated shard), half on `steady`: a refused claim is retried with its key until it
/// is acknowledged, as a game client would.
pub(crate) async fn storm(
    app: Arc<TestApp>,
    round: u32,
    clients: usize,
    failing: String,
    steady: String,
    stop: Arc<AtomicBool>,
) -> Seen {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
            let zone = if c % 2 == 0 {
                failing.clone()
            } else {
                steady.clone()
            };
            let on_failing = c % 2 == 0;
            tokio::spawn(async move {
                let token = app.token(&format!("stormer{c}"));
                let mut seen = Seen::default();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{zone}-{round}-{c}-{n}");
                    n += 1;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let r = app.claim(&zone, &token, Some(&key)).await;
                        if r.status.is_success() {
                            let chest = r.body["chest_id"].as_i64().expect("a chest");
                            seen.acknowledged.push((key.clone(), chest));
                            if on_failing && seen.first_failure.is_some() {
                                seen.first_success_after.get_or_insert_with(Instant::now);
                            }
                            break;
                        }
                        if on_failing {
                            // 408: the attempt outlasted the request (its commit waiting
                            // on a primary being lost): outcome unknown, retried.
                            let code = r.code();
                            assert!(
                                code == "shard_unavailable" || code == "request_timeout",
                                "{:?}",
                                r.body
                            );
                            seen.first_failure.get_or_insert_with(Instant::now);
                        } else {
                            seen.errors_elsewhere
                                .push(format!("{}: {}", r.status, r.body));
                        }
                        assert!(Instant::now() < deadline, "{key} never acknowledged");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Seen::default();
    for t in tasks {
        let s = t.await.expect("storm client");
        all.acknowledged.extend(s.acknowledged);
        all.errors_elsewhere.extend(s.errors_elsewhere);
        all.first_failure = match (all.first_failure, s.first_failure) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.first_success_after = match (all.first_success_after, s.first_success_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    all
}

/// Stops a storm and returns what it saw, once the zone of the shard that stayed up is known
/// to have seen no error; prints the failing zone's window (`what` says which).
pub(crate) async fn end_storm(
    clients: tokio::task::JoinHandle<Seen>,
    stop: &AtomicBool,
    what: &str,
) -> Seen {
    stop.store(true, Ordering::Relaxed);
    let seen = clients.await.expect("storm");
    assert!(
        seen.errors_elsewhere.is_empty(),
        "shard 0 saw {:?}",
        seen.errors_elsewhere
    );
    if let (Some(a), Some(b)) = (seen.first_failure, seen.first_success_after) {
        println!("{what}: the zone was unavailable for {:?}", b - a);
    }
    seen
}

/// The ledger rows with an idempotency key of `zone`, by key.
pub(crate) async fn keyed_ledger(app: &TestApp, shard: usize, zone: &str) -> HashMap<String, i64> {
    let mut db = app.shard_db(shard).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.idempotency_key, c.chest_id FROM claims c JOIN zones z ON z.id = c.zone_id
         WHERE z.name = $1 AND c.idempotency_key IS NOT NULL",
    )
    .bind(zone)
    .fetch_all(&mut db)
    .await
    .expect("ledger");
    rows.into_iter().collect()
}

/// A formation of three nodes under Patroni (tuned detection) as shard 1. During a 64-client
/// storm its primary is killed (Patroni and postmaster, -9), and later the new primary is
/// stopped cleanly: each time another node is promoted, Trove follows it, every acknowledged
/// claim is in the ledger with the chest it was acknowledged with, no key opened twice, and the
/// zone on shard 0 never sees an error; a subscriber gets every surviving claim once and the
/// leaderboards equal the new primary's ledger. Then both standbys are stopped: claims wait rather than
/// being acknowledged on the primary alone. (One formation for all three: it takes seconds to
/// form, and CI's time is shared.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_shard_loses_no_acknowledged_claim_when_its_servers_fail() {
    let _turn = crate::helpers::formation_turn().await;
    let dir = test_dir("formation");
    let base = 40000 + (std::process::id() % 500) as u16 * 20;
    let etcd = Etcd::start(&dir.join("etcd"), base).expect("etcd");
    // Durability across a machine crash is not under test (pg_rewind needs full_page_writes).
    let settings = [("fsync", "off")];
    let mut formation = Formation::start(
        &dir,
        "shard1",
        &etcd,
        3,
        base + 3,
        Detection::TUNED,
        &settings,
    )
    .expect("formation");
    let started = Instant::now();
    let first = formation
        .wait_ready(Duration::from_secs(90))
        .await
        .expect("a primary and two standbys");
    println!("formation ready in {:?}", started.elapsed());
    {
        let mut conn = formation.nodes[first]
            .connect("postgres")
            .await
            .expect("primary");
        sqlx::raw_sql("CREATE DATABASE storm")
            .execute(&mut conn)
            .await
            .expect("create");
        let mut db = formation.nodes[first]
            .connect("storm")
            .await
            .expect("storm db");
        MIGRATOR.run(&mut db).await.expect("migrate");
    }
    // Leaderboards on: they follow the replicated shard's ledger through the failovers too.
    let redis = RedisServer::start().await;
    let urls = [fresh_db_on(0).await, formation.url("storm")];
    let mut config = crate::redis::config(&urls, &redis);
    // A storm, not abuse: no player is rate limited here.
    config.rate_claims = "100000/100000".parse().expect("a rate");
    let app = Arc::new(spawn_app_with(config).await);
    app.starter().await;
    let failing = zone_on(1, "replicated");
    let steady = zone_on(0, "steady");
    for z in [&failing, &steady] {
        assert_eq!(
            app.spawn_zone(z, 200_000, "starter").await.status,
            StatusCode::CREATED
        );
    }

    // The watcher sees both standbys and a primary that waits for one.
    wait_for_metric(
        &app,
        "trove_shard_synchronous",
        1.0,
        Duration::from_secs(10),
    )
    .await;
    // Each standby's lag is reported once it streams: the synchronous one streams already,
    // the other may still be catching up (on a busy machine a watcher poll or two later).
    let standbys: Vec<String> = formation
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != first)
        .map(|(_, node)| format!("127.0.0.1:{}", node.port))
        .collect();
    wait_for_metrics(
        &app,
        "every standby's lag",
        Duration::from_secs(15),
        |text| {
            standbys.iter().all(|host| {
                let labels = [("shard", "1"), ("host", host.as_str())];
                metric(text, "trove_shard_standby_lag_bytes", &labels).is_some()
            })
        },
    )
    .await;

    // A subscriber of the replicated shard's zone, through both failovers.
    let mut ws = crate::realtime::connect(&app, "watcher").await;
    crate::realtime::subscribe(&mut ws, &[&failing]).await;
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let watching = Arc::clone(&watching);
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                match crate::realtime::next(&mut ws, Duration::from_millis(200)).await {
                    Some(v) => got.push(v),
                    None if !watching.load(Ordering::Relaxed) => return got,
                    None => {}
                }
            }
        })
    };
    let mut primary = first;
    let mut acknowledged: HashMap<String, i64> = HashMap::new();
    for (round, clean) in [(1, false), (2, true)] {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = tokio::spawn(storm(
            Arc::clone(&app),
            round,
            64,
            failing.clone(),
            steady.clone(),
            Arc::clone(&stop),
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lost = Instant::now();
        if clean {
            formation.nodes[primary].stop();
        } else {
            formation.nodes[primary].kill();
        }
        // Claims go on until the shard has answered again for a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        let promoted = loop {
            if let Some(p) = formation.primary().await {
                if p != primary {
                    break p;
                }
            }
            assert!(Instant::now() < deadline, "no other node was promoted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "round {round}: node {promoted} promoted {:?} after the loss",
            lost.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let seen = end_storm(clients, &stop, &format!("round {round}")).await;
        let ledger = keyed_ledger(&app, 1, &failing).await;
        for (key, chest) in seen.acknowledged {
            if key.starts_with(&failing) {
                assert_eq!(
                    acknowledged.insert(key, chest),
                    None,
                    "a key acknowledged twice"
                );
            }
        }
        for (key, chest) in &acknowledged {
            assert_eq!(
                ledger.get(key),
                Some(chest),
                "acknowledged {key} lost or changed"
            );
        }
        // Every key was retried until acknowledged: the ledger holds exactly those.
        assert_eq!(
            ledger.len(),
            acknowledged.len(),
            "claims without an acknowledged key"
        );
        let chests: HashSet<i64> = ledger.values().copied().collect();
        assert_eq!(chests.len(), ledger.len(), "a chest opened twice");
        let text = app.metrics_text().await;
        assert_eq!(
            metric(&text, "trove_shard_failovers_total", &[("shard", "1")]),
            Some(f64::from(round)),
            "{text}"
        );
        let host = format!("127.0.0.1:{}", formation.nodes[promoted].port);
        assert_eq!(
            metric(
                &text,
                "trove_shard_primary",
                &[("shard", "1"), ("host", &host)]
            ),
            Some(1.0)
        );
        // The lost node comes back as a standby, so the next round again has two.
        formation.nodes[primary]
            .start()
            .expect("restart the lost node");
        formation
            .wait_ready(Duration::from_secs(90))
            .await
            .expect("the formation whole again");
        primary = promoted;
    }
    // No event arrived twice or for a claim the new primary does not have, and every surviving
    // claim arrived (unless the subscriber was sent a snapshot instead).
    let ledger = keyed_ledger(&app, 1, &failing).await;
    let want: HashSet<i64> = ledger.values().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !watcher.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if Instant::now() + Duration::from_secs(15) > deadline {
            watching.store(false, Ordering::Relaxed);
        }
    }
    watching.store(false, Ordering::Relaxed);
    let got = watcher.await.expect("the subscriber");
    // `lagged` (this reader fell behind the storm) and `resync` both come with a snapshot
    // instead of the events missed; checking that snapshot is still to do.
    let resyncs = got
        .iter()
        .filter(|v| v["type"] == "resync" || v["type"] == "lagged")
        .count();
    let opened: Vec<i64> = got
        .iter()
        .filter(|v| v["type"] == "chest_opened")
        .filter_map(|v| v["chest_id"].as_i64())
        .collect();
    let distinct: HashSet<i64> = opened.iter().copied().collect();
    assert_eq!(distinct.len(), opened.len(), "an event arrived twice");
    assert!(
        distinct.is_subset(&want),
        "an event of a claim the ledger does not have"
    );
    let kinds: HashSet<String> = got.iter().map(|v| v["type"].to_string()).collect();
    let missing = want.difference(&distinct).count();
    if resyncs == 0 {
        assert_eq!(
            missing, 0,
            "claims missing from the events, with no snapshot"
        );
    }
    println!(
        "subscriber: {} events ({kinds:?}), {resyncs} snapshots, {missing} of {} claims missing",
        opened.len(),
        want.len()
    );
    // The boards equal the ledger the new primary has: no entry for a claim it lost.
    let scopes = ["global".to_owned(), failing.clone(), steady.clone()];
    crate::redis::boards_match_ledger(&app, &scopes).await;
    let standby = without_standbys_claims_wait(&app, &mut formation, primary, &failing).await;
    degrading_is_counted(&app, &mut formation, standby, &failing).await;
    drop(formation);
    drop(etcd);
}

/// With every standby stopped, the primary makes commits wait (`synchronous_mode_strict`)
/// instead of acknowledging a claim that is on one server: the claim is not answered and not
/// visible in the ledger until a standby is back; then it is acknowledged, once.
async fn without_standbys_claims_wait(
    app: &Arc<TestApp>,
    formation: &mut Formation,
    primary: usize,
    zone: &str,
) -> usize {
    let standbys: Vec<usize> = (0..formation.nodes.len())
        .filter(|&i| i != primary)
        .collect();
    for &i in &standbys {
        formation.nodes[i].stop();
    }
    let token = app.token("alone");
    let pending = {
        let (app, zone, token) = (Arc::clone(app), zone.to_owned(), token.clone());
        tokio::spawn(async move { app.claim(&zone, &token, Some("while-alone")).await })
    };
    // Longer than the shards' statement timeout (5 s): PostgreSQL lifts it before the commit,
    // so it cannot cut the wait short and leave a claim committed on the primary alone.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        !pending.is_finished(),
        "a claim was answered with no standby"
    );
    let ledger = keyed_ledger(app, 1, zone).await;
    assert!(
        !ledger.contains_key("while-alone"),
        "visible before it is on a standby"
    );

    formation.nodes[standbys[0]]
        .start()
        .expect("a standby back");
    let answer = pending.await.expect("the waiting claim");
    let chest = if answer.status == StatusCode::CREATED {
        answer.body["chest_id"].clone()
    } else {
        // The wait outlasted the request (408) or the pool (503): retried with its key (503
        // while the standby attaches), it is answered once (200: replayed; 201: the waiting
        // attempt had not committed after all).
        let key = Some("while-alone");
        let retry = claim_until_answered(app, zone, &token, key, Duration::from_secs(30)).await;
        retry.body["chest_id"].clone()
    };
    let ledger = keyed_ledger(app, 1, zone).await;
    assert_eq!(ledger.get("while-alone").map(|&c| c.into()), Some(chest));
    standbys[0]
}

/// Waits until the metric `name{shard="1"}` reads `want`.
async fn wait_for_metric(app: &TestApp, name: &str, want: f64, within: Duration) {
    let what = format!("{name} {want}");
    wait_for_metrics(app, &what, within, |text| {
        metric(text, name, &[("shard", "1")]) == Some(want)
    })
    .await;
}

/// Polls Trove's metrics until `ok` holds of them (panics with `what` and the last text if
/// it has not `within`).
async fn wait_for_metrics(app: &TestApp, what: &str, within: Duration, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let text = app.metrics_text().await;
        if ok(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The opt-in degrade (`synchronous_mode_strict: false`): when the last standby stops, the
/// primary commits alone, so claims are answered, and Trove says the shard is degraded
/// (`trove_shard_synchronous` 0, `trove_shard_degraded_total` counted, a warning logged).
async fn degrading_is_counted(
    app: &TestApp,
    formation: &mut Formation,
    standby: usize,
    zone: &str,
) {
    wait_for_metric(app, "trove_shard_synchronous", 1.0, Duration::from_secs(10)).await;
    let text = app.metrics_text().await;
    assert_eq!(
        metric(&text, "trove_shard_degraded_total", &[("shard", "1")]),
        Some(0.0),
        "{text}"
    );
    formation
        .patch_config(&serde_json::json!({"synchronous_mode_strict": false}))
        .await
        .expect("strict mode off");
    // Patroni degrades when the standby it made synchronous goes: wait until it has one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !formation.nodes[standby].is_sync_standby().await {
        assert!(Instant::now() < deadline, "no synchronous standby");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    formation.nodes[standby].stop();
    let token = app.token("degraded");
    let started = Instant::now();
    let r = claim_until_answered(app, zone, &token, Some("alone"), Duration::from_secs(30)).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    println!(
        "degraded: answered {:?} after the last standby stopped",
        started.elapsed()
    );
    wait_for_metric(app, "trove_shard_synchronous", 0.0, Duration::from_secs(5)).await;
    wait_for_metric(
        app,
        "trove_shard_degraded_total",
        1.0,
        Duration::from_secs(5),
    )
    .await;
}
