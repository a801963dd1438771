//! What a zone move costs while claims keep coming: for zones of each size, the fence window
//! of every move (as the mover measures it, and as the moving zone's clients see it: the
//! longest gap between two served claims), the p99 latency of the moving zone's claims
//! during moves, the other zones' claim throughput during moves against windows without
//! (interleaved, median of the pairs), and the commit → receive latency of the other zones'
//! WebSocket events meanwhile. Two durable private PostgreSQL servers are the two shards.
//!
//! Run: `cargo bench --bench zone_move` (env: BENCH_SIZES=1000,100000,1000000,
//! BENCH_MOVES=10, BENCH_CLIENTS=16 for the other zones, BENCH_MOVING_CLIENTS=4,
//! BENCH_PAUSE_MS=0 and BENCH_SHARE=50 to throttle the copy).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trove::audit::Audit;

use common::{ms, percentile, SECRET};
use futures_util::{SinkExt, StreamExt};
use trove::auth::{JwtKeys, Role};
use trove::config::Config;
use trove::moves::MoveOptions;

#[tokio::main]
async fn main() {
    let sizes: Vec<i64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let moves = common::env_or("BENCH_MOVES", 10);
    let clients = common::env_or("BENCH_CLIENTS", 16);
    let moving_clients = common::env_or("BENCH_MOVING_CLIENTS", 4);
    common::with_postgres("move-a", 25600, |a| async move {
        let (b, dir) = common::postgres("move-b", 25700);
        let run =
            std::panic::AssertUnwindSafe(bench(&a, &b, &sizes, moves, clients, moving_clients));
        let outcome = futures::FutureExt::catch_unwind(run).await;
        let _ = b.stop();
        let _ = std::fs::remove_dir_all(dir);
        if outcome.is_err() {
            std::process::exit(1);
        }
    })
    .await;
}

/// One claim as a client saw it.
struct Served {
    at: Instant,
    took: Duration,
    /// The zone's shard answered it (opened, or 409 once the zone ran out): not 503.
    answered: bool,
}

