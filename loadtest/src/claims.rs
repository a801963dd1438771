//! Claim storms over a set of zones for a fixed time: closed loop (`concurrency` workers, each
//! sending its next claim as soon as the previous one answered) or open loop (claims sent on a
//! fixed schedule at `rate` per second; latency counts from the scheduled time, so a stall
//! shows up in the figures instead of silently lowering the load).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::api::Api;
use crate::stats;

pub struct ClaimRun {
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    /// Successful claims per zone index.
    pub opened_per_zone: Vec<u64>,
    /// A (zone, chest) pair answered 201 twice: must be 0.
    pub duplicates: u64,
    pub errors: u64,
}

impl ClaimRun {
    pub fn opened(&self) -> u64 {
        self.opened_per_zone.iter().sum()
    }
    pub fn per_second(&self) -> f64 {
        self.opened() as f64 / self.elapsed.as_secs_f64()
    }
}

struct Worker {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    opened: Vec<u64>,
    duplicates: u64,
    errors: u64,
}

/// `rate`: claims per second for an open loop; None for a closed loop.
pub async fn run(
    api: &Api,
    zones: &[String],
    players: usize,
    concurrency: usize,
    duration: Duration,
    rate: Option<f64>,
) -> ClaimRun {
    let seen: Arc<Mutex<HashSet<(usize, i64)>>> = Arc::new(Mutex::new(HashSet::new()));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (api, zones, seen) = (api.clone(), zones.to_vec(), Arc::clone(&seen));
        workers.push(tokio::spawn(async move {
            let mut out = Worker {
                latency: stats::histogram(),
                statuses: BTreeMap::new(),
                opened: vec![0u64; zones.len()],
                duplicates: 0,
                errors: 0,
            };
            let mut i = w;
            loop {
                let t = match rate {
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                if t >= deadline {
                    break;
                }
                let z = i % zones.len();
                let player = format!("lt-player-{}", i % players.max(1));
                i += concurrency;
                match api.claim(&zones[z], &player).await {
                    Ok(r) => {
                        stats::record(&mut out.latency, t.elapsed());
                        *out.statuses.entry(r.status).or_insert(0) += 1;
                        if let (201, Some(chest)) = (r.status, r.chest_id) {
                            out.opened[z] += 1;
                            let fresh = seen
                                .lock()
                                .map(|mut s| s.insert((z, chest)))
                                .unwrap_or(true);
                            if !fresh {
                                out.duplicates += 1;
                            }
                        }
                    }
                    Err(_) => out.errors += 1,
                }
            }
            out
        }));
    }
    let mut run = ClaimRun {
        elapsed: Duration::ZERO,
        latency: stats::histogram(),
        statuses: BTreeMap::new(),
        opened_per_zone: vec![0; zones.len()],
        duplicates: 0,
        errors: 0,
    };
    for w in workers {
        let Ok(w) = w.await else {
            run.errors += 1;
            continue;
        };
        let _ = run.latency.add(&w.latency);
        for (s, n) in w.statuses {
            *run.statuses.entry(s).or_insert(0) += n;
        }
        for (total, n) in run.opened_per_zone.iter_mut().zip(w.opened) {
            *total += n;
        }
        run.duplicates += w.duplicates;
        run.errors += w.errors;
    }
    run.elapsed = started.elapsed();
    run
}

/// One claim in every zone, so every phase measured afterwards runs warm (Trove caches each
/// zone's draw material on first use).
pub async fn warm_up(api: &Api, zones: &[String], concurrency: usize) {
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (api, zones) = (api.clone(), zones.to_vec());
        workers.push(tokio::spawn(async move {
            for z in zones.iter().skip(w).step_by(concurrency) {
                let _ = api.claim(z, "lt-warm-up").await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

pub fn print(name: &str, run: &ClaimRun) {
    println!(
        "{name}: {} claims in {:.1}s = {:.0} claims/s; latency {}",
        run.opened(),
        run.elapsed.as_secs_f64(),
        run.per_second(),
        stats::summary(&run.latency)
    );
    println!(
        "{name}: statuses {}; transport errors {}; duplicates {}",
        stats::statuses(&run.statuses),
        run.errors,
        run.duplicates
    );
}
