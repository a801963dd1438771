//! Bad input gets the right 4xx in the one JSON error shape, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trove::auth::Role;

use crate::helpers::{spawn_app, zone_on, TestApp};

/// Everything a bad request could have changed.
async fn snapshot(app: &TestApp, zone: &str) -> (Value, Value, i64) {
    let z = app.zone(zone).await;
    let t = app.admin();
    let table = app
        .call(Method::GET, "/v1/loot-tables/starter", Some(&t), None, &[])
        .await
        .body;
    (z, table, app.ledger_count(zone).await)
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_errors_and_change_nothing() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "guarded");
    app.spawn_zone(&zone, 10, "starter").await;
    let before = snapshot(&app, &zone).await;

    let admin = app.admin();
    let player = app.token("honest");
    let forged = trove::auth::JwtKeys::new(b"not-the-server-secret-at-all")
        .expect("keys")
        .issue("honest", Role::Admin, 3600)
        .expect("token");
    let expired = app
        .keys
        .issue("honest", Role::Player, -3600)
        .expect("token");
    let spawn = format!("/v1/zones/{zone}/chests");
    let claim = format!("/v1/zones/{zone}/claims");

    struct Case {
        what: &'static str,
        method: Method,
        path: String,
        token: Option<String>,
        body: Option<Vec<u8>>,
        headers: Vec<(&'static str, String)>,
        status: StatusCode,
        code: &'static str,
    }
    let case = |what,
                method: Method,
                path: &str,
                token: Option<&str>,
                body: Option<&str>,
                status,
                code| Case {
        what,
        method,
        path: path.to_owned(),
        token: token.map(str::to_owned),
        body: body.map(|b| b.as_bytes().to_vec()),
        headers: vec![],
        status,
        code,
    };
    let bad = StatusCode::BAD_REQUEST;
    let mut cases = vec![
        case(
            "malformed JSON",
            Method::POST,
            &spawn,
            Some(&admin),
            Some("{\"count\": 5,"),
            bad,
            "malformed_json",
        ),
        case(
            "wrong type",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":"five","loot_table":"starter"}"#),
            bad,
            "invalid_body",
        ),
        case(
            "missing field",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":5}"#),
            bad,
            "invalid_body",
        ),
        case(
            "unknown field",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":5,"loot_table":"starter","x":1}"#),
            bad,
            "invalid_body",
        ),
        case(
            "huge count",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":1000000000000,"loot_table":"starter"}"#),
            bad,
            "invalid_count",
        ),
        case(
            "count past i64",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":99999999999999999999999,"loot_table":"starter"}"#),
            bad,
            "invalid_body",
        ),
        case(
            "zero count",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":0,"loot_table":"starter"}"#),
            bad,
            "invalid_count",
        ),
        case(
            "negative count",
            Method::POST,
            &spawn,
            Some(&admin),
            Some(r#"{"count":-5,"loot_table":"starter"}"#),
            bad,
            "invalid_count",
        ),
        case(
            "bad zone name",
            Method::POST,
            "/v1/zones/Bad%20Zone/chests",
            Some(&admin),
            Some(r#"{"count":5,"loot_table":"starter"}"#),
            bad,
            "invalid_zone",
        ),
        case(
            "zone name too long",
            Method::POST,
            &format!("/v1/zones/{}/claims", "z".repeat(65)),
            Some(&player),
            None,
            bad,
            "invalid_zone",
        ),
        case(
            "uppercase zone",
            Method::GET,
            "/v1/zones/MEADOW",
            Some(&player),
            None,
            bad,
            "invalid_zone",
        ),
        case(
            "no token",
            Method::POST,
            &claim,
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "missing_token",
        ),
        case(
            "forged token",
            Method::POST,
            &claim,
            Some(&forged),
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        case(
            "expired token",
            Method::POST,
            &claim,
            Some(&expired),
            None,
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        case(
            "garbage token",
            Method::POST,
            &claim,
            Some("abc.def.ghi"),
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        case(
            "claim as another player",
            Method::POST,
            &claim,
            Some(&player),
            Some(r#"{"player":"victim"}"#),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        case(
            "player spawns chests",
            Method::POST,
            &spawn,
            Some(&player),
            Some(r#"{"count":5,"loot_table":"starter"}"#),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        case(
            "player reveals",
            Method::POST,
            &format!("/v1/zones/{zone}/reveal"),
            Some(&player),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        case(
            "player edits loot table",
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&player),
            Some(r#"{"entries":[]}"#),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        case(
            "empty loot table",
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&admin),
            Some(r#"{"entries":[]}"#),
            bad,
            "invalid_loot_table",
        ),
        case(
            "zero weight",
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&admin),
            Some(
                r#"{"entries":[{"item":"x","weight":0,"min_qty":1,"max_qty":1,"rarity":"common"}]}"#,
            ),
            bad,
            "invalid_loot_table",
        ),
        case(
            "negative weight",
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&admin),
            Some(
                r#"{"entries":[{"item":"x","weight":-1,"min_qty":1,"max_qty":1,"rarity":"common"}]}"#,
            ),
            bad,
            "invalid_body",
        ),
        case(
            "unknown rarity",
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&admin),
            Some(
                r#"{"entries":[{"item":"x","weight":1,"min_qty":1,"max_qty":1,"rarity":"mythic"}]}"#,
            ),
            bad,
            "invalid_body",
        ),
        case(
            "min over max",
            Method::PUT,
            "/v1/loot-tables/starter",
            Some(&admin),
            Some(
                r#"{"entries":[{"item":"x","weight":1,"min_qty":5,"max_qty":1,"rarity":"common"}]}"#,
            ),
            bad,
            "invalid_loot_table",
        ),
        case(
            "bad table name",
            Method::PUT,
            "/v1/loot-tables/Bad!",
            Some(&admin),
            Some(
                r#"{"entries":[{"item":"x","weight":1,"min_qty":1,"max_qty":1,"rarity":"common"}]}"#,
            ),
            bad,
            "invalid_loot_table_name",
        ),
        case(
            "claim body not JSON",
            Method::POST,
            &claim,
            Some(&player),
            Some("player=me"),
            bad,
            "malformed_json",
        ),
        case(
            "chest id not a number",
            Method::POST,
            &format!("/v1/zones/{zone}/chests/abc/claim"),
            Some(&player),
            None,
            bad,
            "invalid_chest_id",
        ),
        case(
            "chest id zero",
            Method::POST,
            &format!("/v1/zones/{zone}/chests/0/claim"),
            Some(&player),
            None,
            StatusCode::NOT_FOUND,
            "chest_not_found",
        ),
        case(
            "bad state",
            Method::GET,
            &format!("/v1/zones/{zone}/chests?state=lost"),
            Some(&player),
            None,
            bad,
            "invalid_query",
        ),
        case(
            "limit too large",
            Method::GET,
            &format!("/v1/zones/{zone}/chests?limit=100000"),
            Some(&player),
            None,
            bad,
            "invalid_query",
        ),
        case(
            "negative after",
            Method::GET,
            &format!("/v1/zones/{zone}/chests?after=-1"),
            Some(&player),
            None,
            bad,
            "invalid_query",
        ),
        case(
            "bad cursor",
            Method::GET,
            "/v1/players/honest/claims?before=yesterday",
            Some(&player),
            None,
            bad,
            "invalid_cursor",
        ),
        case(
            "history limit zero",
            Method::GET,
            "/v1/players/honest/claims?limit=0",
            Some(&player),
            None,
            bad,
            "invalid_query",
        ),
        case(
            "unknown zone",
            Method::POST,
            "/v1/zones/nowhere/claims",
            Some(&player),
            None,
            StatusCode::NOT_FOUND,
            "zone_not_found",
        ),
        case(
            "unknown route",
            Method::GET,
            "/v1/nothing-here",
            Some(&player),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            "wrong method",
            Method::DELETE,
            &format!("/v1/zones/{zone}"),
            Some(&admin),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    let mut key_case = case(
        "bad idempotency key",
        Method::POST,
        &claim,
        Some(&player),
        None,
        bad,
        "invalid_idempotency_key",
    );
    key_case
        .headers
        .push(("Idempotency-Key", "has spaces in it".into()));
    cases.push(key_case);
    let mut long_key = case(
        "idempotency key too long",
        Method::POST,
        &claim,
        Some(&player),
        None,
        bad,
        "invalid_idempotency_key",
    );
    long_key.headers.push(("Idempotency-Key", "k".repeat(300)));
    cases.push(long_key);
    let mut no_json = case(
        "not JSON content type",
        Method::POST,
        &spawn,
        Some(&admin),
        Some(r#"{"count":5,"loot_table":"starter"}"#),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    no_json.headers.push(("content-type", "text/plain".into()));
    cases.push(no_json);
    let huge = format!(
        r#"{{"entries":[{}]}}"#,
        vec![r#"{"item":"x","weight":1,"min_qty":1,"max_qty":1,"rarity":"common"}"#; 2000]
            .join(",")
    );
    cases.push(Case {
        what: "body over the limit",
        method: Method::PUT,
        path: "/v1/loot-tables/starter".into(),
        token: Some(admin.clone()),
        body: Some(huge.into_bytes()),
        headers: vec![],
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
    });

    for c in cases {
        let mut req = app
            .client
            .request(c.method.clone(), format!("{}{}", app.base, c.path));
        if let Some(t) = &c.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = c.body {
            if !c
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b);
        }
        for (k, v) in &c.headers {
            req = req.header(*k, v.as_str());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, c.status, "{}: {body}", c.what);
        assert_eq!(body["error"], json!(c.code), "{}: {body}", c.what);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: {body}",
            c.what
        );
    }

    assert_eq!(
        snapshot(&app, &zone).await,
        before,
        "a bad request changed state"
    );
    let mut db = app.shard_db(0).await;
    let zones: i64 = sqlx::query_scalar("SELECT count(*) FROM zones")
        .fetch_one(&mut db)
        .await
        .expect("count");
    let mut db1 = app.shard_db(1).await;
    let zones1: i64 = sqlx::query_scalar("SELECT count(*) FROM zones")
        .fetch_one(&mut db1)
        .await
        .expect("count");
    assert_eq!(zones + zones1, 1, "no zone may be created by a bad request");
}
