//! Split brain: a replicated shard's primary cut off from its standbys and from Patroni's
//! store while Trove can still reach it, with real network namespaces.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use trove::local::formation::{Detection, Etcd, Formation};
use trove::shards::MIGRATOR;

use crate::failover::{end_storm, keyed_ledger, storm};
use crate::helpers::{fresh_db_on, spawn_app_on, test_dir, zone_on};
use crate::netns::Net;

/// Three nodes, each in a namespace of its own, as shard 1, under a 32-client storm with
/// idempotency keys. The primary's link to the other nodes and to etcd is cut, its link to
/// Trove not: commits there wait for a standby that never answers, so it acknowledges
/// nothing; Patroni demotes it when it cannot renew its leader lock, and promotes the
/// synchronous standby once the lock expires. Trove follows the promotion. Every acknowledged
/// claim is in the new primary's ledger with its chest, no chest is opened twice there, and
/// nothing the old primary holds that the new one lacks was acknowledged (a commit whose wait
/// the demotion cut short stays there; its retry with the key is drawn again on the new
/// primary, from the same nonce, so usually the same chest); once healed, the old primary
/// rejoins as a standby and the ledger is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_cut_off_from_its_standbys_acknowledges_nothing_the_new_primary_lacks() {
    let _turn = crate::helpers::formation_turn().await;
    assert!(
        Net::possible(),
        "network namespaces need root (CI runs as root)"
    );
    let net = Net::create(3);
    let dir = test_dir("split-brain");
    let base = 30000 + (std::process::id() % 500) as u16 * 20;
    let etcd = Etcd::start_on(&dir.join("etcd"), &net.host_addr(), base).expect("etcd");
    // A primary shutting down waits for its walsenders to send the standbys everything;
    // cut off, they wait `wal_sender_timeout` (60 s by default) before giving up, and only
    // then does the demoted primary come back (read-only) for this test to read its ledger.
    let settings = [("fsync", "off"), ("wal_sender_timeout", "5s")];
    let formation = Formation::start_on(
        &dir,
        "split",
        &etcd,
        &net.node_hosts(),
        base + 3,
        Detection::TUNED,
        &settings,
    )
    .expect("formation");
    let old = formation
        .wait_ready(Duration::from_secs(90))
        .await
        .expect("a primary and two standbys");
    {
        let mut conn = formation.nodes[old]
            .connect("postgres")
            .await
            .expect("primary");
        sqlx::raw_sql("CREATE DATABASE storm")
            .execute(&mut conn)
            .await
            .expect("create");
        let mut db = formation.nodes[old].connect("storm").await.expect("db");
        MIGRATOR.run(&mut db).await.expect("migrate");
    }
    let app = Arc::new(spawn_app_on(vec![fresh_db_on(0).await, formation.url("storm")]).await);
    app.starter().await;
    let (failing, steady) = (zone_on(1, "split"), zone_on(0, "unsplit"));
    for z in [&failing, &steady] {
        assert_eq!(
            app.spawn_zone(z, 200_000, "starter").await.status,
            StatusCode::CREATED
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let clients = tokio::spawn(storm(
        Arc::clone(&app),
        1,
        32,
        failing.clone(),
        steady.clone(),
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut = Instant::now();
    net.isolate(old);
    // Another node promoted, while the old primary still answers Trove.
    let deadline = Instant::now() + Duration::from_secs(60);
    let promoted = loop {
        let mut found = None;
        for (i, node) in formation.nodes.iter().enumerate() {
            if i != old && node.in_recovery().await == Some(false) {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break i;
        }
        assert!(Instant::now() < deadline, "no standby was promoted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let old_role = formation.nodes[old].in_recovery().await;
    println!(
        "node {promoted} promoted {:?} after the cut; the old primary is {}",
        cut.elapsed(),
        match old_role {
            Some(true) => "a standby (demoted)",
            Some(false) => "still a primary",
            None => "not answering",
        }
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = end_storm(clients, &stop, "split").await;
    let acknowledged: HashMap<String, i64> = seen
        .acknowledged
        .into_iter()
        .filter(|(key, _)| key.starts_with(&failing))
        .collect();
    let check = |ledger: &HashMap<String, i64>| {
        for (key, chest) in &acknowledged {
            assert_eq!(ledger.get(key), Some(chest), "acknowledged {key} lost");
        }
        assert_eq!(ledger.len(), acknowledged.len(), "unacknowledged claims");
        let chests: HashSet<i64> = ledger.values().copied().collect();
        assert_eq!(chests.len(), ledger.len(), "a chest opened twice");
    };
    let ledger = keyed_ledger(&app, 1, &failing).await;
    check(&ledger);

    // The old primary, still cut off, as it is: what it holds that the new one does not was
    // committed there alone, and was never acknowledged.
    let mut answer = formation.nodes[old].connect("storm").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while answer.is_err() && Instant::now() < deadline {
        // Demoted: Patroni restarts it read-only (it cannot reach the new primary yet).
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = formation.nodes[old].connect("storm").await;
    }
    assert_eq!(
        formation.nodes[old].in_recovery().await,
        Some(true),
        "the old primary was not demoted"
    );
    let alone = match answer {
        Ok(mut db) => {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT c.idempotency_key, c.chest_id FROM claims c JOIN zones z ON z.id = c.zone_id
                 WHERE z.name = $1 AND c.idempotency_key IS NOT NULL",
            )
            .bind(&failing)
            .fetch_all(&mut db)
            .await
            .expect("the old primary's ledger");
            println!(
                "the old primary holds {} keyed claims, the new {}",
                rows.len(),
                ledger.len()
            );
            let only_there: Vec<_> = rows
                .into_iter()
                .filter(|(key, chest)| ledger.get(key) != Some(chest))
                .collect();
            for (key, chest) in &only_there {
                assert_ne!(
                    acknowledged.get(key),
                    Some(chest),
                    "acknowledged on one side"
                );
            }
            only_there.len()
        }
        Err(e) => panic!("the old primary never answered again: {e}"),
    };
    println!(
        "{} claims acknowledged on the split shard; {alone} committed on the old primary alone",
        acknowledged.len()
    );

    net.heal(old);
    formation
        .wait_ready(Duration::from_secs(90))
        .await
        .expect("the old primary back as a standby");
    assert_eq!(formation.primary().await, Some(promoted));
    check(&keyed_ledger(&app, 1, &failing).await);
    drop(formation);
    drop(etcd);
}
