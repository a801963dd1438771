//! Redis holds only what may be lost: rate limits and leaderboards. Claims never depend on it,
//! and the boards always come back equal to the Postgres ledger.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use trove::config::Config;
use trove::error::Error;
use trove::leaderboards::{Leaderboards, RarityScores};
use trove::redis_client::Redis;
use trove::shards::ShardSet;

use crate::helpers::{
    metric, patient, spawn_app, spawn_app_with, zone_on, RedisServer, TestApp, SECRET,
};

pub(crate) fn config(shards: &[String], redis: &RedisServer) -> Config {
    let mut c = Config::for_shards(shards.to_vec(), SECRET);
    c.redis_url = Some(redis.url());
    c.redis_prefix = format!("t{}", redis.port);
    c.leaderboard_poll_ms = 50;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_is_429_with_retry_after_and_instances_share_one_bucket() {
    let base = spawn_app().await;
    let redis = RedisServer::start().await;
    let mut c = config(&base.shard_urls, &redis);
    c.rate_claims = "2/3".parse().expect("spec");
    c.rate_anon = "1/2".parse().expect("spec");
    let a = spawn_app_with(c.clone()).await;
    let b = spawn_app_with(c).await;
    a.starter().await;
    let zone = zone_on(0, "limited");
    a.spawn_zone(&zone, 100, "starter").await;
    let t = a.token("eager");
    for _ in 0..3 {
        assert_eq!(a.claim(&zone, &t, None).await.status, StatusCode::CREATED);
    }
    // The burst of 3 is spent on instance A; instance B shares the bucket.
    let limited = b.claim(&zone, &t, None).await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert_eq!(
        retry, 1,
        "one token refills in 0.5 s: Retry-After rounds up to 1"
    );
    assert_eq!(
        a.ledger_count(&zone).await,
        3,
        "a limited claim opens nothing"
    );
    // Another player has a bucket of its own.
    assert_eq!(
        b.claim(&zone, &a.token("patient"), None).await.status,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.claim(&zone, &t, None).await.status, StatusCode::CREATED);
    // The refusal is counted on the instance that refused, as a claim outcome by shard.
    let text = b.metrics_text().await;
    let shard = trove::shards::shard_index(&zone, 2).to_string();
    assert_eq!(
        metric(
            &text,
            "trove_claims_total",
            &[("outcome", "rate_limited"), ("shard", &shard)]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "trove_rate_limited_total", &[]), Some(1.0));
    // Admins (trusted back ends) are not limited.
    for _ in 0..10 {
        assert_eq!(
            a.spawn_zone(&zone, 1, "starter").await.status,
            StatusCode::CREATED
        );
    }
    // No token: limited per client IP.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            a.call(Method::GET, &format!("/v1/zones/{zone}"), None, None, &[])
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_claims_keep_working_and_boards_answer_503() {
    let base = spawn_app().await;
    let mut redis = RedisServer::start().await;
    let app = spawn_app_with(config(&base.shard_urls, &redis)).await;
    app.starter().await;
    let zone = zone_on(1, "outage");
    app.spawn_zone(&zone, 200, "starter").await;
    let t = app.token("stoic");
    assert_eq!(app.claim(&zone, &t, None).await.status, StatusCode::CREATED);
    redis.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = app.claim(&zone, &t, None).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status, StatusCode::CREATED, "fail open: {:?}", r.body);
    }
    assert!(
        slowest < Duration::from_millis(300),
        "claims must not wait on Redis: {slowest:?}"
    );
    let board = app
        .call(Method::GET, "/v1/leaderboards/chests", Some(&t), None, &[])
        .await;
    assert_eq!(
        (board.status, board.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "leaderboard_unavailable")
    );
    let mine = app
        .call(
            Method::GET,
            "/v1/leaderboards/chests/players/stoic",
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(mine.status, StatusCode::SERVICE_UNAVAILABLE);
    // Counted for operators: Redis failures, and requests let through without a limit.
    let text = app.metrics_text().await;
    let errors = metric(&text, "trove_redis_errors_total", &[]);
    let open = metric(&text, "trove_rate_limit_fail_open_total", &[]);
    assert!(errors >= Some(1.0), "{text}");
    assert!(open >= Some(1.0), "{text}");

    // Fail closed: claims are refused while the limiter cannot be asked.
    let mut closed = config(&base.shard_urls, &redis);
    closed.rate_limit_fail_closed = true;
    let strict = spawn_app_with(closed).await;
    let r = strict.claim(&zone, &t, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "rate_limiter_unavailable")
    );
    let text = strict.metrics_text().await;
    assert_eq!(
        metric(&text, "trove_rate_limit_fail_closed_total", &[]),
        Some(1.0),
        "{text}"
    );

    // No Redis configured at all: boards are 503 too, claims fine.
    let plain = spawn_app().await;
    let board = plain
        .call(
            Method::GET,
            "/v1/leaderboards/loot_value",
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(board.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Expected boards computed from the ledgers: board -> scope -> player -> score.
async fn ledger_boards(app: &TestApp) -> BTreeMap<(String, String), BTreeMap<String, f64>> {
    let scores = RarityScores::default();
    let mut out: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for shard in 0..app.shard_urls.len() {
        let mut db = app.shard_db(shard).await;
        let rows: Vec<(String, String, Value)> = sqlx::query_as(
            "SELECT z.name, c.player, c.loot FROM claims c JOIN zones z ON z.id = c.zone_id WHERE NOT z.synthetic AND z.state <> 'moved'",
        )
        .fetch_all(&mut db)
        .await
        .expect("ledger");
        for (zone, player, loot) in rows {
            for (board, v) in [("chests", 1.0), ("loot_value", scores.value(&loot))] {
                for scope in ["global".to_owned(), zone.clone()] {
                    *out.entry((board.into(), scope))
                        .or_default()
                        .entry(player.clone())
                        .or_default() += v;
                }
            }
        }
    }
    out
}

async fn served_boards(
    app: &TestApp,
    scopes: &[String],
) -> BTreeMap<(String, String), BTreeMap<String, f64>> {
    let t = app.admin();
    let mut out = BTreeMap::new();
    for board in ["chests", "loot_value"] {
        for scope in scopes {
            let q = if scope == "global" {
                String::new()
            } else {
                format!("&zone={scope}")
            };
            let r = app
                .call(
                    Method::GET,
                    &format!("/v1/leaderboards/{board}?limit=1000{q}"),
                    Some(&t),
                    None,
                    &[],
                )
                .await;
            if r.status != StatusCode::OK {
                continue;
            }
            let entries: BTreeMap<String, f64> = r.body["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| {
                    (
                        e["player"].as_str().expect("p").to_owned(),
                        e["score"].as_f64().expect("s"),
                    )
                })
                .collect();
            if !entries.is_empty() {
                out.insert((board.to_owned(), scope.clone()), entries);
            }
        }
    }
    out
}

/// Waits until the served boards equal the ledger (the tail runs every 50 ms).
pub(crate) async fn boards_match_ledger(app: &TestApp, scopes: &[String]) {
    // Generous: on a loaded 2-core machine a rebuild of 100,000 entries takes its time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (want, got) = (ledger_boards(app).await, served_boards(app, scopes).await);
        if want == got {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "boards never matched the ledger:\nwant {want:?}\ngot  {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boards_equal_the_ledger_after_concurrent_claims_and_replays_and_survive_flushall() {
    let base = spawn_app().await;
    let redis = RedisServer::start().await;
    // 1,000 requests at once: a 503 the replay below would see as a first claim.
    let mut c = patient(config(&base.shard_urls, &redis));
    c.rate_claims = "1000/1000".parse().expect("spec");
    let a = Arc::new(spawn_app_with(c.clone()).await);
    let b = Arc::new(spawn_app_with(c).await); // two instances race to apply the same ledger
    a.starter().await;
    let zones = vec![
        zone_on(0, "podium"),
        zone_on(1, "podium"),
        zone_on(0, "arena"),
    ];
    for z in &zones {
        a.spawn_zone(z, 400, "starter").await;
    }
    let probe = zone_on(1, "probe-synthetic");
    let r = a.spawn_synthetic_zone(&probe, 20, "starter").await;
    assert_eq!(r.status, StatusCode::CREATED);

    // 1,000 claims by 50 players; every fifth is sent twice with the same key (a replay).
    let mut tasks = Vec::new();
    for i in 0..1000usize {
        let app = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let zone = zones[i % zones.len()].clone();
        tasks.push(tokio::spawn(async move {
            let t = app.token(&format!("champ-{}", i % 50));
            let key = format!("claim-{i}");
            let first = app.claim(&zone, &t, Some(&key)).await.status;
            if i % 5 == 0 {
                assert_eq!(
                    app.claim(&zone, &t, Some(&key)).await.status,
                    StatusCode::OK
                );
            }
            first
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::CREATED);
    }
    for i in 0..10 {
        a.claim(&probe, &a.token(&format!("bot-{i}")), None).await;
    }
    let mut scopes: Vec<String> = zones.clone();
    scopes.push("global".into());
    scopes.push(probe.clone());
    boards_match_ledger(&a, &scopes).await;
    let total: f64 = served_boards(&a, &["global".to_owned()]).await
        [&("chests".to_owned(), "global".to_owned())]
        .values()
        .sum();
    assert_eq!(total, 1000.0, "synthetic zones and replays never count");

    // A player's standing, with neighbours.
    let t = a.token("champ-7");
    let me = a
        .call(
            Method::GET,
            "/v1/leaderboards/loot_value/players/champ-7",
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert!(me.body["rank"]
        .as_u64()
        .is_some_and(|r| (1..=50).contains(&r)));
    assert!(me.body["neighbours"]
        .as_array()
        .expect("n")
        .iter()
        .any(|e| e["player"] == "champ-7"));
    let nobody = a
        .call(
            Method::GET,
            "/v1/leaderboards/chests/players/nobody",
            Some(&t),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (nobody.status, nobody.code()),
        (StatusCode::NOT_FOUND, "player_not_ranked")
    );

    // Redis comes back empty: the running instances rebuild from the ledger in the background.
    assert_eq!(redis.cmd(&["FLUSHALL"]).await, "+OK");
    boards_match_ledger(&a, &scopes).await;
    // And keep counting exactly afterwards.
    for i in 0..30 {
        a.claim(&zones[i % 3], &a.token(&format!("champ-{i}")), None)
            .await;
    }
    boards_match_ledger(&a, &scopes).await;

    // `trove leaderboards rebuild` with nothing running: FLUSHALL, rebuild, equal again.
    let (a, b) = (
        Arc::try_unwrap(a).ok().expect("a"),
        Arc::try_unwrap(b).ok().expect("b"),
    );
    let shards = a.shard_urls.clone();
    let reader = spawn_app_with({
        let mut c = config(&shards, &redis);
        c.leaderboard_poll_ms = 3_600_000; // a reader whose tail stays out of the way
        c
    })
    .await;
    a.shutdown();
    b.shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(redis.cmd(&["FLUSHALL"]).await, "+OK");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trove"))
        .args(["leaderboards", "rebuild"])
        .env("TROVE_SHARDS", shards.join(","))
        .env("TROVE_JWT_SECRET", SECRET)
        .env("TROVE_REDIS_URL", redis.url())
        .env("TROVE_REDIS_PREFIX", format!("t{}", redis.port))
        .output()
        .expect("run rebuild");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    boards_match_ledger(&reader, &scopes).await;
    let _ = HashMap::<(), ()>::new();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_anonymous_callers_are_limited_by_their_forwarded_address() {
    let base = spawn_app().await;
    let redis = RedisServer::start().await;
    let mut c = config(&base.shard_urls, &redis);
    // One request per bucket, then about 100 s to refill.
    c.rate_anon = "0.01/1".parse().expect("spec");
    let direct = spawn_app_with(c.clone()).await;
    c.trust_forwarded_for = true;
    c.redis_prefix = format!("t{}proxied", redis.port);
    let proxied = spawn_app_with(c).await;
    // Passing the limiter means reaching auth: 401. Over the limit: 429.
    assert_eq!(anon(&proxied, "10.0.0.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anon(&proxied, "10.0.0.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(anon(&proxied, "10.0.0.2").await, StatusCode::UNAUTHORIZED);
    // Only the hop the proxy appended counts; what the client put before it does not.
    assert_eq!(
        anon(&proxied, "10.9.9.9, 10.0.0.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Not trusted: the header is ignored and every caller here is 127.0.0.1.
    assert_eq!(anon(&direct, "10.0.0.3").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anon(&direct, "10.0.0.4").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// An unauthenticated request as a proxy would forward it.
async fn anon(app: &TestApp, forwarded: &str) -> StatusCode {
    app.call(
        Method::GET,
        "/v1/zones/anywhere",
        None,
        None,
        &[("X-Forwarded-For", forwarded)],
    )
    .await
    .status
}

/// A rebuild that runs only the library call, on its own Redis pool (another instance).
fn rebuilder(config: &Config) -> Leaderboards {
    let redis = Redis::new(&config.redis().expect("redis url")).expect("redis config");
    Leaderboards::new(
        redis,
        ShardSet::new(&config.shards()).expect("shards"),
        RarityScores::default(),
        Duration::from_secs(3600),
    )
}

/// Runs a rebuild, waiting out one that is already running (the instances' own, at start).
async fn rebuild_now(boards: &Leaderboards) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match boards.rebuild().await {
            Ok(_) => return,
            Err(Error::RebuildRunning) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("rebuild failed: {e}"),
        }
    }
}

/// A board a follower created after the rebuild listed the live keys used to survive the swap
/// while the positions went back to the horizon, so its claims counted twice (this test caught
/// it on every run before followers held off during a rebuild).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_while_a_follower_applies_claims_in_brand_new_zones_leaves_boards_equal_to_the_ledger(
) {
    let base = spawn_app().await;
    let redis = RedisServer::start().await;
    let mut c = config(&base.shard_urls, &redis);
    c.leaderboard_poll_ms = 10;
    c.rate_claims = "10000/10000".parse().expect("spec");
    let app = Arc::new(spawn_app_with(c.clone()).await);
    let rebuild = rebuilder(&c);
    app.starter().await;
    // Another deployment shares this Redis (the prefix allows it). A rebuild's SCAN walks the
    // whole keyspace, so its keys stretch the listing of live boards to hundreds of ms.
    let fill = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'other:rl:' .. i, 'x') end";
    // (Enough that claims in a few new zones land meanwhile, even on a loaded machine.)
    assert_eq!(redis.cmd(&["EVAL", fill, "0", "100000"]).await, "$-1");
    let old = zone_on(0, "old");
    app.spawn_zone(&old, 50, "starter").await;
    app.claim(&old, &app.token("veteran"), None).await;
    let mut scopes = vec!["global".to_owned(), old.clone()];
    boards_match_ledger(&app, &scopes).await;

    // Each round: while another process rebuilds, players claim in zone after zone that has no
    // ledger row below the rebuild's horizons, and this instance's follower applies them.
    let lock = format!("t{}:lb:rebuild-lock", redis.port);
    for round in 0..3usize {
        let running = {
            let rebuild = rebuild.clone();
            tokio::spawn(async move { rebuild_now(&rebuild).await })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cmd(&["EXISTS", &lock]).await != ":1" {
            assert!(Instant::now() < deadline, "the rebuild never took its lock");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut fresh = 0;
        while !running.is_finished() {
            let zone = zone_on(fresh % 2, &format!("fresh{round}-{fresh}"));
            app.spawn_zone(&zone, 10, "starter").await;
            for p in ["ann", "bob"] {
                let r = app.claim(&zone, &app.token(p), None).await;
                assert_eq!(r.status, StatusCode::CREATED);
            }
            scopes.push(zone);
            fresh += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running.await.expect("rebuild");
        assert!(fresh > 1, "claims must land while the rebuild runs");
        boards_match_ledger(&app, &scopes).await;
    }
    assert_eq!(
        redis.cmd(&["EXISTS", &lock]).await,
        ":0",
        "each rebuild releases its lock"
    );
}

/// Waits for a rebuild to hold the lock; returns the lock's value (its run) as Redis sent it.
async fn lock_owner(redis: &RedisServer, lock: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let owner = redis.cmd(&["GET", lock]).await;
        if owner != "$-1" {
            return owner;
        }
        assert!(Instant::now() < deadline, "the rebuild never took its lock");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Holds any rebuild at its first shard: the rebuild's ledger query waits for this lock.
async fn hold_shard0(app: &TestApp) -> sqlx::PgConnection {
    let mut db = app.shard_db(0).await;
    sqlx::query("BEGIN").execute(&mut db).await.expect("begin");
    sqlx::query("LOCK TABLE zones IN ACCESS EXCLUSIVE MODE")
        .execute(&mut db)
        .await
        .expect("lock zones");
    db
}

/// The lock used to live ten minutes, unrenewed, so a longer rebuild could overlap another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_rebuild_keeps_its_lock_refuses_a_second_and_swaps_only_while_the_lock_is_its_own() {
    let base = spawn_app().await;
    let redis = RedisServer::start().await;
    let c = config(&base.shard_urls, &redis);
    let app = spawn_app_with(c.clone()).await;
    app.starter().await;
    let (east, west) = (zone_on(0, "east"), zone_on(1, "west"));
    for z in [&east, &west] {
        app.spawn_zone(z, 100, "starter").await;
        app.claim(z, &app.token("ann"), None).await;
    }
    let scopes = vec!["global".to_owned(), east.clone(), west.clone()];
    boards_match_ledger(&app, &scopes).await;
    let lock = format!("t{}:lb:rebuild-lock", redis.port);
    let mut patient = c.clone();
    patient.db_statement_timeout_ms = 30_000; // the held ledger query may wait
    let ttl = Duration::from_millis(600);

    // A rebuild held well past its lock's lifetime keeps the lock (renewed, not expired).
    let mut hold = hold_shard0(&app).await;
    let running = {
        let rebuild = rebuilder(&patient).with_rebuild_lock_ttl(ttl);
        tokio::spawn(async move { rebuild.rebuild().await })
    };
    let owner = lock_owner(&redis, &lock).await;
    let before = served_boards(&app, &scopes).await;
    let bob = app.claim(&west, &app.token("bob"), None).await;
    assert_eq!(bob.status, StatusCode::CREATED);
    let held = Instant::now();
    while held.elapsed() < ttl * 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(redis.cmd(&["GET", &lock]).await, owner, "the lock lapsed");
    }
    assert_eq!(
        served_boards(&app, &scopes).await,
        before,
        "followers apply nothing while a rebuild holds the lock"
    );
    // A second rebuild, in this process or from the command line, refuses and says why.
    assert!(matches!(
        rebuilder(&c).rebuild().await,
        Err(Error::RebuildRunning)
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trove"))
        .args(["leaderboards", "rebuild"])
        .env("TROVE_SHARDS", base.shard_urls.join(","))
        .env("TROVE_JWT_SECRET", SECRET)
        .env("TROVE_REDIS_URL", redis.url())
        .env("TROVE_REDIS_PREFIX", format!("t{}", redis.port))
        .output()
        .expect("run rebuild");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a leaderboard rebuild is already running"),
        "{stderr}"
    );
    assert_eq!(
        redis.cmd(&["GET", &lock]).await,
        owner,
        "refusing takes nothing"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut hold)
        .await
        .expect("release");
    let report = running.await.expect("task").expect("the held rebuild");
    assert_eq!(report.shards, 2);
    assert_eq!(redis.cmd(&["EXISTS", &lock]).await, ":0", "released");
    boards_match_ledger(&app, &scopes).await; // bob's claim included

    // A rebuild whose lock stopped being its own before the swap (it lapsed and another
    // rebuild took it: done here by hand) swaps nothing and leaves the other's lock alone.
    // The default lifetime means no renewal notices first: the swap itself refuses.
    let mut hold = hold_shard0(&app).await;
    let running = {
        let rebuild = rebuilder(&patient);
        tokio::spawn(async move { rebuild.rebuild().await })
    };
    lock_owner(&redis, &lock).await;
    assert_eq!(redis.cmd(&["SET", &lock, "intruder"]).await, "+OK");
    let cid = app.claim(&west, &app.token("cid"), None).await;
    assert_eq!(cid.status, StatusCode::CREATED);
    let before = served_boards(&app, &scopes).await;
    sqlx::query("ROLLBACK")
        .execute(&mut hold)
        .await
        .expect("release");
    assert!(matches!(
        running.await.expect("task"),
        Err(Error::RebuildLockLost)
    ));
    assert_eq!(redis.cmd(&["GET", &lock]).await, "$8\r\nintruder");
    let tmp = format!("t{}:lbtmp:*", redis.port);
    assert_eq!(
        redis.cmd(&["KEYS", &tmp]).await,
        "*0",
        "temporary keys removed"
    );
    assert_eq!(
        served_boards(&app, &scopes).await,
        before,
        "nothing swapped"
    );
    // Once the other rebuild is gone, the followers carry on from the untouched positions.
    assert_eq!(redis.cmd(&["DEL", &lock]).await, ":1");
    boards_match_ledger(&app, &scopes).await; // cid's claim included
}
