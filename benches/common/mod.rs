//! Shared by the benchmarks: a private PostgreSQL, a private Redis, and a closed-loop claim
//! driver over HTTP that reports latency percentiles.

#![allow(dead_code)] // each benchmark uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trove::auth::{JwtKeys, Role};
use trove::local::Cluster;

pub const SECRET: &str = "bench-secret-0123456789abcdef";

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A durable private PostgreSQL under a temp dir (fsync on: commits cost what they cost).
pub fn postgres(name: &str, first_port: u16) -> (Cluster, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("trove-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    let cluster = Cluster::ensure(&dir.join("pg"), first_port, &[]).expect("start PostgreSQL");
    (cluster, dir)
}

/// A migrated deployment on `config` with the demo loot table, served in the background:
/// its engine, token keys and base URL.
pub async fn deployment(config: &trove::config::Config) -> (trove::Engine, JwtKeys, String) {
    let engine = trove::app::engine(config).expect("engine");
    engine.shards.migrate().await.expect("migrate");
    engine
        .put_loot_table(
            "starter",
            &trove::local::starter_table(),
            &trove::audit::Audit::system("bench", "put_loot_table"),
        )
        .await
        .expect("table");
    let keys = JwtKeys::new(SECRET.as_bytes()).expect("keys");
    let base = serve(config, engine.clone(), keys.clone()).await;
    (engine, keys, base)
}

/// The real app on `config`, serving in the background; returns its base URL.
pub async fn serve(config: &trove::config::Config, engine: trove::Engine, keys: JwtKeys) -> String {
    let app = trove::app::Application::bind(config, engine, keys)
        .await
        .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.serve(std::future::pending()));
    base
}

/// A private redis-server on the first free port from `port`, killed on drop.
pub async fn redis(port: u16) -> trove::local::RedisServer {
    trove::local::RedisServer::start(port)
        .await
        .expect("start redis-server")
}

/// Runs `bench` against a durable private PostgreSQL (`postgres`), which is stopped and
/// removed afterwards, also when the benchmark panics (then the exit code is 1).
pub async fn with_postgres<F, Fut>(name: &str, first_port: u16, bench: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (cluster, dir) = postgres(name, first_port);
    let run = std::panic::AssertUnwindSafe(bench(cluster.clone()));
    let outcome = futures::FutureExt::catch_unwind(run).await;
    let _ = cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.is_err() {
        std::process::exit(1);
    }
}

pub struct Run {
    /// Sorted latencies.
    pub latencies: Vec<Duration>,
    pub per_second: f64,
}

impl Run {
    pub fn p50(&self) -> Duration {
        percentile(&self.latencies, 0.50)
    }

    /// `claims/s | p50 | p90 | p99 | max` for a table row.
    pub fn row(&self) -> String {
        format!(
            "{:>8.0} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2}",
            self.per_second,
            ms(self.p50()),
            ms(percentile(&self.latencies, 0.90)),
            ms(percentile(&self.latencies, 0.99)),
            ms(*self.latencies.last().expect("samples")),
        )
    }
}

pub const HEADER: &str = "claims/s |  p50 ms |  p90 ms |  p99 ms |  max ms";

/// `claims` claims over `zones`, `concurrency` players at a time, each player with its own
/// token (so per-player rate limits apply as they would in production).
pub async fn claims(
    base: &str,
    keys: &JwtKeys,
    zones: &[String],
    claims: usize,
    concurrency: usize,
    tag: &str,
) -> Run {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, next, base) = (client.clone(), Arc::clone(&next), base.to_owned());
        let zones = zones.to_vec();
        let token = keys
            .issue(&format!("bench-{tag}-{w}"), Role::Player, 3600)
            .expect("token");
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= claims {
                    break;
                }
                let zone = &zones[i % zones.len()];
                let t = Instant::now();
                let resp = client
                    .post(format!("{base}/v1/zones/{zone}/claims"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(resp.status(), 201, "claim failed");
                resp.bytes().await.expect("body");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let wall = started.elapsed();
    all.sort();
    Run {
        per_second: all.len() as f64 / wall.as_secs_f64(),
        latencies: all,
    }
}
