//! What Redis adds to a claim: the same claims through two instances on the same shard, one
//! without Redis and one with rate limits and leaderboards on (limits high enough never to
//! refuse, so every claim pays the limiter's round trip). Leaderboards follow the ledger off
//! the claim path, so their share is zero by design; the run checks they kept up.
//!
//! Run: `cargo bench --bench redis_overhead` (env: BENCH_CLAIMS=4000, BENCH_CONCURRENCY=8).

mod common;

use common::{ms, HEADER, SECRET};
use trove::audit::Audit;
use trove::auth::{JwtKeys, Role};
use trove::config::Config;
use trove::local::{starter_table, Cluster};
use trove::shards::ShardSet;
use trove::Engine;

#[tokio::main]
async fn main() {
    let claims = common::env_or("BENCH_CLAIMS", 4000);
    let concurrency = common::env_or("BENCH_CONCURRENCY", 8);
    common::with_postgres("redis", 25500, |cluster| async move {
        bench(&cluster, claims, concurrency).await
    })
    .await;
}

async fn bench(cluster: &Cluster, claims: usize, concurrency: usize) {
    let redis = common::redis(26500).await;
    cluster
        .create_database("trove", None)
        .await
        .expect("database");
    let plain = Config::for_shards(vec![cluster.url("trove")], SECRET);
    let mut with_redis = plain.clone();
    with_redis.redis_url = Some(redis.url());
    with_redis.rate_claims = "100000/100000".parse().expect("spec");
    let shards = ShardSet::new(&plain.shards()).expect("shards");
    shards.migrate().await.expect("migrate");
    let engine = Engine::new(shards, plain.batching(), plain.keys().expect("keys"));
    engine
        .put_loot_table(
            "starter",
            &starter_table(),
            &Audit::system("bench", "put_loot_table"),
        )
        .await
        .expect("table");
    let zones: Vec<String> = (0..8).map(|i| format!("bench-redis-{i}")).collect();
    for z in &zones {
        engine
            .spawn(
                z,
                (claims as i64) * 2,
                "starter",
                false,
                &Audit::system("bench", "spawn"),
            )
            .await
            .expect("spawn");
    }
    let keys = JwtKeys::new(SECRET.as_bytes()).expect("keys");
    let without = common::serve(&plain, trove::app::engine(&plain).expect("s"), keys.clone()).await;
    let with = common::serve(
        &with_redis,
        trove::app::engine(&with_redis).expect("s"),
        keys.clone(),
    )
    .await;

    println!("\n{} claims per round, {concurrency} concurrent players (one token each), HTTP keep-alive\n", claims / 2);
    println!("{:>22} | {HEADER}", "");
    let mut p50 = [Vec::new(), Vec::new()];
    let mut p99 = [Vec::new(), Vec::new()];
    for round in 0..3 {
        for (i, (name, base)) in [
            ("without Redis", &without),
            ("with Redis (limits on)", &with),
        ]
        .into_iter()
        .enumerate()
        {
            let n = if round == 0 { claims / 10 } else { claims / 2 };
            let run =
                common::claims(base, &keys, &zones, n, concurrency, &format!("{i}-{round}")).await;
            if round > 0 {
                println!("{name:>22} | {}  (round {round})", run.row());
                p50[i].push(ms(run.p50()));
                p99[i].push(ms(common::percentile(&run.latencies, 0.99)));
            }
        }
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "\nadded by Redis: p50 {:+.2} ms, p99 {:+.2} ms (means over rounds)",
        mean(&p50[1]) - mean(&p50[0]),
        mean(&p99[1]) - mean(&p99[0])
    );

    // The boards kept up with every claim (served by the Redis instance).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let admin = keys.issue("bench-admin", Role::Admin, 600).expect("token");
    let top: serde_json::Value = reqwest::Client::new()
        .get(format!("{with}/v1/leaderboards/chests?limit=1000"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("board")
        .json()
        .await
        .expect("json");
    let on_board: f64 = top["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["score"].as_f64())
        .sum();
    let mut total = 0.0;
    for z in &zones {
        total += engine.zone(z).await.expect("zone").opened as f64;
    }
    println!(
        "leaderboard `chests` total {on_board} vs ledger {total}: {}",
        if on_board == total {
            "equal"
        } else {
            "DIFFERENT"
        }
    );
}
