//! What a replicated shard costs, and how long its zones are unavailable when its primary is
//! lost. One shard, a Patroni formation of three nodes (one etcd), serves Trove in-process.
//!
//! *Window*: during a claim storm with idempotency keys the primary is killed (-9, Patroni
//! and postmaster), with Patroni's default detection and with Trove's tuned one (changed on
//! the running formation through `PATCH /config`). Reported: when another node was promoted,
//! when a commit first succeeded there (its synchronous standby attached: the engine's part
//! is over), and the zone's window (first refused claim to first claim served again); Trove's
//! own part is the last minus the one before.
//!
//! *Synchronous*: the same closed-loop claim storm with synchronous replication on (commits
//! wait for a standby) and off (`synchronous_mode: false`: asynchronous standbys), interleaved:
//! throughput, p50/p99, and CPU µs a claim of the primary's PostgreSQL, of the standbys'
//! (on one machine their CPU competes with the primary's), and of this process (Trove and
//! the load's clients together).
//!
//! Run: `cargo bench --bench failover` (env: BENCH_PARTS=window,sync, BENCH_RUNS=3 failovers
//! per detection, BENCH_DETECTIONS=defaults,tuned, BENCH_ROUNDS=2 on/off pairs,
//! BENCH_CLAIMS=20000 a round, BENCH_CLIENTS=32).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trove::audit::Audit;

use common::{env_or, ms, SECRET};
use trove::auth::Role;
use trove::config::Config;
use trove::local::formation::{Detection, Etcd, Formation};

