//! Who is calling: one bearer parser serves the rate limits and the handlers alike, and each
//! request's token is verified exactly once, however it was sent.

use reqwest::{Method, StatusCode};
use trove::config::Config;

use crate::helpers::{metric, spawn_app, spawn_app_with, RedisServer, Resp, TestApp};

/// Rate limits on, with buckets small enough to see which one a request drew from: an
/// anonymous address gets one request, a player three, and nothing refills during a test.
async fn limited_app(redis: &RedisServer) -> TestApp {
    let base = spawn_app().await;
    let mut c = Config::for_shards(base.shard_urls.clone(), crate::helpers::SECRET);
    c.redis_url = Some(redis.url());
    c.redis_prefix = format!("t{}", redis.port);
    c.rate_anon = "0.01/1".parse().expect("spec");
    c.rate_reads = "0.01/3".parse().expect("spec");
    spawn_app_with(c).await
}

async fn get(app: &TestApp, path: &str, authorization: Option<&str>) -> Resp {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    app.call(Method::GET, path, None, None, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_case_bearer_admin_token_is_neither_refused_nor_limited_as_anonymous() {
    let redis = RedisServer::start().await;
    let app = limited_app(&redis).await;
    app.starter().await;
    app.spawn_zone("lower-admin", 5, "starter").await;
    // This address's anonymous bucket (one request) is spent.
    assert_eq!(
        get(&app, "/v1/zones/lower-admin", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let limited = get(&app, "/v1/zones/lower-admin", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    // An admin is never limited, whatever the case of the scheme.
    let admin = format!("bearer {}", app.admin());
    for _ in 0..5 {
        let r = get(&app, "/v1/zones/lower-admin", Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_case_bearer_player_token_is_limited_in_that_players_own_bucket() {
    let redis = RedisServer::start().await;
    let app = limited_app(&redis).await;
    app.starter().await;
    app.spawn_zone("lower-player", 5, "starter").await;
    let player = format!("bearer {}", app.token("lc-player"));
    // Three reads in the player's bucket (an anonymous one would refuse the second) …
    for _ in 0..3 {
        let r = get(&app, "/v1/zones/lower-player", Some(&player)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    // … then that bucket is empty.
    let limited = get(&app, "/v1/zones/lower-player", Some(&player)).await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let key = format!("t{}:rl:reads:lc-player", redis.port);
    assert_eq!(redis.cmd(&["EXISTS", &key]).await, ":1");
    // Another player's bucket is untouched.
    let other = format!("bearer {}", app.token("lc-other"));
    let r = get(&app, "/v1/zones/lower-player", Some(&other)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn verifications(app: &TestApp) -> f64 {
    let text = app.metrics_text().await;
    metric(&text, "trove_token_verifications_total", &[]).expect("the counter is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_verifies_its_token_exactly_once_however_it_was_sent() {
    // Redis on: the rate limiter reads the caller too.
    let redis = RedisServer::start().await;
    let base = spawn_app().await;
    let mut c = Config::for_shards(base.shard_urls.clone(), crate::helpers::SECRET);
    c.redis_url = Some(redis.url());
    c.redis_prefix = format!("t{}", redis.port);
    let app = spawn_app_with(c).await;
    app.starter().await;
    app.spawn_zone("verified", 10, "starter").await;
    let token = app.token("once");

    let upper = format!("Bearer {token}");
    let lower = format!("bearer {token}");
    for (how, authorization, expected) in [
        ("Bearer", upper.as_str(), StatusCode::OK),
        ("bearer", lower.as_str(), StatusCode::OK),
        (
            "a forged token",
            "Bearer not.a.token",
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let before = verifications(&app).await;
        let r = get(&app, "/v1/zones/verified", Some(authorization)).await;
        assert_eq!(r.status, expected, "{how}: {:?}", r.body);
        assert_eq!(verifications(&app).await - before, 1.0, "{how}");
    }

    let before = verifications(&app).await;
    let claim = app
        .call(
            Method::POST,
            "/v1/zones/verified/claims",
            None,
            None,
            &[("Authorization", &lower)],
        )
        .await;
    assert_eq!(claim.status, StatusCode::CREATED, "{:?}", claim.body);
    assert_eq!(verifications(&app).await - before, 1.0, "a claim");

    let before = verifications(&app).await;
    let url = format!("{}/v1/ws?token={token}", app.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade with ?token=");
    assert_eq!(verifications(&app).await - before, 1.0, "?token=");
    let _ = ws.close(None).await;
}
