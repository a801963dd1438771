//! Claim latency by zone size, through the full HTTP stack against a private, durable
//! PostgreSQL (fsync on). Proves the claim path does not grow with the zone: p50 on a
//! 1,000,000-chest zone must stay within 1.5x of a 1,000-chest zone.
//!
//! Run: `cargo bench --bench claim_latency` (env: BENCH_CLAIMS=4000, BENCH_CONCURRENCY=8).
//! Each size gets enough zones that at most half its chests are opened during the run.

mod common;

use std::time::{Duration, Instant};

use common::{ms, HEADER, SECRET};
use trove::api::Application;
use trove::auth::JwtKeys;
use trove::config::Config;
use trove::local::{starter_table, Cluster};
use trove::shards::ShardSet;
use trove::Engine;

const SIZES: &[i64] = &[1_000, 100_000, 1_000_000];

#[tokio::main]
async fn main() {
    let claims = common::env_or("BENCH_CLAIMS", 4000);
    let concurrency = common::env_or("BENCH_CONCURRENCY", 8);
    let (cluster, dir) = common::postgres("latency", 25400);
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(bench(
        &cluster,
        claims,
        concurrency,
    )))
    .await;
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
    println!("zone size | {HEADER}");
    let mut p50s = std::collections::HashMap::new();
    for (round, warm) in [(0, true), (1, false), (2, false)] {
        for (size, zones) in &zones_by_size {
            let n = if warm { claims / 10 } else { claims / 2 };
            let run = common::claims(
                &base,
                &keys,
                zones,
                n,
                concurrency,
                &format!("{size}-{round}"),
            )
            .await;
            if !warm {
                println!("{size:>9} | {}  (round {round})", run.row());
                p50s.entry(*size).or_insert_with(Vec::new).push(run.p50());
            }
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
