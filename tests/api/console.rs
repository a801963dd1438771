//! What the console reads besides the claim routes: the zone and loot table listings across
//! shards, shard health, a zone verified over HTTP; and the console's own files with their
//! Content-Security-Policy. (The console in a real browser is tested in console/test.)

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, zone_on, TestApp};

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let r = app.call(Method::GET, path, Some(token), None, &[]).await;
    (r.status, r.body)
}

fn names(page: &Value) -> Vec<String> {
    page["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .map(|z| z["zone"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn zones_are_listed_in_keyset_pages_across_shards_with_their_totals() {
    let app = spawn_app().await;
    app.starter().await;
    let admin = app.admin();
    // Three real zones spread over both shards and one synthetic; names sort in this order.
    let zones = [
        zone_on(0, "list-a"),
        zone_on(1, "list-b"),
        zone_on(0, "list-c"),
    ];
    for (i, z) in zones.iter().enumerate() {
        app.spawn_zone(z, 5 + i as i64, "starter").await;
    }
    let probe = zone_on(1, "list-p");
    let spawned = app.spawn_synthetic_zone(&probe, 3, "starter").await;
    assert_eq!(spawned.status, StatusCode::CREATED, "{:?}", spawned.body);
    let player = app.token("lister");
    assert_eq!(
        app.claim(&zones[1], &player, None).await.status,
        StatusCode::CREATED
    );

    let mut sorted: Vec<String> = zones.to_vec();
    sorted.sort();
    // Pages of two, real zones only (the database is fresh: these are all its zones).
    let (status, first) = get(&app, "/v1/zones?limit=2&synthetic=false", &admin).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(names(&first), sorted[..2]);
    let next = first["next"].as_str().expect("a next page");
    let (_, second) = get(
        &app,
        &format!("/v1/zones?limit=2&synthetic=false&after={next}"),
        &admin,
    )
    .await;
    assert_eq!(names(&second), sorted[2..]);
    assert!(second["next"].is_null(), "{second}");
    let shards: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|p| p["zones"].as_array().expect("zones").iter())
        .map(|z| z["shard"].as_i64().expect("shard"))
        .collect();
    assert!(shards.contains(&0) && shards.contains(&1), "{shards:?}");
    // Totals as the zone route has them.
    let (_, all) = get(&app, "/v1/zones", &admin).await;
    let b = all["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .find(|z| z["zone"] == zones[1].as_str())
        .expect("zone b listed")
        .clone();
    assert_eq!(
        (
            b["total"].as_i64(),
            b["opened"].as_i64(),
            b["remaining"].as_i64()
        ),
        (Some(6), Some(1), Some(5))
    );
    assert_eq!(b["synthetic"], false);
    assert_eq!(names(&all).len(), 4);
    let (_, synthetic) = get(&app, "/v1/zones?synthetic=true", &admin).await;
    assert_eq!(names(&synthetic), [probe]);

    // Players may not list; bad pages are 400 and change nothing.
    let (status, body) = get(&app, "/v1/zones", &player).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for bad in ["limit=0", "limit=1001", "synthetic=maybe", "colour=red"] {
        let (status, body) = get(&app, &format!("/v1/zones?{bad}"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["request_id"].is_string(), "{body}");
    }
    let long = "z".repeat(65);
    let (status, _) = get(&app, &format!("/v1/zones?after={long}"), &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn loot_tables_are_listed_with_their_newest_version_and_shards_with_their_health() {
    let app = spawn_app().await;
    app.starter().await;
    let admin = app.admin();
    let entries = |item: &str| json!([{"item": item, "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "common"}]);
    for item in ["a", "b", "c"] {
        assert_eq!(
            app.put_table("list-bag", entries(item)).await.status,
            StatusCode::OK
        );
    }
    app.put_table("list-crate", entries("x")).await;
    // A spawn copies version 3 of list-bag to the zone's shard; the listing still says 3.
    for shard in 0..2 {
        app.spawn_zone(&zone_on(shard, "bags"), 2, "list-bag").await;
    }
    let (status, page) = get(&app, "/v1/loot-tables?limit=2", &admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let tables: Vec<(String, i64)> = page["loot_tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("name").to_owned(),
                t["latest_version"].as_i64().expect("v"),
            )
        })
        .collect();
    assert_eq!(
        tables,
        [("list-bag".to_owned(), 3), ("list-crate".to_owned(), 1)]
    );
    let next = page["next"].as_str().expect("next");
    let (_, rest) = get(&app, &format!("/v1/loot-tables?after={next}"), &admin).await;
    assert_eq!(rest["loot_tables"][0]["name"], "starter", "{rest}");
    assert!(rest["next"].is_null());
    let (status, _) = get(&app, "/v1/loot-tables", &app.token("p")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, view) = get(&app, "/v1/shards", &admin).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let shards = view["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    assert!(
        shards
            .iter()
            .all(|s| s["reachable"] == true && s["zones"].as_i64() >= Some(1)),
        "{view}"
    );
    assert!(view["moves"].as_array().expect("moves").is_empty());
    let (status, _) = get(&app, "/v1/shards", &app.token("p")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_zone_verified_over_http_is_clean_and_names_a_tampered_claim() {
    let app = spawn_app().await;
    app.starter().await;
    let admin = app.admin();
    let zone = zone_on(1, "verify-http");
    app.spawn_zone(&zone, 20, "starter").await;
    for i in 0..8 {
        assert_eq!(
            app.claim(&zone, &app.token(&format!("v{i}")), None)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    app.reveal(&zone).await;
    let verify = |token: String| {
        let app = &app;
        let path = format!("/v1/zones/{zone}/verify");
        async move { app.call(Method::POST, &path, Some(&token), None, &[]).await }
    };
    let r = verify(admin.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["clean"].as_bool(), r.body["claims_checked"].as_i64()),
        (Some(true), Some(8))
    );
    assert_eq!(r.body["claims_with_revealed_seed"].as_i64(), Some(8));

    // Someone with database access changes one claim's loot: the replay names it.
    let mut db = app.shard_db(1).await;
    let tampered: uuid::Uuid = sqlx::query_scalar(
        "UPDATE claims SET loot = '[{\"item\": \"crown\", \"qty\": 99}]' \
         WHERE claim_id = (SELECT claim_id FROM claims ORDER BY claim_id LIMIT 1) RETURNING claim_id",
    )
    .fetch_one(&mut db)
    .await
    .expect("tamper");
    let r = verify(admin.clone()).await;
    assert_eq!(r.body["clean"], false, "{:?}", r.body);
    assert_eq!(r.body["mismatch_count"].as_i64(), Some(1));
    assert_eq!(r.body["mismatches"][0]["claim_id"], tampered.to_string());

    assert_eq!(verify(app.token("v1")).await.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::POST,
            "/v1/zones/no-such-zone/verify",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "zone_not_found")
    );
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_under_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        let header = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(
            header("content-type").starts_with(kind),
            "{path}: {}",
            header("content-type")
        );
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        // The browser's copy is checked, and kept when current.
        let etag = header("etag");
        let again = app
            .client
            .get(format!("{}{path}", app.base))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("get");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let index = app
        .client
        .get(format!("{}/console", app.base))
        .send()
        .await
        .expect("get");
    let html = index.text().await.expect("html");
    assert!(html.contains("/console/app.js"), "{html}");
    let r = app
        .client
        .get(format!("{}/console/secrets.txt", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
