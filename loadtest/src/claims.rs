//! Claim storms over a set of zones for a fixed time: closed loop (`concurrency` workers, each
//! sending its next claim as soon as the previous one answered) or open loop (claims sent on a
//! fixed schedule at `rate` per second; latency counts from the scheduled time, so a stall
//! shows up in the figures instead of silently lowering the load).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::api::Api;
use crate::stats::{self, Progress};

/// What to run.
#[derive(Clone)]
pub struct Load {
    pub zones: Vec<String>,
    pub players: usize,
    pub concurrency: usize,
    pub duration: Duration,
    /// Claims per second for an open loop; None for a closed loop.
    pub rate: Option<f64>,
    /// Send an Idempotency-Key with every claim (as careful clients do).
    pub keys: bool,
}

/// One acknowledged (201) claim.
#[derive(Clone, Copy)]
pub struct Ack {
    pub zone: u32,
    pub chest: i64,
    pub player: u32,
}

/// One second of the run.
#[derive(Clone)]
pub struct Second {
    pub opened: u64,
    pub latency: Histogram<u64>,
}

impl Second {
    fn timeline(seconds: usize) -> Vec<Second> {
        let empty = Second {
            opened: 0,
            latency: stats::histogram(),
        };
        vec![empty; seconds]
    }
}

pub struct ClaimRun {
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    /// Successful claims per zone index.
    pub opened_per_zone: Vec<u64>,
    /// A (zone, chest) pair answered 201 twice: must be 0.
    pub duplicates: u64,
    /// Requests that got no HTTP answer.
    pub errors: u64,
    pub acks: Vec<Ack>,
    pub timeline: Vec<Second>,
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
    errors: u64,
    acks: Vec<Ack>,
    timeline: Vec<Second>,
}

pub fn player_name(i: usize) -> String {
    format!("lt-player-{i}")
}

/// Runs `load`, with a progress line on stderr named `label`.
pub async fn run(api: &Api, load: &Load, label: &str) -> ClaimRun {
    let started = Instant::now();
    let deadline = started + load.duration;
    let opened_now = Arc::new(AtomicU64::new(0));
    let errors_now = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        label,
        load.duration,
        Arc::clone(&opened_now),
        Arc::clone(&errors_now),
    );
    let seconds = load.duration.as_secs() as usize + 2;
    let mut workers = Vec::new();
    for w in 0..load.concurrency {
        let (api, load) = (api.clone(), load.clone());
        let (opened_now, errors_now) = (Arc::clone(&opened_now), Arc::clone(&errors_now));
        workers.push(tokio::spawn(async move {
            let mut out = Worker {
                latency: stats::histogram(),
                statuses: BTreeMap::new(),
                opened: vec![0u64; load.zones.len()],
                errors: 0,
                acks: Vec::new(),
                timeline: Second::timeline(seconds),
            };
            let mut i = w;
            loop {
                let t = match load.rate {
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
                let z = i % load.zones.len();
                let p = i % load.players.max(1);
                let key = load.keys.then(|| format!("lt-{i}"));
                i += load.concurrency;
                let player = player_name(p);
                match api.claim(&load.zones[z], &player, key.as_deref()).await {
                    Ok(r) => {
                        let took = t.elapsed();
                        let second = (t - started).as_secs() as usize;
                        stats::record(&mut out.latency, took);
                        if let Some(s) = out.timeline.get_mut(second) {
                            stats::record(&mut s.latency, took);
                            s.opened += u64::from(r.status == 201);
                        }
                        *out.statuses.entry(r.status).or_insert(0) += 1;
                        if let (201, Some(chest)) = (r.status, r.chest_id) {
                            out.opened[z] += 1;
                            opened_now.fetch_add(1, Ordering::Relaxed);
                            out.acks.push(Ack {
                                zone: z as u32,
                                chest,
                                player: p as u32,
                            });
                        }
                    }
                    Err(_) => {
                        out.errors += 1;
                        errors_now.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            out
        }));
    }
    let mut run = ClaimRun {
        elapsed: Duration::ZERO,
        latency: stats::histogram(),
        statuses: BTreeMap::new(),
        opened_per_zone: vec![0; load.zones.len()],
        duplicates: 0,
        errors: 0,
        acks: Vec::new(),
        timeline: Second::timeline(seconds),
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
        for (total, s) in run.timeline.iter_mut().zip(w.timeline) {
            total.opened += s.opened;
            let _ = total.latency.add(&s.latency);
        }
        run.errors += w.errors;
        run.acks.extend(w.acks);
    }
    run.elapsed = started.elapsed();
    progress.finish();
    run.timeline
        .truncate(load.duration.as_secs().max(1) as usize);
    let mut seen = HashSet::new();
    run.duplicates = run
        .acks
        .iter()
        .filter(|a| !seen.insert((a.zone, a.chest)))
        .count() as u64;
    run
}

/// The ledger, read back through the API, against every acknowledged claim.
pub struct Verdict {
    /// Acknowledged claims the ledger does not hold for that player.
    pub lost: u64,
    /// Ledger rows of the run's players that no 201 announced (a response lost in transport;
    /// never more than the transport errors).
    pub unannounced: u64,
}

/// Reads every zone's opened chests back and checks each acknowledged claim is there.
pub async fn verify(api: &Api, zones: &[String], acks: &[Ack]) -> anyhow::Result<Verdict> {
    let mut ledger: Vec<BTreeMap<i64, String>> = Vec::with_capacity(zones.len());
    for chunk in zones.chunks(8) {
        let reads = chunk.iter().map(|z| api.opened_chests(z));
        for r in futures_util::future::join_all(reads).await {
            ledger.push(r?);
        }
    }
    let mut announced = HashSet::new();
    let mut lost = 0;
    for a in acks {
        announced.insert((a.zone, a.chest));
        let holder = ledger.get(a.zone as usize).and_then(|z| z.get(&a.chest));
        if holder.map(String::as_str) != Some(player_name(a.player as usize).as_str()) {
            lost += 1;
        }
    }
    let unannounced = ledger
        .iter()
        .enumerate()
        .flat_map(|(z, m)| m.iter().map(move |(c, p)| (z as u32, *c, p)))
        .filter(|(z, c, p)| p.starts_with("lt-player-") && !announced.contains(&(*z, *c)))
        .count() as u64;
    Ok(Verdict { lost, unannounced })
}

/// One claim in every zone, so every phase measured afterwards runs warm (Trove caches each
/// zone's draw material on first use).
pub async fn warm_up(api: &Api, zones: &[String], concurrency: usize) {
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (api, zones) = (api.clone(), zones.to_vec());
        workers.push(tokio::spawn(async move {
            for z in zones.iter().skip(w).step_by(concurrency) {
                let _ = api.claim(z, "lt-warm-up", None).await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// One summary line per run (the fan-out phases print several).
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
