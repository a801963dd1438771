//! The fan-out benchmark: claims/s without subscribers, then M WebSocket subscribers spread
//! over the zones, their idle memory on the server, claims/s with them receiving, and the
//! commit → receive latency of every event (from the event's `opened_at`, the claim's
//! transaction start, to its arrival: an upper bound on commit → receive).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::claims::{self, ClaimRun, Load};
use crate::stats;

pub struct Options {
    /// Open-loop claim rate for the latency phase.
    pub latency_rate: f64,
    pub subscribers: usize,
    pub zones: usize,
    pub concurrency: usize,
    pub players: usize,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

/// M WebSocket clients, subscriber `i` watching zone `i % zones`, counting the
/// `chest_opened` events they receive and their latency.
pub struct Subscribers {
    pub connected: usize,
    latency: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Subscribers {
    pub async fn connect(api: &Api, zones: &[String], count: usize) -> Result<Subscribers> {
        let latency = Arc::new(Mutex::new(stats::histogram()));
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let connecting = Arc::new(Semaphore::new(256));
        let mut tasks = Vec::new();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<()>>(count.max(1));
        for i in 0..count {
            let zone = zones[i % zones.len()].clone();
            let (url, latency, received, stop) = (
                api.ws_url(),
                Arc::clone(&latency),
                Arc::clone(&received),
                Arc::clone(&stop),
            );
            let (connecting, ready) = (Arc::clone(&connecting), ready_tx.clone());
            tasks.push(tokio::spawn(async move {
                let permit = connecting.acquire().await;
                // Small buffers: ten thousand clients live in this one process.
                let mut config =
                    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
                config.read_buffer_size = 4096;
                config.write_buffer_size = 0;
                let ws =
                    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await;
                let mut ws = match ws {
                    Ok((ws, _)) => ws,
                    Err(e) => {
                        let _ = ready.send(Err(e.into())).await;
                        return;
                    }
                };
                let sub = json!({"op": "subscribe", "zones": [zone]}).to_string();
                if ws.send(Message::text(sub)).await.is_err() {
                    return;
                }
                drop(permit);
                let mut ready = Some(ready);
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let text = text.as_str();
                    // Field lookups, not a full parse: the tool shares the CPU with what it
                    // measures.
                    if text.contains(r#""type":"chest_opened""#) {
                        let now = chrono::Utc::now();
                        let at = field(text, "opened_at")
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
                        if let Some(at) = at {
                            let d = (now - at.with_timezone(&chrono::Utc))
                                .to_std()
                                .unwrap_or_default();
                            if let Ok(mut h) = latency.lock() {
                                stats::record(&mut h, d);
                            }
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                    } else if text.contains(r#""type":"subscribed""#) {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(())).await;
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }));
        }
        drop(ready_tx);
        let mut connected = 0;
        while connected < count {
            match ready_rx.recv().await {
                Some(Ok(())) => connected += 1,
                Some(Err(e)) => bail!("subscriber {connected} failed to connect: {e}"),
                None => bail!("only {connected} subscribers connected"),
            }
        }
        Ok(Subscribers {
            connected,
            latency,
            received,
            stop,
            tasks,
        })
    }

    /// Events received since the last call, and their latency.
    pub fn take(&self) -> (u64, hdrhistogram::Histogram<u64>) {
        let n = self.received.swap(0, Ordering::Relaxed);
        let mut guard = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let out = guard.clone();
        guard.reset();
        (n, out)
    }

    pub fn close(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
        }
    }
}

pub async fn run(api: &Api, o: &Options) -> Result<()> {
    let run_id = chrono::Utc::now().timestamp();
    let table = format!("lt-table-{run_id}");
    api.put_loot_table(&table).await?;
    // Enough chests for three phases at a generous 8,000 claims/s, spread over the zones.
    let per_zone = ((8000.0 * o.duration.as_secs_f64() * 3.0) / o.zones as f64).ceil() as i64 + 10;
    let zones: Vec<String> = (0..o.zones)
        .map(|i| format!("lt-fan-{run_id}-{i}"))
        .collect();
    eprintln!("setting up {} zones of {per_zone} chests …", zones.len());
    crate::api::spawn_zones(api, &zones, per_zone, &table).await?;

    claims::warm_up(api, &zones, o.concurrency).await;
    let load = Load {
        zones: zones.clone(),
        players: o.players,
        concurrency: o.concurrency,
        duration: o.duration,
        rate: None,
        keys: false,
    };
    let server = o.server_pid.map(|p| p.to_string());
    let cpu = || server.as_deref().and_then(stats::cpu_secs);
    let (s0, l0) = (cpu(), stats::cpu_secs("self"));
    let off = claims::run(api, &load, "fan-out off").await;
    let (s1, l1) = (cpu(), stats::cpu_secs("self"));
    claims::print("fan-out off", &off);

    let rss_before = o.server_pid.and_then(stats::rss_kib);
    let subs = Subscribers::connect(api, &zones, o.subscribers).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = o.server_pid.and_then(stats::rss_kib);
    println!(
        "{} subscribers connected and subscribed ({} per zone)",
        subs.connected,
        o.subscribers / zones.len().max(1)
    );
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        println!(
            "server RSS {b} KiB -> {a} KiB: {:.1} KB per idle connection",
            (a.saturating_sub(b)) as f64 * 1024.0 / 1000.0 / subs.connected as f64
        );
    }
    subs.take();

    let (s2, l2) = (cpu(), stats::cpu_secs("self"));
    let on = claims::run(api, &load, "fan-out on").await;
    let (s3, l3) = (cpu(), stats::cpu_secs("self"));
    claims::print("fan-out on", &on);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected = expected_events(&on, o.subscribers, zones.len());
    let (got, latency) = subs.take();
    println!("events: expected {expected}, received {got}");
    print_cpu(&off, &on, got, [s0, s1, s2, s3], [l0, l1, l2, l3]);
    println!(
        "commit -> receive latency, machine saturated: {}",
        stats::summary(&latency)
    );

    let paced_load = Load {
        rate: Some(o.latency_rate),
        ..load
    };
    let paced = claims::run(api, &paced_load, "paced").await;
    claims::print(&format!("paced at {}/s", o.latency_rate), &paced);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected = expected_events(&paced, o.subscribers, zones.len());
    let (got, latency) = subs.take();
    subs.close();
    println!("events: expected {expected}, received {got}");
    println!(
        "commit -> receive latency at {} claims/s: {}",
        o.latency_rate,
        stats::summary(&latency)
    );
    println!(
        "claim throughput with fan-out / without: {:.0} / {:.0} = {:.2}x (target >= 0.9x)",
        on.per_second(),
        off.per_second(),
        on.per_second() / off.per_second()
    );
    let mut acks = off.acks;
    acks.extend(on.acks);
    acks.extend(paced.acks);
    let verdict = claims::verify(api, &zones, &acks).await?;
    let dupes = off.duplicates + on.duplicates + paced.duplicates;
    println!(
        "checks: duplicate chests {dupes}, acknowledged claims missing from the ledger {}",
        verdict.lost
    );
    if dupes > 0 || verdict.lost > 0 {
        bail!("the zero-dupe promise was broken");
    }
    Ok(())
}

/// Where the fan-out's CPU goes: the server's µs per claim without and with subscribers, the
/// difference spread over the frames delivered, and the load tool's (the subscribers') share.
fn print_cpu(
    off: &ClaimRun,
    on: &ClaimRun,
    frames: u64,
    server: [Option<f64>; 4],
    load: [Option<f64>; 4],
) {
    let [Some(s0), Some(s1), Some(s2), Some(s3)] = server else {
        println!("server CPU: pass --server-pid to measure it");
        return;
    };
    let per_claim = |secs: f64, run: &ClaimRun| secs * 1e6 / run.opened().max(1) as f64;
    let (off_us, on_us) = (per_claim(s1 - s0, off), per_claim(s3 - s2, on));
    // The CPU over what the same claims cost without subscribers.
    let extra = (s3 - s2) - off_us / 1e6 * on.opened() as f64;
    println!(
        "server CPU: {off_us:.1} µs per claim without fan-out, {on_us:.1} with; {:.2} µs per \
         delivered frame ({frames} frames; the extra CPU over the claims' own)",
        extra.max(0.0) * 1e6 / frames.max(1) as f64
    );
    if let [Some(l0), Some(l1), Some(l2), Some(l3)] = load {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let share = |secs: f64, run: &ClaimRun| 100.0 * secs / run.elapsed.as_secs_f64() / cores;
        println!(
            "share of the box, without / with fan-out: load tool (clients and subscribers) \
             {:.0} % / {:.0} %, server {:.0} % / {:.0} %",
            share(l1 - l0, off),
            share(l3 - l2, on),
            share(s1 - s0, off),
            share(s3 - s2, on)
        );
    }
}

/// The string value of `"name":"…"` in a flat JSON object.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// Each zone's successful claims times the subscribers watching it.
pub fn expected_events(run: &ClaimRun, subscribers: usize, zones: usize) -> u64 {
    run.opened_per_zone
        .iter()
        .enumerate()
        .map(|(z, n)| {
            let watchers = (0..subscribers).filter(|i| i % zones == z).count() as u64;
            n * watchers
        })
        .sum()
}