#[tokio::main]
async fn main() {
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "window,sync".into());
    let dir = std::env::temp_dir().join(format!("trove-bench-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    let etcd = Etcd::start(&dir.join("etcd"), 26100).expect("etcd");
    let mut formation =
        Formation::start(&dir, "bench", &etcd, 3, 26110, Detection::TUNED, &[]).expect("formation");
    let run = std::panic::AssertUnwindSafe(async {
        let primary = formation
            .wait_ready(Duration::from_secs(120))
            .await
            .expect("formation ready");
        let mut conn = formation.nodes[primary]
            .connect("postgres")
            .await
            .expect("primary");
        sqlx::raw_sql("CREATE DATABASE trove")
            .execute(&mut conn)
            .await
            .expect("create db");
        let mut db = formation.nodes[primary].connect("trove").await.expect("db");
        sqlx::raw_sql("CREATE TABLE bench_writes (at timestamptz DEFAULT now())")
            .execute(&mut db)
            .await
            .expect("bench table");
        let config = Config::for_shards(vec![formation.url("trove")], SECRET);
        let (engine, keys, base) = common::deployment(&config).await;
        let bench = Bench { base, keys, engine };
        if parts.contains("window") {
            bench.windows(&mut formation).await;
        }
        if parts.contains("sync") {
            bench.synchronous(&formation).await;
        }
    });
    let outcome = futures::FutureExt::catch_unwind(run).await;
    for node in &mut formation.nodes {
        node.stop();
    }
    drop(etcd);
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.is_err() {
        std::process::exit(1);
    }
}

struct Bench {
    base: String,
    keys: trove::auth::JwtKeys,
    engine: trove::Engine,
}

/// When the storm's zone first refused a claim, and first served one after that.
#[derive(Default)]
struct Window {
    first_refused: Option<Instant>,
    served_again: Option<Instant>,
}

impl Bench {
    async fn windows(&self, formation: &mut Formation) {
        let runs = env_or("BENCH_RUNS", 3);
        let detections =
            std::env::var("BENCH_DETECTIONS").unwrap_or_else(|_| "defaults,tuned".into());
        println!("detection | run | promoted s | writable s | window s | Trove's part ms");
        for name in detections.split(',') {
            let detection = match name.trim() {
                "defaults" => Detection::DEFAULTS,
                "tuned" => Detection::TUNED,
                other => panic!("BENCH_DETECTIONS: unknown {other:?} (defaults, tuned)"),
            };
            let patch = serde_json::json!({
                "ttl": detection.ttl,
                "loop_wait": detection.loop_wait,
                "retry_timeout": detection.retry_timeout,
            });
            formation.patch_config(&patch).await.expect("detection");
            for run in 0..runs {
                let zone = format!("window-{name}-{run}");
                self.engine
                    .spawn(
                        &zone,
                        300_000,
                        "starter",
                        false,
                        &Audit::system("bench", "spawn"),
                    )
                    .await
                    .expect("spawn");
                let old = formation
                    .wait_ready(Duration::from_secs(120))
                    .await
                    .expect("formation whole");
                // Let Patroni's loop run at the new pace before the loss.
                tokio::time::sleep(Duration::from_secs(detection.loop_wait as u64 + 2)).await;
                let stop = Arc::new(AtomicBool::new(false));
                let window = Arc::new(Mutex::new(Window::default()));
                let storm = self.storm(&zone, 16, &stop, &window);
                tokio::time::sleep(Duration::from_secs(2)).await;
                let lost = Instant::now();
                formation.nodes[old].kill();
                let (promoted, writable) = engine_part(formation, old).await;
                // Claims go on until the zone has been served again for a while.
                let deadline = Instant::now() + Duration::from_secs(120);
                while window.lock().expect("window").served_again.is_none() {
                    assert!(Instant::now() < deadline, "the zone was never served again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                stop.store(true, Ordering::Relaxed);
                for s in storm {
                    s.await.expect("storm client");
                }
                let w = window.lock().expect("window");
                let (refused, again) = (
                    w.first_refused.expect("refused"),
                    w.served_again.expect("served"),
                );
                println!(
                    "{name:>9} | {run:>3} | {:>10.1} | {:>10.1} | {:>8.1} | {:>15.0}",
                    (promoted - lost).as_secs_f64(),
                    (writable - lost).as_secs_f64(),
                    (again - refused).as_secs_f64(),
                    ms(again.saturating_duration_since(writable))
                        - ms(writable.saturating_duration_since(again)),
                );
                formation.nodes[old].start().expect("restart the lost node");
            }
        }
    }

    /// `clients` players claiming with keys on `zone` until `stop`, each refused claim retried
    /// with its key, noting the zone's window.
    fn storm(
        &self,
        zone: &str,
        clients: usize,
        stop: &Arc<AtomicBool>,
        window: &Arc<Mutex<Window>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let client = reqwest::Client::new();
        (0..clients)
            .map(|c| {
                let token = self
                    .keys
                    .issue(&format!("stormer-{zone}-{c}"), Role::Player, 3600)
                    .expect("token");
                let url = format!("{}/v1/zones/{zone}/claims", self.base);
                let (client, stop, window) = (client.clone(), Arc::clone(stop), Arc::clone(window));
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{c}-{n}");
                        n += 1;
                        loop {
                            let r = client
                                .post(&url)
                                .bearer_auth(&token)
                                .header("Idempotency-Key", &key)
                                .timeout(Duration::from_secs(30))
                                .send()
                                .await;
                            let ok = matches!(&r, Ok(r) if r.status().is_success());
                            {
                                let mut w = window.lock().expect("window");
                                if !ok {
                                    w.first_refused.get_or_insert_with(Instant::now);
                                } else if w.first_refused.is_some() && w.served_again.is_none() {
                                    w.served_again = Some(Instant::now());
                                }
                            }
                            if ok {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect()
    }

    async fn synchronous(&self, formation: &Formation) {
        let rounds = env_or("BENCH_ROUNDS", 2);
        let claims = env_or("BENCH_CLAIMS", 20_000);
        let clients = env_or("BENCH_CLIENTS", 32);
        let zones: Vec<String> = (0..4).map(|i| format!("sync-{i}")).collect();
        for z in &zones {
            let chests = (claims * rounds * 2 / zones.len() + 1000) as i64;
            self.engine
                .spawn(
                    z,
                    chests,
                    "starter",
                    false,
                    &Audit::system("bench", "spawn"),
                )
                .await
                .expect("spawn");
        }
        println!(
            "replication  | {} | PG primary µs/claim | PG standbys µs/claim | Trove+clients µs/claim",
            common::HEADER
        );
        for round in 0..rounds {
            for synchronous in [true, false] {
                let patch = serde_json::json!({ "synchronous_mode": synchronous });
                formation
                    .patch_config(&patch)
                    .await
                    .expect("synchronous_mode");
                // Patroni applies it within a loop; then the standbys are all streaming.
                tokio::time::sleep(Duration::from_secs(3)).await;
                let primary = formation.primary().await.expect("a primary");
                let before = cpu(formation, primary);
                let tag = format!("sync-{round}-{synchronous}");
                let run =
                    common::claims(&self.base, &self.keys, &zones, claims, clients, &tag).await;
                let after = cpu(formation, primary);
                let n = run.latencies.len() as f64;
                let per = |a: f64, b: f64| (b - a) * 1e6 / n;
                println!(
                    "{:<12} | {} | {:>19.1} | {:>20.1} | {:>22.1}",
                    if synchronous {
                        "synchronous"
                    } else {
                        "asynchronous"
                    },
                    run.row(),
                    per(before.primary, after.primary),
                    per(before.standbys, after.standbys),
                    per(before.this, after.this),
                );
            }
        }
    }
}

/// When another node than `old` was first seen primary, and when a commit there first
/// succeeded (Patroni's part of the failover done: it has a synchronous standby).
async fn engine_part(formation: &Formation, old: usize) -> (Instant, Instant) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let (promoted, node) = loop {
        let mut found = None;
        for (i, node) in formation.nodes.iter().enumerate() {
            if i != old && node.in_recovery().await == Some(false) {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break (Instant::now(), i);
        }
        assert!(Instant::now() < deadline, "no node was promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loop {
        let write = async {
            let mut db = formation.nodes[node].connect("trove").await.ok()?;
            sqlx::raw_sql("INSERT INTO bench_writes DEFAULT VALUES")
                .execute(&mut db)
                .await
                .ok()
        };
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), write).await {
            return (promoted, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "the new primary never took a write"
        );
    }
}

/// CPU seconds so far: the primary's PostgreSQL, the standbys' together, and this process.
struct Cpu {
    primary: f64,
    standbys: f64,
    this: f64,
}

fn cpu(formation: &Formation, primary: usize) -> Cpu {
    let stats = all_stats();
    let mut out = Cpu {
        primary: 0.0,
        standbys: 0.0,
        this: process_seconds(&stats, std::process::id() as i32, false),
    };
    for (i, node) in formation.nodes.iter().enumerate() {
        let Some(postmaster) = node.postmaster_pid() else {
            continue;
        };
        // The postmaster reaps its backends: their CPU is in its children's share, the live
        // ones' in their own.
        let mut total = process_seconds(&stats, postmaster, true);
        for s in stats.iter().filter(|s| s.ppid == postmaster) {
            total += s.seconds;
        }
        if i == primary {
            out.primary += total;
        } else {
            out.standbys += total;
        }
    }
    out
}

struct Stat {
    pid: i32,
    ppid: i32,
    seconds: f64,
    children: f64,
}

fn process_seconds(stats: &[Stat], pid: i32, with_children: bool) -> f64 {
    stats
        .iter()
        .find(|s| s.pid == pid)
        .map(|s| s.seconds + if with_children { s.children } else { 0.0 })
        .unwrap_or(0.0)
}

/// Every process's CPU from /proc (utime+stime, and its reaped children's cutime+cstime).
fn all_stats() -> Vec<Stat> {
    // SAFETY: sysconf(3) has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command is in parentheses and may hold spaces: fields start after the last ')'.
        let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.push(Stat {
            pid,
            ppid: num(1) as i32,
            seconds: (num(11) + num(12)) / hz,
            children: (num(13) + num(14)) / hz,
        });
    }
    out
}
