//! Claim latency by zone size, through the full HTTP stack against a private, durable
//! PostgreSQL (fsync on). Proves the claim path does not grow with the zone: p50 on a
//! 1,000,000-chest zone must stay within 1.5x of a 1,000-chest zone.
//!
//! Run: `cargo bench --bench claim_latency` (env: BENCH_CLAIMS=4000, BENCH_CONCURRENCY=8).
//! Each size gets enough zones that at most half its chests are opened during the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trove::api::Application;
use trove::auth::{JwtKeys, Role};
use trove::config::Config;
use trove::local::{starter_table, Cluster};
use trove::shards::ShardSet;
use trove::Engine;

const SECRET: &str = "bench-secret-0123456789abcdef";
const SIZES: &[i64] = &[1_000, 100_000, 1_000_000];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    p50: Duration,
    line: String,
}

async fn run_claims(
    base: &str,
    keys: &JwtKeys,
    zones: &[String],
    claims: usize,
    concurrency: usize,
    tag: &str,
) -> Stats {
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
    let p50 = percentile(&all, 0.50);
    let line = format!(
        "{:>9} | {:>8.0} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2}",
        tag,
        all.len() as f64 / wall.as_secs_f64(),
        ms(p50),
        ms(percentile(&all, 0.90)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().expect("samples")),
    );
    Stats { p50, line }
}

#[tokio::main]
async fn main() {
    let claims = env_or("BENCH_CLAIMS", 4000);
    let concurrency = env_or("BENCH_CONCURRENCY", 8);
    let dir = std::env::temp_dir().join(format!("trove-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    // Durable settings: the commit's WAL flush is part of a real claim's latency.
    let cluster = Cluster::ensure(&dir.join("pg"), 25400, &[]).expect("start PostgreSQL");
    let result = std::panic::AssertUnwindSafe(bench(&cluster, claims, concurrency));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    let _ = cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.is_err() {
        std::process::exit(1);
    }
}

async fn bench(cluster: &Cluster, claims: usize, concurrency: usize) {
    cluster
        .create_database("trove", None)
        .await
        .expect("database");
    let config = Config::for_shards(vec![cluster.url("trove")], SECRET);
    let shards = ShardSet::new(&config).expect("shards");
    shards.migrate().await.expect("migrate");
    let engine = Engine::new(shards);
    engine
        .put_loot_table("starter", &starter_table())
        .await
        .expect("table");
    let keys = JwtKeys::new(SECRET.as_bytes()).expect("keys");
    let app = Application::bind(&config, engine.clone(), keys.clone())
        .await
        .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.serve(std::future::pending()));

    let mut zones_by_size = Vec::new();
    for &size in SIZES {
        let n_zones = ((2 * claims as i64 * 2) / size + 1) as usize;
        let mut zones = Vec::new();
        let started = Instant::now();
        for z in 0..n_zones {
            let name = format!("bench-{size}-{z}");
            engine
                .spawn(&name, size, "starter", false)
                .await
                .expect("spawn");
            zones.push(name);
        }
        println!(
            "spawned {n_zones} zone(s) of {size} chests in {:.2}s ({:.2}s per zone)",
            started.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64() / n_zones as f64
        );
        zones_by_size.push((size, zones));
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.url("trove"))
        .await
        .expect("connect");
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .expect("vacuum");

    println!(
        "\n{} claims per size and round (after a warm-up of {}), {concurrency} concurrent players, HTTP keep-alive\n",
        claims / 2,
        claims / 10
    );
    println!(
        "{:>9} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7}",
        "zone size", "claims/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut p50s = std::collections::HashMap::new();
    for (round, warm) in [(0, true), (1, false), (2, false)] {
        for (size, zones) in &zones_by_size {
            let tag = format!("{size}");
            let n = if warm { claims / 10 } else { claims / 2 };
            let stats = run_claims(&base, &keys, zones, n, concurrency, &tag).await;
            if warm {
                continue;
            }
            println!("{}  (round {round})", stats.line);
            p50s.entry(*size).or_insert_with(Vec::new).push(stats.p50);
        }
    }
    let median = |v: &Vec<Duration>| {
        let mut v = v.clone();
        v.sort();
        v[v.len() / 2]
    };
    let small = median(&p50s[&SIZES[0]]);
    let large = median(&p50s[&SIZES[SIZES.len() - 1]]);
    let ratio = ms(large) / ms(small);
    println!(
        "\np50 on {} chests / p50 on {} chests = {:.2}x (target < 1.5x): {}",
        SIZES[SIZES.len() - 1],
        SIZES[0],
        ratio,
        if ratio < 1.5 { "PASS" } else { "FAIL" }
    );
}
