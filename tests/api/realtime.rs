//! The WebSocket fan-out: events come from the shards' ledgers, reach every instance, never
//! for rolled-back or replayed claims, survive shard restarts and resume without gaps.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use trove::config::Config;
use trove::shards::shard_index;

use crate::helpers::{
    assert_no_scan, fresh_db, fresh_db_on, metric, migrated_template, patient, spawn_app,
    spawn_app_on, spawn_app_with, start_cluster, zone_on, TestApp, SECRET,
};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) async fn connect(app: &TestApp, player: &str) -> Ws {
    let url = format!(
        "{}/v1/ws?token={}",
        app.base.replace("http://", "ws://"),
        app.token(player)
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect")
        .0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string()))
        .await
        .expect("ws send");
}

/// The next JSON message (skipping pings), or None if nothing comes within `wait`.
pub(crate) async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return Some(serde_json::from_str(t.as_str()).expect("json"))
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                return Some(json!({"type": "__closed", "code": f.map(|f| u16::from(f.code))}))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => return Some(json!({"type": "__closed"})),
            Err(_) => return None,
        }
    }
}

async fn expect(ws: &mut Ws, kind: &str) -> Value {
    let v = next(ws, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no {kind} message"));
    assert_eq!(v["type"], kind, "{v}");
    v
}

/// A new connection of `player` subscribing to `zone` with `since`; its first message.
pub(crate) async fn resume_on(app: &TestApp, player: &str, zone: &str, since: &str) -> Value {
    let mut ws = connect(app, player).await;
    send(
        &mut ws,
        json!({"op": "subscribe", "zones": [zone], "since": since}),
    )
    .await;
    next(&mut ws, Duration::from_secs(5))
        .await
        .expect("an answer to the resume")
}

pub(crate) async fn subscribe(ws: &mut Ws, zones: &[&str]) -> Value {
    send(ws, json!({"op": "subscribe", "zones": zones})).await;
    expect(ws, "subscribed").await
}

/// Collects `chest_opened` events until `n` arrived (or panics after `wait`).
async fn opened_events(ws: &mut Ws, n: usize, wait: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let mut others = Vec::new();
    let deadline = Instant::now() + wait;
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(ws, left).await {
            Some(v) if v["type"] == "chest_opened" => out.push(v),
            Some(v) => others.push(v["type"].clone()),
            None => panic!(
                "only {} of {n} chest_opened events arrived (and {others:?})",
                out.len()
            ),
        }
    }
    out
}

