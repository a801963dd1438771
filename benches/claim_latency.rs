//! Claim latency by zone size, through the full HTTP stack against a private, durable
//! PostgreSQL (fsync on). Proves the claim path does not grow with the zone: p50 on a
//! 1,000,000-chest zone must stay within 1.5x of a 1,000-chest zone.
//!
//! Run: `cargo bench --bench claim_latency` (env: BENCH_CLAIMS=4000, BENCH_CONCURRENCY=8).
//! Each size gets enough zones that at most half its chests are opened during the run.

mod common;

use std::time::{Duration, Instant};
use trove::audit::Audit;

use common::{ms, HEADER, SECRET};
use trove::config::Config;
use trove::local::Cluster;

const SIZES: &[i64] = &[1_000, 100_000, 1_000_000];

#[tokio::main]
async fn main() {
    let claims = common::env_or("BENCH_CLAIMS", 4000);
    let concurrency = common::env_or("BENCH_CONCURRENCY", 8);
    common::with_postgres("latency", 25400, |cluster| async move {
        bench(&cluster, claims, concurrency).await
    })
    .await;
}

async fn bench(cluster: &Cluster, claims: usize, concurrency: usize) {
    cluster
        .create_database("trove", None)
        .await
        .expect("database");
    let config = Config::for_shards(vec![cluster.url("trove")], SECRET);
    let (engine, keys, base) = common::deployment(&config).await;

    let mut zones_by_size = Vec::new();
    for &size in SIZES {
        let n_zones = ((2 * claims as i64 * 2) / size + 1) as usize;
        let mut zones = Vec::new();
        let started = Instant::now();
        for z in 0..n_zones {
            let name = format!("bench-{size}-{z}");
            engine
                .spawn(
                    &name,
                    size,
                    "starter",
                    false,
                    &Audit::system("bench", "spawn"),
                )
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

    // Many short rounds with the sizes in rotating order: a slow minute on a shared machine
    // (disk flushes, a noisy neighbour) then lands on every size alike instead of on one.
    let rounds = common::env_or("BENCH_ROUNDS", 10).max(1);
    let per_round = (claims / rounds).max(concurrency);
    println!(
        "\n{rounds} rounds of {per_round} claims per size (sizes in rotating order, after a warm-up), {concurrency} concurrent players, HTTP keep-alive\n"
    );
    for (size, zones) in &zones_by_size {
        common::claims(
            &base,
            &keys,
            zones,
            claims / 10,
            concurrency,
            &format!("{size}-warm"),
        )
        .await;
    }
    let mut pooled: std::collections::HashMap<i64, Vec<Duration>> = Default::default();
    let mut rates: std::collections::HashMap<i64, Vec<f64>> = Default::default();
    let mut p50s: std::collections::HashMap<i64, Vec<Duration>> = Default::default();
    for round in 0..rounds {
        for k in 0..zones_by_size.len() {
            let (size, zones) = &zones_by_size[(k + round) % zones_by_size.len()];
            let run = common::claims(
                &base,
                &keys,
                zones,
                per_round,
                concurrency,
                &format!("{size}-{round}"),
            )
            .await;
            p50s.entry(*size).or_default().push(run.p50());
            rates.entry(*size).or_default().push(run.per_second);
            pooled.entry(*size).or_default().extend(run.latencies);
        }
    }
    println!("zone size | {HEADER}  (all rounds pooled; claims/s: median round)");
    for &size in SIZES {
        let mut lat = pooled.remove(&size).unwrap_or_default();
        lat.sort();
        let mut r = rates.remove(&size).unwrap_or_default();
        r.sort_by(f64::total_cmp);
        let run = common::Run {
            per_second: r[r.len() / 2],
            latencies: lat,
        };
        println!("{size:>9} | {}", run.row());
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
        "\nmedian round p50 on {} chests / on {} chests = {:.2}x (target < 1.5x): {}",
        SIZES[SIZES.len() - 1],
        SIZES[0],
        ratio,
        if ratio < 1.5 { "PASS" } else { "FAIL" }
    );
    assert!(ratio < 1.5, "claim latency grew with the zone");
}