async fn bench(
    a: &trove::local::Cluster,
    b: &trove::local::Cluster,
    sizes: &[i64],
    moves: usize,
    clients: usize,
    moving_clients: usize,
) {
    a.create_database("trove", None).await.expect("db a");
    b.create_database("trove", None).await.expect("db b");
    let config = Config::for_shards(vec![a.url("trove"), b.url("trove")], SECRET);
    let (engine, keys, base) = common::deployment(&config).await;

    // Other zones on both shards, never moved: their throughput and events are the yardstick.
    let others: Vec<String> = (0..8).map(|i| format!("steady-{i}")).collect();
    for z in &others {
        engine
            .spawn(
                z,
                200_000,
                "starter",
                false,
                &Audit::system("bench", "spawn"),
            )
            .await
            .expect("spawn");
    }
    println!("zone size | moves | fence max (mover) ms | fence max (clients) ms | fence median ms | moving p99 ms | others during/without (median) | event p99 ms");
    for &size in sizes {
        let zone = format!("moving-{size}");
        let started = Instant::now();
        let mut left = size;
        while left > 0 {
            let n = left.min(1_000_000);
            engine
                .spawn(&zone, n, "starter", false, &Audit::system("bench", "spawn"))
                .await
                .expect("spawn");
            left -= n;
        }
        eprintln!("spawned {zone} in {:.1}s", started.elapsed().as_secs_f64());
        let row = run_size(
            &base,
            &engine,
            &keys,
            &zone,
            &others,
            moves,
            clients,
            moving_clients,
        )
        .await;
        println!("{row}");
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_size(
    base: &str,
    engine: &trove::Engine,
    keys: &JwtKeys,
    zone: &str,
    others: &[String],
    moves: usize,
    clients: usize,
    moving_clients: usize,
) -> String {
    let stop = Arc::new(AtomicBool::new(false));
    let moving: Arc<Mutex<Vec<Served>>> = Arc::default();
    let steady: Arc<Mutex<Vec<Served>>> = Arc::default();
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let events: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..(clients + moving_clients) {
        let (http, base, stop) = (http.clone(), base.to_owned(), Arc::clone(&stop));
        let on_moving = w < moving_clients;
        let (sink, acked) = (
            if on_moving {
                Arc::clone(&moving)
            } else {
                Arc::clone(&steady)
            },
            Arc::clone(&acked),
        );
        let zone = if on_moving {
            zone.to_owned()
        } else {
            others[w % others.len()].clone()
        };
        let token = keys
            .issue(&format!("mv-{w}"), Role::Player, 3600)
            .expect("token");
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let t = Instant::now();
                let resp = http
                    .post(format!("{base}/v1/zones/{zone}/claims"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("{w}-{i}"))
                    .send()
                    .await;
                let (answered, id) = match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        (true, body["claim_id"].as_str().map(str::to_owned))
                    }
                    Ok(r) => {
                        let answered = r.status().as_u16() == 409;
                        let _ = r.bytes().await;
                        (answered, None)
                    }
                    Err(_) => (false, None),
                };
                let now = Instant::now();
                if let (false, Some(id)) = (on_moving, id) {
                    acked.lock().expect("acks").insert(id, now);
                }
                sink.lock().expect("served").push(Served {
                    at: now,
                    took: now - t,
                    answered,
                });
            }
        }));
    }
    // A subscriber of the other zones: commit (acknowledgement) → receive.
    let url = format!(
        "{}/v1/ws?token={}",
        base.replace("http", "ws"),
        keys.issue("watch", Role::Player, 3600).expect("t")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let sub = serde_json::json!({"op": "subscribe", "zones": others});
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        sub.to_string(),
    ))
    .await
    .expect("sub");
    let watcher = {
        let (acked, events, stop) = (Arc::clone(&acked), Arc::clone(&events), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(Ok(msg))) =
                    tokio::time::timeout(Duration::from_millis(200), ws.next()).await
                else {
                    continue;
                };
                let Ok(text) = msg.to_text() else { continue };
                let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                if let Some(id) = v["claim_id"].as_str() {
                    let now = Instant::now();
                    // The event can beat the response: wait for the acknowledgement a moment.
                    for _ in 0..50 {
                        if let Some(at) = acked.lock().expect("acks").get(id).copied() {
                            events
                                .lock()
                                .expect("events")
                                .push(now.saturating_duration_since(at));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // warm up
    let (mut fences, mut client_fences, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut during_moving = Vec::new();
    // BENCH_PAUSE_MS and BENCH_SHARE throttle the copy (a pause after each copy transaction;
    // its duty cycle in percent, the default of `trove zones move` unless set).
    let opts = MoveOptions {
        pause: Duration::from_millis(common::env_or("BENCH_PAUSE_MS", 0) as u64),
        share: common::env_or("BENCH_SHARE", trove::moves::DEFAULT_SHARE as usize) as u32,
        ..MoveOptions::default()
    };
    for m in 0..moves {
        // A window without a move, then one with: the same length, interleaved.
        let quiet_from = steady.lock().expect("s").len();
        let quiet_at = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let quiet = (steady.lock().expect("s").len() - quiet_from) as f64
            / quiet_at.elapsed().as_secs_f64();
        let (busy_from, moving_from) = (
            steady.lock().expect("s").len(),
            moving.lock().expect("m").len(),
        );
        let busy_at = Instant::now();
        let report = engine
            .move_zone(zone, (m + 1) % 2, &opts)
            .await
            .expect("move");
        let took = busy_at.elapsed().max(Duration::from_secs(2));
        tokio::time::sleep(took.saturating_sub(busy_at.elapsed())).await;
        let busy =
            (steady.lock().expect("s").len() - busy_from) as f64 / busy_at.elapsed().as_secs_f64();
        ratios.push(busy / quiet.max(1.0));
        fences.push(report.fenced_ms);
        let served: Vec<(Instant, Duration, bool)> = moving.lock().expect("m")[moving_from..]
            .iter()
            .map(|s| (s.at, s.took, s.answered))
            .collect();
        // As the zone's clients saw the fence: the longest a claim was held, or the longest
        // gap between two answers (claims refused with 503 meanwhile are not answers).
        let mut gap = Duration::ZERO;
        let mut last: Option<Instant> = None;
        for (at, took, answered) in &served {
            during_moving.push(*took);
            if *answered {
                gap = gap.max(*took);
                if let Some(l) = last {
                    gap = gap.max(at.saturating_duration_since(l));
                }
                last = Some(*at);
            }
        }
        client_fences.push(gap);
        engine.clean_moved(Duration::ZERO).await.expect("cleanup");
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = watcher.await;
    fences.sort_unstable();
    client_fences.sort();
    ratios.sort_by(f64::total_cmp);
    during_moving.sort();
    let mut ev = events.lock().expect("events").clone();
    ev.sort();
    let p99 = |v: &[Duration]| {
        if v.is_empty() {
            f64::NAN
        } else {
            ms(percentile(v, 0.99))
        }
    };
    format!(
        "{:>9} | {:>5} | {:>20} | {:>22.1} | {:>15} | {:>13.1} | {:>30.2} | {:>12.1}",
        zone.trim_start_matches("moving-"),
        moves,
        fences.last().copied().unwrap_or(0),
        ms(*client_fences.last().unwrap_or(&Duration::ZERO)),
        fences.get(fences.len() / 2).copied().unwrap_or(0),
        p99(&during_moving),
        ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN),
        p99(&ev),
    )
}
