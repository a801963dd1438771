//! The audit log: every admin call leaves one row (who, when, what, request id, outcome),
//! refused and failed ones included, written in the change's own transaction; it reads in
//! keyset pages across shards, outlives a zone's move, and nothing can change it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trove::moves::MoveOptions;

use crate::helpers::{run_trove, spawn_app, zone_on, Resp, TestApp};

/// Every audit entry, oldest first, read in pages of `page` (optionally of one zone).
async fn audit_log(app: &TestApp, zone: Option<&str>, page: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit?limit={page}");
        if let Some(z) = zone {
            path += &format!("&zone={z}");
        }
        if let Some(a) = &after {
            path += &format!("&after={a}");
        }
        let r = app
            .call(Method::GET, &path, Some(&app.admin()), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        entries.extend(
            r.body["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .cloned(),
        );
        match r.body["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return entries,
        }
    }
}

async fn as_request(
    app: &TestApp,
    id: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    app.call(method, path, Some(token), body, &[("x-request-id", id)])
        .await
}

fn by_request<'a>(entries: &'a [Value], id: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["request_id"] == id).collect()
}

#[tokio::test]
async fn admin_calls_leave_one_row_each_with_who_what_and_the_request_refusals_included() {
    let app = spawn_app().await;
    let admin = app
        .keys
        .issue("ops-alice", trove::auth::Role::Admin, 600)
        .expect("token");
    let player = app.token("mallory");
    let zone = zone_on(1, "audited");
    let table = json!({"entries": [{"item": "gold", "weight": 1, "min_qty": 1, "max_qty": 2, "rarity": "common"}]});
    let r = as_request(
        &app,
        "req-table",
        &admin,
        Method::PUT,
        "/v1/loot-tables/audit-bag",
        Some(table),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let chests = format!("/v1/zones/{zone}/chests");
    let r = as_request(
        &app,
        "req-spawn",
        &admin,
        Method::POST,
        &chests,
        Some(json!({"count": 7, "loot_table": "audit-bag"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let reveal = format!("/v1/zones/{zone}/reveal");
    assert_eq!(
        as_request(&app, "req-reveal", &admin, Method::POST, &reveal, None)
            .await
            .status,
        StatusCode::OK
    );
    // Refused: a player's token, a bad count, a table that does not exist. None changes a thing.
    let r = as_request(
        &app,
        "req-mallory",
        &player,
        Method::POST,
        &chests,
        Some(json!({"count": 5, "loot_table": "audit-bag"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = as_request(
        &app,
        "req-zero",
        &admin,
        Method::POST,
        &chests,
        Some(json!({"count": 0, "loot_table": "audit-bag"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = as_request(
        &app,
        "req-nobag",
        &admin,
        Method::POST,
        &chests,
        Some(json!({"count": 1, "loot_table": "no-such-bag"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.zone(&zone).await["total"],
        7,
        "refused spawns added nothing"
    );

    let entries = audit_log(&app, None, 2).await;
    assert_eq!(entries.len(), 6, "{entries:#?}");
    let one = |id: &str| {
        let rows = by_request(&entries, id);
        assert_eq!(rows.len(), 1, "{id}: {entries:#?}");
        rows[0].clone()
    };
    let t = one("req-table");
    assert_eq!(
        (
            t["actor"].as_str(),
            t["action"].as_str(),
            t["target"].as_str(),
            t["outcome"].as_str()
        ),
        (
            Some("ops-alice"),
            Some("put_loot_table"),
            Some("audit-bag"),
            Some("ok")
        )
    );
    assert_eq!(t["detail"]["version"], 1);
    let s = one("req-spawn");
    assert_eq!(
        (
            s["action"].as_str(),
            s["zone"].as_str(),
            s["outcome"].as_str()
        ),
        (Some("spawn"), Some(zone.as_str()), Some("ok"))
    );
    assert_eq!(
        (
            s["detail"]["count"].as_i64(),
            s["detail"]["first_chest"].as_i64()
        ),
        (Some(7), Some(1))
    );
    let v = one("req-reveal");
    assert_eq!(
        (
            v["action"].as_str(),
            v["detail"]["epoch"].as_i64(),
            v["actor"].as_str()
        ),
        (Some("reveal"), Some(1), Some("ops-alice"))
    );
    let m = one("req-mallory");
    assert_eq!(
        (
            m["actor"].as_str(),
            m["role"].as_str(),
            m["outcome"].as_str()
        ),
        (Some("mallory"), Some("player"), Some("forbidden"))
    );
    assert_eq!(one("req-zero")["outcome"], "invalid_count");
    assert_eq!(one("req-nobag")["outcome"], "loot_table_not_found");
    // Oldest first, and each row's time is when it happened.
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e["request_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [
            "req-table",
            "req-spawn",
            "req-reveal",
            "req-mallory",
            "req-zero",
            "req-nobag"
        ]
    );
    // The zone's own log: everything that named it.
    assert_eq!(audit_log(&app, Some(&zone), 100).await.len(), 5);
    // Only admins read it; bad cursors are 400.
    let r = app
        .call(Method::GET, "/v1/audit", Some(&player), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::GET,
            "/v1/audit?after=nonsense",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
}

#[tokio::test]
async fn a_change_and_its_audit_row_commit_together_and_the_log_cannot_be_rewritten() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "audit-fault");
    // A fault in the audit insert itself (only for `ok` rows of this zone): the spawn's
    // transaction holds both, so its chests must vanish with the row.
    let mut db = app.shard_db(0).await;
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION fail_ok_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.outcome = 'ok' AND NEW.zone = '{zone}' THEN RAISE EXCEPTION 'injected'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER fail_ok_row BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fail_ok_row();"
    ))
    .execute(&mut db)
    .await
    .expect("fault");
    let admin = app.admin();
    let r = as_request(
        &app,
        "req-faulty",
        &admin,
        Method::POST,
        &format!("/v1/zones/{zone}/chests"),
        Some(json!({"count": 9, "loot_table": "starter"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", r.body);
    let chests: i64 = sqlx::query_scalar("SELECT count(*) FROM chests")
        .fetch_one(&mut db)
        .await
        .expect("count");
    assert_eq!(chests, 0, "the spawn committed without its audit row");
    let entries = audit_log(&app, None, 100).await;
    let rows = by_request(&entries, "req-faulty");
    assert_eq!(rows.len(), 1, "{entries:#?}");
    assert_eq!(rows[0]["outcome"], "internal_error");
    sqlx::raw_sql("DROP TRIGGER fail_ok_row ON audit_log")
        .execute(&mut db)
        .await
        .expect("drop");

    // Nothing rewrites or removes a row, not even the database owner by accident.
    for sql in [
        "UPDATE audit_log SET actor = 'nobody'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let e = sqlx::raw_sql(sql).execute(&mut db).await.expect_err(sql);
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
}

#[tokio::test]
async fn a_zones_audit_log_outlives_its_move() {
    let app = spawn_app().await;
    app.starter().await;
    let zone = zone_on(0, "audit-move");
    app.spawn_zone(&zone, 5, "starter").await;
    app.engine
        .move_zone(&zone, 1, &MoveOptions::default())
        .await
        .expect("move");
    app.spawn_zone(&zone, 3, "starter").await;
    app.reveal(&zone).await;
    let log = audit_log(&app, Some(&zone), 1).await;
    let actions: Vec<&str> = log
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["spawn", "spawn", "reveal"], "{log:#?}");
    assert!(log.iter().all(|e| e["outcome"] == "ok"));
    // The command line prints the same log, a line per entry.
    let shards = app.shard_urls.join(",");
    let (ok, out) = run_trove(&["audit", "--zone", &zone], &[("TROVE_SHARDS", &shards)]).await;
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(&zone)).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[2].contains("admin (admin) reveal") && lines[2].contains(": ok"),
        "{out}"
    );
}
