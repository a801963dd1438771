//! Closed-loop claim storms: `concurrency` workers, each sending its next claim as soon as the
//! previous one answered, over a set of zones, for a fixed time.

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

pub async fn closed_loop(
    api: &Api,
    zones: &[String],
    players: usize,
    concurrency: usize,
    duration: Duration,
) -> ClaimRun {
    let seen: Arc<Mutex<HashSet<(usize, i64)>>> = Arc::new(Mutex::new(HashSet::new()));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (api, zones, seen) = (api.clone(), zones.to_vec(), Arc::clone(&seen));
        workers.push(tokio::spawn(async move {
            let mut latency = stats::histogram();
            let mut statuses = BTreeMap::new();
            let mut opened = vec![0u64; zones.len()];
            let (mut duplicates, mut errors) = (0, 0);
            let mut i = w;
            while Instant::now() < deadline {
                let z = i % zones.len();
                let player = format!("lt-player-{}", i % players.max(1));
                i += concurrency;
                let t = Instant::now();
                match api.claim(&zones[z], &player).await {
                    Ok(r) => {
                        stats::record(&mut latency, t.elapsed());
                        *statuses.entry(r.status).or_insert(0) += 1;
                        if let (201, Some(chest)) = (r.status, r.chest_id) {
                            opened[z] += 1;
                            let fresh = seen
                                .lock()
                                .map(|mut s| s.insert((z, chest)))
                                .unwrap_or(true);
                            if !fresh {
                                duplicates += 1;
                            }
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (latency, statuses, opened, duplicates, errors)
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
        let Ok((latency, statuses, opened, duplicates, errors)) = w.await else {
            run.errors += 1;
            continue;
        };
        let _ = run.latency.add(&latency);
        for (s, n) in statuses {
            *run.statuses.entry(s).or_insert(0) += n;
        }
        for (total, n) in run.opened_per_zone.iter_mut().zip(opened) {
            *total += n;
        }
        run.duplicates += duplicates;
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    run
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
