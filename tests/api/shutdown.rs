//! SIGTERM during a claim storm, against the real `trove` binary: every acknowledged claim is
//! in the ledger, the process exits 0 within its shutdown bound, and its JSON logs carry the
//! request ids.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use tokio::sync::Mutex;
use trove::shards::shard_index;
use uuid::Uuid;

use crate::helpers::{serve, spawn_app, Served, SECRET};

const BOUND_MS: u64 = 5000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_claim_storm_loses_no_acknowledged_claim_and_exits_zero() {
    // The in-process app only prepares the world on fresh shard databases.
    let setup = spawn_app().await;
    setup.starter().await;
    let zone = "storm-zone";
    setup.spawn_zone(zone, 50_000, "starter").await;
    let token = setup.token("stormer");

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"));
    cmd.arg("serve")
        .env("TROVE_SHARDS", setup.shard_urls.join(","))
        .env("TROVE_JWT_SECRET", SECRET)
        .env("TROVE_LISTEN", "127.0.0.1:0")
        .env("TROVE_SHUTDOWN_TIMEOUT_MS", BOUND_MS.to_string())
        .env("TROVE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,trove::access=debug")
        .env_remove("TROVE_REDIS_URL");
    let Served {
        mut child,
        base,
        logs,
    } = serve(cmd).await;
    let pid = child.id().expect("pid") as i32;

    // 32 clients claim as fast as they can until the server stops answering.
    let acked = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let client = reqwest::Client::new();
    let mut storm = Vec::new();
    for _ in 0..32 {
        let (client, base, token, acked) = (
            client.clone(),
            base.clone(),
            token.clone(),
            Arc::clone(&acked),
        );
        storm.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let sent = client
                    .post(format!("{base}/v1/zones/{zone}/claims"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if !resp.status().is_success() {
                    continue;
                }
                // A 2xx whose body was cut off was not fully acknowledged; skip it.
                if let Ok(body) = resp.json::<Value>().await {
                    if let Some(id) = body["claim_id"].as_str().and_then(|s| s.parse().ok()) {
                        acked.lock().await.push(id);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_term = acked.lock().await.len();
    assert!(before_term > 0, "no claim succeeded before SIGTERM");

    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let termed = Instant::now();
    let status = tokio::time::timeout(Duration::from_millis(BOUND_MS + 3000), child.wait())
        .await
        .expect("trove did not exit within its shutdown bound")
        .expect("wait");
    let took = termed.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_millis(BOUND_MS + 1000),
        "shutdown took {took:?}"
    );
    for task in storm {
        let _ = tokio::time::timeout(Duration::from_secs(25), task).await;
    }

    // Every acknowledged claim is durable in the zone's shard.
    let acked = acked.lock().await.clone();
    let mut db = sqlx::PgConnection::connect(&setup.shard_urls[shard_index(zone, 2)])
        .await
        .expect("connect shard");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM claims WHERE claim_id = ANY($1)")
        .bind(&acked)
        .fetch_one(&mut db)
        .await
        .expect("count acked");
    assert_eq!(stored, acked.len() as i64, "acknowledged claims missing");
    assert!(setup.ledger_count(zone).await >= acked.len() as i64);

    // JSON logs: every line is an object; served requests carry their request id.
    let logs = logs.await.expect("logs");
    let mut served_with_id = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"] == "request served" {
            let id = v["span"]["id"].as_str().unwrap_or("");
            assert_eq!(id.len(), 36, "request id in {line}");
            served_with_id += 1;
        }
    }
    assert!(
        served_with_id >= acked.len(),
        "{served_with_id} access lines for {} claims",
        acked.len()
    );
    assert!(logs.contains("shut down cleanly"), "{logs}");
}