/// Nothing but pings arrives for `wait`.
async fn quiet(ws: &mut Ws, wait: Duration) {
    if let Some(v) = next(ws, wait).await {
        panic!("expected silence, got {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_exactly_their_zones_committed_claims() {
    let app = spawn_app().await;
    app.starter().await;
    let (a, b) = (zone_on(0, "watch-a"), zone_on(1, "watch-b"));
    app.spawn_zone(&a, 50, "starter").await;
    app.spawn_zone(&b, 50, "starter").await;
    let mut ws = connect(&app, "watcher").await;
    let sub = subscribe(&mut ws, &[&a]).await;
    assert_eq!(
        sub["zones"],
        json!([{"zone": a, "total": 50, "opened": 0, "remaining": 50}])
    );
    assert!(sub["position"].is_string());

    let t = app.token("opener");
    let mut claims = Vec::new();
    for i in 0..5 {
        claims.push(app.claim(&a, &t, Some(&format!("k{i}"))).await.body);
        app.claim(&b, &t, None).await; // not subscribed: must not arrive
    }
    let events = opened_events(&mut ws, 5, Duration::from_secs(5)).await;
    for (e, c) in events.iter().zip(&claims) {
        assert_eq!(e["zone"], json!(a));
        assert_eq!(e["chest_id"], c["chest_id"]);
        assert_eq!(e["player"], "opener");
        assert_eq!(e["claim_id"], c["claim_id"]);
        assert_eq!(e["opened_at"], c["opened_at"]);
        let best = c["loot"]
            .as_array()
            .expect("loot")
            .iter()
            .map(|i| rank(i["rarity"].as_str().expect("r")))
            .max();
        assert_eq!(e["rarity"].as_str().map(rank), best);
        assert!(e["position"].is_string());
    }
    // Replays (same keys), a failed claim and a rolled-back ledger row emit nothing.
    for i in 0..5 {
        assert_eq!(
            app.claim(&a, &t, Some(&format!("k{i}"))).await.status,
            StatusCode::OK
        );
    }
    let missing = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/zones/{a}/chests/999/claim"),
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let mut db = app.shard_db(shard_index(&a, 2)).await;
    let mut tx = sqlx::Connection::begin(&mut db).await.expect("begin");
    sqlx::query("INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot) SELECT id, 9999, gen_random_uuid(), 'ghost', 1, 1, '[]' FROM zones WHERE name = $1")
        .bind(&a)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    quiet(&mut ws, Duration::from_millis(600)).await;

    // Spawns are events too, with the zone's totals as of the spawn's own position: claims
    // that commit after it (here all read by the tail in the same poll, because an open
    // transaction holds the horizon back) are not counted in it.
    let mut holder = sqlx::Connection::begin(&mut db).await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .expect("take an xid");
    app.spawn_zone(&a, 10, "starter").await;
    for _ in 0..3 {
        assert_eq!(app.claim(&a, &t, None).await.status, StatusCode::CREATED);
    }
    holder.commit().await.expect("commit");
    let spawned = expect(&mut ws, "chests_spawned").await;
    assert_eq!(
        (
            spawned["zone"].clone(),
            spawned["count"].clone(),
            spawned["total"].clone(),
            spawned["remaining"].clone()
        ),
        (json!(a), json!(10), json!(60), json!(55))
    );
    assert!(spawned["position"].is_string());
    opened_events(&mut ws, 3, Duration::from_secs(5)).await;

    // After unsubscribing, nothing more.
    send(&mut ws, json!({"op": "unsubscribe", "zones": [a]})).await;
    expect(&mut ws, "unsubscribed").await;
    app.claim(&a, &t, None).await;
    quiet(&mut ws, Duration::from_millis(600)).await;
    send(&mut ws, json!({"op": "ping"})).await;
    expect(&mut ws, "pong").await;
}

fn rank(r: &str) -> u8 {
    ["common", "uncommon", "rare", "epic", "legendary"]
        .iter()
        .position(|x| *x == r)
        .expect("rarity") as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_served_by_one_instance_reaches_subscribers_of_another() {
    let a = spawn_app().await;
    a.starter().await;
    let b = spawn_app_on(a.shard_urls.clone()).await;
    let zones = [zone_on(0, "shared"), zone_on(1, "shared")];
    for z in &zones {
        a.spawn_zone(z, 20, "starter").await;
    }
    let mut on_b = connect(&b, "fan").await;
    let mut on_a = connect(&a, "fan2").await;
    subscribe(&mut on_b, &[&zones[0], &zones[1]]).await;
    subscribe(&mut on_a, &[&zones[0], &zones[1]]).await;
    let t = a.token("hero");
    let mut ids = HashSet::new();
    for z in &zones {
        for _ in 0..3 {
            ids.insert(a.claim(z, &t, None).await.body["claim_id"].clone());
        }
    }
    for ws in [&mut on_b, &mut on_a] {
        let got: HashSet<Value> = opened_events(ws, 6, Duration::from_secs(5))
            .await
            .into_iter()
            .map(|e| e["claim_id"].clone())
            .collect();
        assert_eq!(got, ids);
        quiet(ws, Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_with_the_last_position_replays_exactly_the_missed_claims() {
    let app = spawn_app().await;
    app.starter().await;
    let (z0, z1) = (zone_on(0, "resume"), zone_on(1, "resume"));
    app.spawn_zone(&z0, 200, "starter").await;
    app.spawn_zone(&z1, 200, "starter").await;
    let t = app.token("runner");
    let mut ws = connect(&app, "flaky").await;
    subscribe(&mut ws, &[&z0, &z1]).await;
    for z in [&z0, &z1, &z0] {
        app.claim(z, &t, None).await;
    }
    let seen = opened_events(&mut ws, 3, Duration::from_secs(5)).await;
    let last = seen.last().expect("event")["position"]
        .as_str()
        .expect("pos")
        .to_owned();
    ws.close(None).await.expect("close");

    // 50 claims while disconnected, across both shards, plus noise in another zone.
    let mut missed = Vec::new();
    for i in 0..50 {
        let z = if i % 2 == 0 { &z0 } else { &z1 };
        missed.push(app.claim(z, &t, None).await.body["claim_id"].clone());
    }
    let other = zone_on(0, "elsewhere");
    app.spawn_zone(&other, 5, "starter").await;
    app.claim(&other, &t, None).await;

    let mut ws = connect(&app, "flaky").await;
    send(
        &mut ws,
        json!({"op": "subscribe", "zones": [z0, z1], "since": last}),
    )
    .await;
    // Replayed events up to the subscription's position, then `subscribed` with a snapshot
    // as of that position, then (if the tail had not caught up yet) the rest live.
    let mut replayed = Vec::new();
    let snapshot_opened = loop {
        let v = next(&mut ws, Duration::from_secs(5))
            .await
            .expect("message");
        match v["type"].as_str() {
            Some("chest_opened") => replayed.push(v["claim_id"].clone()),
            Some("subscribed") => {
                assert_eq!(v["resumed"], true);
                break v["zones"]
                    .as_array()
                    .expect("zones")
                    .iter()
                    .map(|z| z["opened"].as_i64().expect("n"))
                    .sum::<i64>();
            }
            other => panic!("unexpected {other:?}: {v}"),
        }
    };
    let live_before_new = 50 - replayed.len();
    for e in opened_events(&mut ws, live_before_new, Duration::from_secs(5)).await {
        replayed.push(e["claim_id"].clone());
    }
    assert_eq!(
        snapshot_opened as usize + live_before_new,
        53,
        "snapshot must match its position"
    );
    let as_set = |v: &Vec<Value>| v.iter().cloned().collect::<HashSet<_>>();
    assert_eq!(replayed.len(), 50, "duplicates or gaps");
    assert_eq!(as_set(&replayed), as_set(&missed));
    // And live events continue after the replay.
    let live = app.claim(&z1, &t, None).await.body["claim_id"].clone();
    assert_eq!(
        opened_events(&mut ws, 1, Duration::from_secs(5)).await[0]["claim_id"],
        live
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_errors_and_oversized_ones_close_with_1009() {
    let app = spawn_app().await;
    // No or bad token: the upgrade is refused with 401.
    let url = format!("{}/v1/ws", app.base.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    match tokio_tungstenite::connect_async(format!("{url}?token=forged.token.here")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut ws = connect(&app, "prankster").await;
    for (msg, code) in [
        ("not json", "invalid_message"),
        (r#"{"op":"dance"}"#, "invalid_message"),
        (r#"{"op":"subscribe"}"#, "invalid_message"),
        (r#"{"op":"subscribe","zones":[]}"#, "invalid_message"),
        (r#"{"op":"subscribe","zones":["Bad Zone"]}"#, "invalid_zone"),
        (
            r#"{"op":"subscribe","zones":["a"],"since":"garbage"}"#,
            "invalid_position",
        ),
    ] {
        ws.send(Message::text(msg)).await.expect("send");
        let v = expect(&mut ws, "error").await;
        assert_eq!(v["error"], code, "{msg}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
    assert_eq!(expect(&mut ws, "error").await["error"], "invalid_message");
    let too_many: Vec<String> = (0..65).map(|i| format!("z{i}")).collect();
    send(&mut ws, json!({"op": "subscribe", "zones": too_many})).await;
    assert_eq!(expect(&mut ws, "error").await["error"], "too_many_zones");
    // Still alive after all of that.
    send(&mut ws, json!({"op": "ping"})).await;
    expect(&mut ws, "pong").await;
    // Over TROVE_WS_MAX_MESSAGE: closed with 1009.
    ws.send(Message::text("x".repeat(10_000)))
        .await
        .expect("send");
    let closed = next(&mut ws, Duration::from_secs(5)).await.expect("close");
    assert_eq!(closed["type"], "__closed");
    assert_eq!(closed["code"], u16::from(CloseCode::Size));
}

/// A WebSocket client whose socket's receive buffer is tiny, so that not reading soon stops
/// the server's writes to it.
async fn small_window_client(app: &TestApp, player: &str) -> Ws {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2048).expect("rcvbuf");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let url = format!("ws://{addr}/v1/ws?token={}", app.token(player));
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_delay_others_and_is_dropped() {
    let pg_app = spawn_app().await;
    let mut config = Config::for_shards(pg_app.shard_urls.clone(), SECRET);
    // Room for a whole tail batch (2,000 events): another test holding a transaction open in
    // the same cluster holds back this tail's horizon too, and the claims then arrive in one
    // burst, which must not make the healthy client lag.
    config.ws_queue = 2048;
    config.ws_write_timeout_ms = 1500;
    config.tcp_send_buffer = 4096;
    let app = Arc::new(spawn_app_with(config).await);
    app.starter().await;
    let zone = zone_on(0, "flood");
    app.spawn_zone(&zone, 3000, "starter").await;

    // The sleeper's socket takes almost nothing before the kernel stops it.
    let mut sleeper = small_window_client(&app, "sleeper").await;
    subscribe(&mut sleeper, &[&zone]).await;
    let mut healthy = connect(&app, "healthy").await;
    subscribe(&mut healthy, &[&zone]).await;

    // A stream of claims; the healthy client must keep up with every one of them.
    let claimer = {
        let app = Arc::clone(&app);
        let zone = zone.clone();
        tokio::spawn(async move {
            let t = app.token("storm");
            let mut n = 0;
            for _ in 0..2000 {
                if app.claim(&zone, &t, None).await.status == StatusCode::CREATED {
                    n += 1;
                }
            }
            n
        })
    };
    let started = Instant::now();
    let events = opened_events(&mut healthy, 2000, Duration::from_secs(60)).await;
    let opened = claimer.await.expect("claimer");
    assert_eq!(opened, 2000);
    let ids: HashSet<_> = events.iter().map(|e| e["claim_id"].clone()).collect();
    assert_eq!(ids.len(), 2000);
    // The last event arrives right after the last claim: nobody waited on the sleeper.
    assert!(started.elapsed() < Duration::from_secs(45));

    // The sleeper stalled the server's writes: it is dropped once the write timeout passes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if app.engine_connections() <= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sleeping connection was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sleeper);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_one_lagged_message_with_a_snapshot_then_live_events() {
    let pg_app = spawn_app().await;
    let mut config = patient(Config::for_shards(pg_app.shard_urls.clone(), SECRET));
    config.ws_queue = 4;
    config.tcp_send_buffer = 4096;
    let app = Arc::new(spawn_app_with(config).await);
    app.starter().await;
    let zone = zone_on(1, "trickle");
    app.spawn_zone(&zone, 500, "starter").await;
    // A tiny receive buffer: once the client stops reading, the server's writes block soon.
    let mut slow = small_window_client(&app, "slow").await;
    subscribe(&mut slow, &[&zone]).await;

    // A burst far larger than the queue lands while the client is not reading.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let app = Arc::clone(&app);
        let zone = zone.clone();
        tasks.push(tokio::spawn(async move {
            let t = app.token(&format!("burst-{i}"));
            app.claim(&zone, &t, None).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::CREATED);
    }
    // Let the tail deliver the whole burst before the client reads again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client catches up: each `lagged` carries a snapshot as of its position, and the
    // events after it continue from there, so the client's count ends exact.
    let (mut events, mut lags) = (0, 0);
    let mut known_opened: i64 = 0;
    while let Some(v) = next(&mut slow, Duration::from_secs(2)).await {
        match v["type"].as_str() {
            Some("chest_opened") => {
                events += 1;
                known_opened += 1;
            }
            Some("chests_spawned") => {}
            Some("lagged") => {
                lags += 1;
                assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
                assert!(v["position"].is_string());
                known_opened = v["zones"][0]["opened"].as_i64().expect("snapshot");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(lags >= 1, "the queue overflowed but no lagged message came");
    assert!(
        events < 300,
        "the client should have skipped events, got all {events}"
    );
    assert_eq!(known_opened, 300, "snapshot + events after it must add up");
    // Events flow again afterwards.
    let t = app.token("after");
    let id = app.claim(&zone, &t, None).await.body["claim_id"].clone();
    assert_eq!(
        opened_events(&mut slow, 1, Duration::from_secs(5)).await[0]["claim_id"],
        id
    );
    let lagged = metric(
        &app.metrics_text().await,
        "trove_ws_clients_lagged_total",
        &[],
    );
    assert!(
        lagged >= Some(1.0),
        "lagged clients are counted: {lagged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_shard_loses_no_event() {
    let own = start_cluster("realtime-restart");
    migrated_template(&own).await;
    let app = spawn_app_on(vec![fresh_db_on(0).await, fresh_db(&own).await]).await;
    app.starter().await;
    let zone = zone_on(1, "phoenix");
    app.spawn_zone(&zone, 100, "starter").await;
    let mut ws = connect(&app, "loyal").await;
    subscribe(&mut ws, &[&zone]).await;
    let t = app.token("p");
    let mut ids = HashSet::new();
    for _ in 0..3 {
        ids.insert(app.claim(&zone, &t, None).await.body["claim_id"].clone());
    }
    own.stop().expect("stop");
    own.start().expect("start");
    let deadline = Instant::now() + Duration::from_secs(15);
    while ids.len() < 6 {
        let r = app.claim(&zone, &t, None).await;
        if r.status == StatusCode::CREATED {
            ids.insert(r.body["claim_id"].clone());
        } else {
            assert!(
                Instant::now() < deadline,
                "shard did not come back: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let got: HashSet<Value> = opened_events(&mut ws, 6, Duration::from_secs(15))
        .await
        .into_iter()
        .map(|e| e["claim_id"].clone())
        .collect();
    assert_eq!(got, ids);
    let reconnects = metric(
        &app.metrics_text().await,
        "trove_realtime_listener_reconnects_total",
        &[("shard", "1")],
    );
    assert!(
        reconnects >= Some(1.0),
        "the tail's reconnect is counted: {reconnects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_by_the_heartbeat_and_shutdown_sends_1001() {
    let pg_app = spawn_app().await;
    let mut config = Config::for_shards(pg_app.shard_urls.clone(), SECRET);
    config.ws_ping_secs = 1;
    let app = spawn_app_with(config).await;
    let silent = connect(&app, "silent").await; // never reads, so never answers pings
    let mut alive = connect(&app, "alive").await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while app.engine_connections() > 1 {
        assert!(
            Instant::now() < deadline,
            "the silent connection was never closed"
        );
        // The live client keeps reading, so it answers pings and stays.
        let _ = next(&mut alive, Duration::from_millis(200)).await;
    }
    drop(silent);
    send(&mut alive, json!({"op": "ping"})).await;
    expect(&mut alive, "pong").await;

    app.shutdown();
    let closed = next(&mut alive, Duration::from_secs(5))
        .await
        .expect("close frame");
    assert_eq!(closed, json!({"type": "__closed", "code": 1001}));
}

/// The position of a message, for `since`.
fn position(v: &Value) -> String {
    v["position"].as_str().expect("position").to_owned()
}

/// Reads until `subscribed` (collecting replayed `chest_opened` claim ids), then any live ones
/// until `quiet_for` passes without a message.
async fn resume(
    ws: &mut Ws,
    zones: &[&str],
    since: &str,
    quiet_for: Duration,
) -> (Value, Vec<Value>) {
    send(
        ws,
        json!({"op": "subscribe", "zones": zones, "since": since}),
    )
    .await;
    let mut ids = Vec::new();
    let subscribed = loop {
        let v = next(ws, Duration::from_secs(10)).await.expect("message");
        match v["type"].as_str() {
            Some("chest_opened") => ids.push(v["claim_id"].clone()),
            Some("subscribed") => break v,
            other => panic!("unexpected {other:?}: {v}"),
        }
    };
    while let Some(v) = next(ws, quiet_for).await {
        assert_eq!(v["type"], "chest_opened", "{v}");
        ids.push(v["claim_id"].clone());
    }
    (subscribed, ids)
}

fn assert_exactly_once(got: &[Value], want: &HashSet<Value>) {
    let set: HashSet<Value> = got.iter().cloned().collect();
    assert_eq!(got.len(), set.len(), "{} duplicates", got.len() - set.len());
    let missing = want.difference(&set).count();
    let extra: Vec<_> = set.difference(want).collect();
    assert!(
        missing == 0 && extra.is_empty(),
        "{missing} of {} missing; unexpected: {extra:?}",
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagged_client_that_resumes_gets_every_event_exactly_once() {
    let pg_app = spawn_app().await;
    let mut config = patient(Config::for_shards(pg_app.shard_urls.clone(), SECRET));
    config.ws_queue = 4;
    config.tcp_send_buffer = 4096;
    let app = Arc::new(spawn_app_with(config).await);
    app.starter().await;
    let zone = zone_on(0, "relapse");
    app.spawn_zone(&zone, 500, "starter").await;
    let mut ws = small_window_client(&app, "relapse").await;
    let mut last = position(&subscribe(&mut ws, &[&zone]).await);

    let mut tasks = Vec::new();
    for i in 0..300 {
        let app = Arc::clone(&app);
        let zone = zone.clone();
        tasks.push(tokio::spawn(async move {
            let t = app.token(&format!("burst-{i}"));
            app.claim(&zone, &t, None).await.body["claim_id"].clone()
        }));
    }
    let mut claimed = HashSet::new();
    for t in tasks {
        claimed.insert(t.await.expect("task"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Catch up: events, one or more `lagged` (each restarting live events at its position),
    // more events. Resume from the position held before the first `lagged`.
    let mut got = Vec::new();
    let mut resume_from = None;
    while let Some(v) = next(&mut ws, Duration::from_secs(2)).await {
        match v["type"].as_str() {
            Some("chest_opened") => {
                got.push(v["claim_id"].clone());
                last = position(&v);
            }
            // The spawn, if the tail read it after the subscription.
            Some("chests_spawned") => last = position(&v),
            Some("lagged") => {
                resume_from.get_or_insert_with(|| last.clone());
            }
            other => panic!("unexpected {other:?}: {v}"),
        }
    }
    let resume_from = resume_from.expect("the queue overflowed but no lagged message came");
    assert!(got.len() < 300, "nothing was skipped");
    let (subscribed, replayed) =
        resume(&mut ws, &[&zone], &resume_from, Duration::from_millis(500)).await;
    assert_eq!(subscribed["resumed"], true);
    assert_eq!(subscribed["zones"][0]["opened"], 300);
    got.extend(replayed);
    assert_exactly_once(&got, &claimed);
    // Live events go on, once each.
    let id = app.claim(&zone, &app.token("after"), None).await.body["claim_id"].clone();
    assert_eq!(
        opened_events(&mut ws, 1, Duration::from_secs(5)).await[0]["claim_id"],
        id
    );
    quiet(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_from_one_instance_resumes_on_a_lagging_one_without_duplicates() {
    let a = spawn_app().await;
    a.starter().await;
    // B's tail polls rarely, so it is well behind A when the client moves over.
    let mut config = Config::for_shards(a.shard_urls.clone(), SECRET);
    config.tail_poll_ms = 8000;
    let b = spawn_app_with(config).await;
    let zones = [zone_on(0, "hop"), zone_on(1, "hop")];
    for z in &zones {
        a.spawn_zone(z, 50, "starter").await;
    }
    let t = a.token("hopper");
    let mut on_a = connect(&a, "hopper").await;
    subscribe(&mut on_a, &[&zones[0], &zones[1]]).await;
    for i in 0..10 {
        a.claim(&zones[i % 2], &t, None).await;
    }
    let seen = opened_events(&mut on_a, 10, Duration::from_secs(5)).await;
    let since = position(seen.last().expect("event"));
    drop(on_a);

    let mut on_b = connect(&b, "hopper").await;
    send(
        &mut on_b,
        json!({"op": "subscribe", "zones": zones, "since": since}),
    )
    .await;
    let subscribed = expect(&mut on_b, "subscribed").await;
    assert_eq!(subscribed["resumed"], true);
    // The snapshot counts what the client already has, though B's tail has not read it yet.
    let opened: i64 = subscribed["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .map(|z| z["opened"].as_i64().expect("opened"))
        .sum();
    assert_eq!(opened, 10);
    let mut fresh = HashSet::new();
    for i in 0..5 {
        fresh.insert(a.claim(&zones[i % 2], &t, None).await.body["claim_id"].clone());
    }
    // B's next poll reads all 15 claims; only the 5 the client lacks reach it.
    let got: Vec<Value> = opened_events(&mut on_b, 5, Duration::from_secs(20))
        .await
        .into_iter()
        .map(|e| e["claim_id"].clone())
        .collect();
    assert_exactly_once(&got, &fresh);
    quiet(&mut on_b, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_down_when_an_instance_starts_resyncs_its_subscribers_when_back() {
    let own = start_cluster("realtime-late");
    migrated_template(&own).await;
    let urls = vec![fresh_db_on(0).await, fresh_db(&own).await];
    let a = spawn_app_on(urls.clone()).await;
    a.starter().await;
    let zone = zone_on(1, "dawn");
    a.spawn_zone(&zone, 100, "starter").await;
    let t = a.token("p");
    for _ in 0..2 {
        assert_eq!(a.claim(&zone, &t, None).await.status, StatusCode::CREATED);
    }
    own.stop().expect("stop");
    // B starts while shard 1 is down, so its follower has no cursor there.
    let b = spawn_app_on(urls).await;
    let mut ws = connect(&b, "early").await;
    send(&mut ws, json!({"op": "subscribe", "zones": [zone]})).await;
    let refused = expect(&mut ws, "error").await;
    assert_eq!(refused["error"], "shard_unavailable");

    own.start().expect("start");
    // Claims race B's follower reaching the shard: before it, they are in the resync
    // snapshot; after it, they arrive as events.
    let mut opened = 2;
    let deadline = Instant::now() + Duration::from_secs(15);
    while opened < 5 {
        if a.claim(&zone, &t, None).await.status == StatusCode::CREATED {
            opened += 1;
        } else {
            assert!(Instant::now() < deadline, "shard did not come back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let resync = next(&mut ws, Duration::from_secs(15))
        .await
        .expect("no resync message");
    assert_eq!(resync["type"], "resync", "{resync}");
    assert!(resync["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(resync["position"].is_string());
    assert_eq!(resync["zones"][0]["zone"], json!(zone));
    assert_eq!(resync["zones"][0]["total"], 100);
    let base = resync["zones"][0]["opened"].as_i64().expect("opened");
    let last = a.claim(&zone, &t, None).await.body["claim_id"].clone();
    opened += 1;
    let mut after = 0;
    loop {
        let v = next(&mut ws, Duration::from_secs(10))
            .await
            .expect("the last claim never arrived");
        assert_eq!(v["type"], "chest_opened", "{v}");
        after += 1;
        if v["claim_id"] == last {
            break;
        }
    }
    assert_eq!(
        base + after,
        opened,
        "the resync snapshot plus later events must add up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_committing_out_of_xid_order_arrive_once_and_resume_from_before_them() {
    let app = Arc::new(spawn_app().await);
    app.starter().await;
    let (held, busy, aside) = (zone_on(1, "held"), zone_on(1, "busy"), zone_on(0, "aside"));
    for z in [&held, &busy, &aside] {
        app.spawn_zone(z, 20, "starter").await;
    }
    let mut ws = connect(&app, "watcher").await;
    subscribe(&mut ws, &[&held, &busy, &aside]).await;

    // A real claim in `held` takes its xid (locking its chest), then waits to insert its
    // idempotency key, which an open transaction here has inserted first (and rolls back).
    let mut db = app.shard_db(1).await;
    let mut locker = sqlx::Connection::begin(&mut db).await.expect("begin");
    sqlx::query(
        "INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot, idempotency_key)
         SELECT z.id, 1000000, gen_random_uuid(), 'slowpoke', 1, c.loot_table_id, '[]', 'held-key'
         FROM zones z JOIN chests c ON c.zone_id = z.id WHERE z.name = $1 LIMIT 1",
    )
    .bind(&held)
    .execute(&mut *locker)
    .await
    .expect("hold the key");
    let old = {
        let app = Arc::clone(&app);
        let held = held.clone();
        tokio::spawn(async move {
            app.claim(&held, &app.token("slowpoke"), Some("held-key"))
                .await
        })
    };
    let mut probe = app.shard_db(1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut probe)
        .await
        .expect("pg_stat_activity");
        if waiting == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the claim never blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Later claims on the same shard commit first; the other shard's events flow meanwhile.
    let t = app.token("quick");
    let mut later = HashSet::new();
    for _ in 0..5 {
        later.insert(app.claim(&busy, &t, None).await.body["claim_id"].clone());
    }
    let mut aside_ids = HashSet::new();
    for _ in 0..3 {
        aside_ids.insert(app.claim(&aside, &t, None).await.body["claim_id"].clone());
    }
    let meanwhile = opened_events(&mut ws, 3, Duration::from_secs(5)).await;
    for e in &meanwhile {
        assert!(aside_ids.contains(&e["claim_id"]), "{e}");
    }
    // A position taken while the old claim is still open.
    let while_open = position(meanwhile.last().expect("event"));

    locker.rollback().await.expect("rollback");
    let old = old.await.expect("claim task");
    assert_eq!(old.status, StatusCode::CREATED, "{:?}", old.body);
    let old_id = old.body["claim_id"].clone();
    let xids: std::collections::HashMap<String, i64> =
        sqlx::query_as("SELECT claim_id::text, xid FROM claims")
            .fetch_all(&mut probe)
            .await
            .expect("xids")
            .into_iter()
            .collect();
    let xid_of = |id: &Value| xids[id.as_str().expect("id")];
    for id in &later {
        assert!(
            xid_of(&old_id) < xid_of(id),
            "the held claim must have the older xid"
        );
    }

    let mut all = later.clone();
    all.insert(old_id.clone());
    let got: Vec<Value> = opened_events(&mut ws, 6, Duration::from_secs(5))
        .await
        .into_iter()
        .map(|e| e["claim_id"].clone())
        .collect();
    assert_exactly_once(&got, &all);
    quiet(&mut ws, Duration::from_millis(300)).await;

    let mut again = connect(&app, "watcher").await;
    let (subscribed, replayed) = resume(
        &mut again,
        &[&held, &busy],
        &while_open,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(subscribed["resumed"], true);
    assert_exactly_once(&replayed, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_stream_in_pages_under_a_replay_cap_and_past_the_window_get_a_snapshot() {
    let pg_app = spawn_app().await;
    let mut config = Config::for_shards(pg_app.shard_urls.clone(), SECRET);
    config.ws_max_replays = 1;
    // Rows the tail reads after a client subscribed come live, up to a whole tail batch at
    // once: the queue holds them, so this test is about paging, never about lagging.
    config.ws_queue = 4096;
    let app = spawn_app_with(config.clone()).await;
    config.replay_window = 3000;
    let narrow = spawn_app_with(config).await;
    app.starter().await;
    let (zone, noise) = (zone_on(0, "deep"), zone_on(0, "noise"));
    app.spawn_zone(&zone, 10, "starter").await;
    app.spawn_zone(&noise, 10, "starter").await;
    let mut ws = connect(&app, "diver").await;
    let since = position(&subscribe(&mut ws, &[&zone]).await);
    drop(ws);
    // More ledger rows than fit in a page: 2,500 of the zone and 700 of another, written
    // straight to the ledger (one transaction each) to be quick.
    let mut db = app.shard_db(0).await;
    for (z, n) in [(&zone, 2500), (&noise, 700)] {
        sqlx::query("INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot) SELECT id, 1000 + g, gen_random_uuid(), 'bulk', 1, 1, '[]' FROM zones, generate_series(1, $2) AS g WHERE name = $1")
            .bind(z)
            .bind(n)
            .execute(&mut db)
            .await
            .expect("insert");
    }
    let want: HashSet<Value> = sqlx::query_scalar::<_, String>(
        "SELECT c.claim_id::text FROM claims c JOIN zones z ON z.id = c.zone_id WHERE z.name = $1",
    )
    .bind(&zone)
    .fetch_all(&mut db)
    .await
    .expect("ids")
    .into_iter()
    .map(Value::String)
    .collect();
    assert_eq!(want.len(), 2500);

    // Three clients resume at once through one replay permit; each gets all, once, in order.
    let resumes = (0..3).map(|i| {
        let (app, zone, since) = (&app, &zone, &since);
        async move {
            let mut ws = connect(app, &format!("diver{i}")).await;
            send(
                &mut ws,
                json!({"op": "subscribe", "zones": [zone], "since": since}),
            )
            .await;
            let mut chests = Vec::new();
            let mut ids = Vec::new();
            loop {
                let v = next(&mut ws, Duration::from_secs(20))
                    .await
                    .expect("message");
                match v["type"].as_str() {
                    Some("chest_opened") => {
                        chests.push(v["chest_id"].as_i64().expect("chest"));
                        ids.push(v["claim_id"].clone());
                    }
                    Some("subscribed") => {
                        assert_eq!(v["resumed"], true);
                        break;
                    }
                    other => panic!("unexpected {other:?}: {v}"),
                }
            }
            // Rows the tail had not read yet when the client subscribed come live.
            while let Some(v) = next(&mut ws, Duration::from_millis(500)).await {
                assert_eq!(v["type"], "chest_opened", "{v}");
                chests.push(v["chest_id"].as_i64().expect("chest"));
                ids.push(v["claim_id"].clone());
            }
            (chests, ids)
        }
    });
    for (chests, ids) in futures::future::join_all(resumes).await {
        assert!(chests.windows(2).all(|w| w[0] < w[1]), "out of order");
        assert_exactly_once(&ids, &want);
    }

    // Past TROVE_REPLAY_WINDOW (3,200 rows to walk, window 3,000): a snapshot, no events.
    let mut ws = connect(&narrow, "diver").await;
    send(
        &mut ws,
        json!({"op": "subscribe", "zones": [zone], "since": since}),
    )
    .await;
    let v = expect(&mut ws, "subscribed").await;
    assert_eq!(v["resumed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_closed_when_the_token_it_was_opened_with_expires() {
    let app = spawn_app().await;
    // Expired 28 s ago: inside the 30 s leeway for about two seconds more.
    let token = app
        .keys
        .issue("brief-watcher", trove::auth::Role::Player, -28)
        .expect("token");
    let url = format!(
        "{}/v1/ws?token={token}",
        app.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let opened = std::time::Instant::now();
    send(&mut ws, json!({"op": "ping"})).await;
    expect(&mut ws, "pong").await;
    let closed = next(&mut ws, Duration::from_secs(10))
        .await
        .expect("closed");
    assert_eq!(closed, json!({"type": "__closed", "code": 1008}));
    let after = opened.elapsed();
    assert!(
        after <= Duration::from_secs(4),
        "closed {after:?} after opening"
    );
    // A fresh token's connection stays open.
    let mut fresh = connect(&app, "fresh-watcher").await;
    send(&mut fresh, json!({"op": "ping"})).await;
    expect(&mut fresh, "pong").await;
    assert!(next(&mut fresh, Duration::from_secs(1)).await.is_none());
}

/// The tail's poll reaches every table by index from its position, as the generic plan its
/// session runs: each poll's cost depends on the events it returns, never on how many zones,
/// claims or spawns the shard holds or how far behind the position is.
#[tokio::test]
async fn the_tail_poll_never_scans_a_table_as_a_generic_plan() {
    let app = spawn_app().await;
    let mut db = app.shard_db(0).await;
    sqlx::raw_sql(
        "INSERT INTO loot_tables (name, version, entries) VALUES ('tail-plan', 1, '[]');
         INSERT INTO zones (name, chest_count) SELECT 'tz' || g, 20 FROM generate_series(1, 5000) g;
         INSERT INTO spawns (zone_id, first_chest, count) SELECT id, 1, 20 FROM zones;
         INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch, loot_table_id, loot)
             SELECT z.id, g, gen_random_uuid(), 'p' || g, 1, l.id, '[]'
             FROM zones z, generate_series(1, 20) g, (SELECT max(id) AS id FROM loot_tables) l;
         ANALYZE;",
    )
    .execute(&mut db)
    .await
    .expect("a shard with many zones, spawns and claims");
    let statement = include_str!("../../sql/tail_events.sql");
    sqlx::raw_sql(&format!(
        "SET plan_cache_mode = force_generic_plan;
         PREPARE tail(bigint, integer, bigint, bigint) AS {statement}"
    ))
    .execute(&mut db)
    .await
    .expect("prepare");
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE tail(0, 0, 0, 256)")
        .fetch_all(&mut db)
        .await
        .expect("explain");
    let plan = assert_no_scan(&plan, "tail");
    assert!(!plan.contains("Bitmap Heap Scan on claims"), "{plan}");
    for index in ["claims_tail", "spawns_tail", "zones_pkey"] {
        assert!(plan.contains(&format!("using {index}")), "{index}:\n{plan}");
    }
}
