//! Operability: Prometheus metrics after real traffic, readiness that follows a shard's
//! life, request ids in headers and error bodies, the concurrency cap, the OpenAPI document.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trove::config::Config;
use trove::shards::shard_index;

use crate::helpers::{
    fresh_db, fresh_db_on, metric, migrated_template, spawn_app, spawn_app_on, spawn_app_with,
    start_cluster, TestApp, SECRET,
};
use crate::realtime::{connect, subscribe};

async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    r.text().await.expect("metrics body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_claims_requests_and_websockets() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = "metrics-zone";
    assert_eq!(
        app.spawn_zone(zone, 3, "starter").await.status,
        StatusCode::CREATED
    );
    let shard = shard_index(zone, 2).to_string();
    let t = app.token("metrics-player");
    for key in ["k1", "k2", "k3"] {
        assert_eq!(
            app.claim(zone, &t, Some(key)).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(app.claim(zone, &t, Some("k1")).await.status, StatusCode::OK);
    let r = app.claim(zone, &t, None).await;
    assert_eq!(r.code(), "zone_exhausted");
    let missing = "metrics-nowhere";
    assert_eq!(
        app.claim(missing, &t, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.claim(zone, "forged.token.here", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unrouted = app
        .call(Method::GET, "/no/such/route", None, None, &[])
        .await;
    assert_eq!(unrouted.status, StatusCode::NOT_FOUND);

    let mut ws = connect(&app, "metrics-watcher").await;
    subscribe(&mut ws, &[zone]).await;

    // The server counts a frame once its write returned, which can be just after the client
    // read it: wait for the count rather than race it.
    let text = eventually(&app, |text| {
        metric(text, "trove_ws_messages_sent_total", &[]) >= Some(1.0)
    })
    .await;
    let claims = |outcome: &str, shard: &str| {
        metric(
            &text,
            "trove_claims_total",
            &[("outcome", outcome), ("shard", shard)],
        )
    };
    assert_eq!(claims("opened", &shard), Some(3.0), "{text}");
    assert_eq!(claims("replayed", &shard), Some(1.0));
    assert_eq!(claims("zone_exhausted", &shard), Some(1.0));
    let missing_shard = shard_index(missing, 2).to_string();
    assert_eq!(claims("not_found", &missing_shard), Some(1.0));
    // Every claim the shard answered is timed: 3 opened, 1 replay, 1 exhausted, 1 not found.
    let timed: f64 = ["0", "1"]
        .iter()
        .filter_map(|s| metric(&text, "trove_claim_duration_seconds_count", &[("shard", s)]))
        .sum();
    assert_eq!(timed, 6.0);
    // One claim at a time: every statement carried one (the opened, the replay and the
    // exhausted one went to the shard; the unknown zone never did).
    let sum = |name: &str| -> f64 {
        ["0", "1"]
            .iter()
            .filter_map(|s| metric(&text, name, &[("shard", s)]))
            .sum()
    };
    let statements = sum("trove_claim_statements_total");
    assert!(statements >= 5.0, "{statements} statements");
    assert_eq!(sum("trove_claim_statement_claims_total"), statements);
    // Each statement ran inside the claim it carried, so their time is some of the claims'.
    let statement_seconds = sum("trove_claim_statement_seconds_total");
    let claim_seconds = sum("trove_claim_duration_seconds_sum");
    assert!(
        statement_seconds > 0.0 && statement_seconds < claim_seconds,
        "statements {statement_seconds} s, claims {claim_seconds} s"
    );
    let waited = sum("trove_claim_wait_seconds_total");
    assert!(
        (0.0..statement_seconds).contains(&waited),
        "claims waited {waited} s for statements of {statement_seconds} s"
    );
    let http = |class: &str| {
        metric(
            &text,
            "trove_http_requests_total",
            &[
                ("route", "/v1/zones/{zone}/claims"),
                ("method", "POST"),
                ("status_class", class),
            ],
        )
    };
    assert_eq!(http("2xx"), Some(4.0));
    assert_eq!(http("4xx"), Some(3.0), "409, 404 and 401");
    assert_eq!(
        metric(
            &text,
            "trove_http_requests_total",
            &[
                ("route", "unmatched"),
                ("method", "GET"),
                ("status_class", "4xx")
            ]
        ),
        Some(1.0)
    );
    for s in ["0", "1"] {
        assert_eq!(metric(&text, "trove_shard_up", &[("shard", s)]), Some(1.0));
        assert_eq!(
            metric(
                &text,
                "trove_db_pool_max_connections",
                &[("shard", s), ("pool", "api")]
            ),
            Some(16.0)
        );
    }
    assert_eq!(metric(&text, "trove_ws_connections", &[]), Some(1.0));
    // Label sets are bounded: no zone names or player ids.
    for unbounded in [zone, missing, "metrics-player", "metrics-watcher"] {
        assert!(!text.contains(unbounded), "{unbounded} leaked into labels");
    }

    ws.close(None).await.expect("close");
    // The close is counted, then the connection's task ends and leaves the gauge.
    let text = eventually(&app, |text| {
        metric(
            text,
            "trove_ws_clients_closed_total",
            &[("reason", "client")],
        ) == Some(1.0)
            && metric(text, "trove_ws_connections", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(metric(&text, "trove_ws_connections", &[]), Some(0.0));
}

/// Scrapes until `ready` holds (at most 5 s) and returns that scrape.
async fn eventually(app: &TestApp, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(app).await;
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_metrics_port_serves_only_the_operations_routes() {
    let base = spawn_app().await;
    let mut config = Config::for_shards(base.shard_urls.clone(), SECRET);
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let app = spawn_app_with(config).await;
    let ops = app.ops_base.clone().expect("ops listener");
    assert_ne!(ops, app.base);
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{ops}{path}"))
            .send()
            .await
            .expect("ops");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let text = app
        .client
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(text.contains("trove_shard_up{shard=\"1\"} 1"), "{text}");
    // The API is not on the operations port.
    let r = app
        .client
        .get(format!("{ops}/v1/zones/meadow"))
        .bearer_auth(app.token("p"))
        .send()
        .await
        .expect("api on ops port");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_shard_going_down_and_coming_back() {
    let own = start_cluster("ready-test");
    migrated_template(&own).await;
    let app = spawn_app_on(vec![fresh_db_on(0).await, fresh_db(&own).await]).await;
    let ready = |app: &TestApp| {
        let req = app.client.get(format!("{}/readyz", app.base));
        async move {
            let r = req.send().await.expect("readyz");
            let status = r.status();
            (status, r.json::<Value>().await.expect("readyz json"))
        }
    };
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["shards"][1]["status"], "up");
    assert_eq!(body["redis"]["status"], "disabled");

    own.stop().expect("stop shard 1");
    let stopped = Instant::now();
    let body = loop {
        let (status, body) = ready(&app).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["shards"][0]["status"], "up");
    assert_eq!(body["shards"][1]["status"], "down");
    // Liveness is not readiness: the process is fine.
    let live = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(live.status, StatusCode::OK);

    own.start().expect("restart shard 1");
    let started = Instant::now();
    loop {
        let (status, body) = ready(&app).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_and_carried_in_error_bodies() {
    let app = spawn_app().await;
    let t = app.token("rid-player");
    let r = app
        .call(
            Method::GET,
            "/v1/zones/no-such-zone",
            Some(&t),
            None,
            &[("X-Request-Id", "edge-7f3c.1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["x-request-id"], "edge-7f3c.1");
    assert_eq!(r.body["request_id"], "edge-7f3c.1");
    assert_eq!(r.code(), "zone_not_found");

    // Without one (or with an unusable one), the server makes one and uses it everywhere.
    for sent in [None, Some("not a token!")] {
        let headers: Vec<(&str, &str)> =
            sent.map(|s| vec![("X-Request-Id", s)]).unwrap_or_default();
        let r = app
            .call(
                Method::POST,
                "/v1/zones/BAD/claims",
                Some(&t),
                None,
                &headers,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let id = r.headers["x-request-id"].to_str().expect("id").to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(r.body["request_id"], id.as_str());
    }
    // Errors produced by axum itself (unknown route) have the shape and the id too.
    let r = app.call(Method::GET, "/nope", None, None, &[]).await;
    assert_eq!(r.code(), "not_found");
    assert_eq!(
        r.body["request_id"],
        r.headers["x-request-id"].to_str().expect("id")
    );
    // Successes carry the header.
    let r = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_cap_requests_get_503_overloaded_and_probes_still_answer() {
    let base = spawn_app().await;
    let mut config = Config::for_shards(base.shard_urls.clone(), SECRET);
    config.max_concurrent_requests = 1;
    let app = spawn_app_with(config).await;

    // Hold the only slot: a request whose body arrives slowly keeps its handler waiting.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (first, rest) = ("{\"entries\":", "[]}");
    let head = format!(
        "PUT /v1/loot-tables/slow HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{first}",
        app.admin(),
        first.len() + rest.len()
    );
    slow.write_all(head.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t = app.token("crowd");
    let r = app
        .call(Method::GET, "/v1/zones/anything", Some(&t), None, &[])
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        "{:?}",
        r.body
    );
    assert_eq!(r.headers["retry-after"], "1");
    let probe = app.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(probe.status, StatusCode::OK, "{:?}", probe.body);

    // Finish the slow body (an empty table, refused with 400): its answer frees the slot.
    slow.write_all(rest.as_bytes()).await.expect("write rest");
    let mut answer = vec![0u8; 512];
    let n = slow.read(&mut answer).await.expect("read answer");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let r = app
        .call(Method::GET, "/v1/zones/anything", Some(&t), None, &[])
        .await;
    assert_eq!(r.code(), "zone_not_found", "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_with_auth_and_errors() {
    let app = spawn_app().await;
    let r = app
        .call(Method::GET, "/openapi.json", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    // Schemas nested in responses are described too (`/readyz`'s hosts of a shard).
    assert!(
        doc["components"]["schemas"]["HostRole"].is_object(),
        "{doc}"
    );
    let expected = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/.well-known/trove-keys.json"),
        ("put", "/v1/loot-tables/{name}"),
        ("get", "/v1/loot-tables/{name}"),
        ("post", "/v1/zones/{zone}/chests"),
        ("get", "/v1/zones/{zone}/chests"),
        ("post", "/v1/zones/{zone}/claims"),
        ("post", "/v1/zones/{zone}/chests/{chest_id}/claim"),
        ("get", "/v1/zones/{zone}"),
        ("post", "/v1/zones/{zone}/reveal"),
        ("get", "/v1/zones/{zone}/epochs/{epoch}/transcript"),
        ("delete", "/v1/synthetic-zones"),
        ("get", "/v1/players/{player}/claims"),
        ("get", "/v1/zones/{zone}/players/{player}/client-seed"),
        ("put", "/v1/zones/{zone}/players/{player}/client-seed"),
        ("get", "/v1/leaderboards/{board}"),
        ("get", "/v1/leaderboards/{board}/players/{player}"),
        ("get", "/v1/ws"),
        ("get", "/v1/zones"),
        ("post", "/v1/zones/{zone}/verify"),
        ("get", "/v1/loot-tables"),
        ("get", "/v1/shards"),
        ("get", "/v1/audit"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|item| {
            ["get", "put", "post", "delete", "patch"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    assert_eq!(documented, expected.len(), "{:?}", paths.keys());
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        if path.starts_with("/v1/") {
            assert_eq!(op["security"][0]["bearer"], Value::Array(vec![]), "{path}");
            for code in ["400", "401", "429", "500", "503"] {
                assert_eq!(
                    op["responses"][code]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
        }
    }
    let claim = &doc["paths"]["/v1/zones/{zone}/claims"]["post"]["responses"];
    for code in ["200", "201", "404", "409", "422"] {
        assert!(claim[code].is_object(), "claims {code}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Documented limits are the engine's limits.
    let schemas = &doc["components"]["schemas"];
    let limit =
        |schema: &str, field: &str, key: &str| schemas[schema]["properties"][field][key].as_f64();
    use trove::loot::{MAX_ENTRIES, MAX_QTY, MAX_ROLLS, MAX_WEIGHT};
    assert_eq!(
        limit("LootEntry", "weight", "maximum"),
        Some(f64::from(MAX_WEIGHT))
    );
    assert_eq!(
        limit("LootEntry", "max_qty", "maximum"),
        Some(f64::from(MAX_QTY))
    );
    assert_eq!(
        limit("LootTableSpec", "rolls", "maximum"),
        Some(f64::from(MAX_ROLLS))
    );
    assert_eq!(
        limit("LootTableSpec", "entries", "maxItems"),
        Some(MAX_ENTRIES as f64)
    );
    assert_eq!(
        limit("SpawnBody", "count", "maximum"),
        Some(trove::zones::MAX_SPAWN as f64)
    );
    // Documented routes are served (the description and the router are one): every path
    // answers with something other than "no such route".
    let t = app.token("doc-reader");
    for (method, path) in expected {
        let concrete = path
            .replace("{zone}", "doc-zone")
            .replace("{chest_id}", "1")
            .replace("{name}", "doc-table")
            .replace("{player}", "doc-reader")
            .replace("{board}", "chests");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let r = app.call(m, &concrete, Some(&t), None, &[]).await;
        assert_ne!(r.code(), "not_found", "{method} {concrete}: {:?}", r.body);
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
    }
}
