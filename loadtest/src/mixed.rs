//! Mixed traffic, as a live game makes it: claims (with idempotency keys) and reads (zone
//! totals, chest pages, player histories, leaderboards) from the same players, while WebSocket
//! subscribers watch the zones. Reports each operation's latency and statuses, the events
//! delivered, and the zero-dupe checks over every claim.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::api::{self, Api};
use crate::claims::{self, Ack};
use crate::fanout::Subscribers;
use crate::stats;

pub struct Options {
    pub zones: usize,
    pub zone_size: i64,
    pub concurrency: usize,
    pub players: usize,
    pub subscribers: usize,
    pub duration: Duration,
}

/// Out of every ten operations: six claims, then one of each read.
const OPS: [&str; 10] = [
    "claim",
    "claim",
    "claim",
    "claim",
    "claim",
    "claim",
    "zone",
    "chests",
    "history",
    "leaderboard",
];

#[derive(Default)]
struct Tally {
    latency: BTreeMap<&'static str, Histogram<u64>>,
    statuses: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    errors: u64,
    acks: Vec<Ack>,
}

pub async fn run(api: &Api, o: &Options) -> Result<Value> {
    let run_id = chrono::Utc::now().timestamp();
    let table = format!("lt-table-{run_id}");
    api.put_loot_table(&table).await?;
    let zones = api::zone_names(&format!("lt-mixed-{run_id}"), o.zones, None, 1);
    eprintln!(
        "setting up {} zones of {} chests …",
        zones.len(),
        o.zone_size
    );
    api::spawn_zones(api, &zones, o.zone_size, &table).await?;
    claims::warm_up(api, &zones, o.concurrency).await;
    let subs = match o.subscribers {
        0 => None,
        n => Some(Subscribers::connect(api, &zones, n).await?),
    };
    if let Some(s) = &subs {
        s.take();
    }

    let started = Instant::now();
    let deadline = started + o.duration;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let errors = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = stats::Progress::start(
        "mixed",
        o.duration,
        std::sync::Arc::clone(&done),
        std::sync::Arc::clone(&errors),
    );
    let mut workers = Vec::new();
    for w in 0..o.concurrency {
        let (api, zones) = (api.clone(), zones.clone());
        let (done, errors) = (std::sync::Arc::clone(&done), std::sync::Arc::clone(&errors));
        let (players, concurrency) = (o.players.max(1), o.concurrency);
        workers.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut i = w;
            while Instant::now() < deadline {
                let op = OPS[(i / concurrency + w) % OPS.len()];
                let z = i % zones.len();
                let p = i % players;
                let player = claims::player_name(p);
                let zone = &zones[z];
                let began = Instant::now();
                let status = match op {
                    "claim" => api
                        .claim(zone, &player, Some(&format!("lt-{i}")))
                        .await
                        .map(|r| {
                            if let (201, Some(chest)) = (r.status, r.chest_id) {
                                t.acks.push(Ack {
                                    zone: z as u32,
                                    chest,
                                    player: p as u32,
                                });
                            }
                            r.status
                        }),
                    "zone" => api.get_status(&format!("/v1/zones/{zone}")).await,
                    "chests" => {
                        api.get_status(&format!("/v1/zones/{zone}/chests?state=opened&limit=50"))
                            .await
                    }
                    "history" => {
                        api.get_status(&format!("/v1/players/{player}/claims?limit=20"))
                            .await
                    }
                    _ => api.get_status("/v1/leaderboards/chests?limit=10").await,
                };
                i += concurrency;
                match status {
                    Ok(s) => {
                        stats::record(
                            t.latency.entry(op).or_insert_with(stats::histogram),
                            began.elapsed(),
                        );
                        *t.statuses.entry(op).or_default().entry(s).or_insert(0) += 1;
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => {
                        t.errors += 1;
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        let Ok(t) = w.await else {
            all.errors += 1;
            continue;
        };
        for (op, h) in t.latency {
            let _ = all
                .latency
                .entry(op)
                .or_insert_with(stats::histogram)
                .add(&h);
        }
        for (op, s) in t.statuses {
            for (code, n) in s {
                *all.statuses.entry(op).or_default().entry(code).or_insert(0) += n;
            }
        }
        all.errors += t.errors;
        all.acks.extend(t.acks);
    }
    let elapsed = started.elapsed();
    progress.finish();
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "\nmixed: {} workers over {} zones for {:.1} s ({} transport errors)",
        o.concurrency,
        zones.len(),
        elapsed.as_secs_f64(),
        all.errors
    );
    println!("operation    |   ops/s |  p50 ms |  p99 ms |  max ms | statuses");
    let mut ops = Vec::new();
    for (op, h) in &all.latency {
        let statuses = all.statuses.get(op).cloned().unwrap_or_default();
        println!(
            "{op:<12} | {:>7.0} | {:>7.2} | {:>7.2} | {:>7.2} | {}",
            h.len() as f64 / elapsed.as_secs_f64(),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            stats::statuses(&statuses)
        );
        ops.push(json!({
            "operation": op,
            "per_second": h.len() as f64 / elapsed.as_secs_f64(),
            "latency_ms": stats::percentiles_ms(h),
            "statuses": statuses,
        }));
    }
    let mut report =
        json!({"scenario": "mixed", "operations": ops, "transport_errors": all.errors});
    if let Some(s) = subs {
        let mut opened_per_zone = vec![0u64; zones.len()];
        for a in &all.acks {
            opened_per_zone[a.zone as usize] += 1;
        }
        let expected: u64 = opened_per_zone
            .iter()
            .enumerate()
            .map(|(z, n)| n * (0..o.subscribers).filter(|i| i % zones.len() == z).count() as u64)
            .sum();
        let (got, latency) = s.take();
        s.close();
        println!(
            "events: expected {expected}, received {got}; commit -> receive {}",
            stats::summary(&latency)
        );
        report["events"] = json!({"expected": expected, "received": got,
            "latency_ms": stats::percentiles_ms(&latency)});
    }
    let mut seen = std::collections::HashSet::new();
    let duplicates = all
        .acks
        .iter()
        .filter(|a| !seen.insert((a.zone, a.chest)))
        .count();
    let verdict = claims::verify(api, &zones, &all.acks).await?;
    println!(
        "checks: duplicate chests {duplicates}, acknowledged claims missing from the ledger {}, ledger rows nobody was told of {}",
        verdict.lost, verdict.unannounced
    );
    report["checks"] = json!({"duplicates": duplicates, "lost_acknowledged": verdict.lost,
        "unannounced_ledger_rows": verdict.unannounced});
    if duplicates > 0 || verdict.lost > 0 {
        bail!("the zero-dupe promise was broken");
    }
    Ok(report)
}
