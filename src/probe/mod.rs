//! The fairness probe (`trove probe`): proves, continuously and from the outside, that no
//! chest is opened twice and no acknowledged claim is lost.
//!
//! Every round, for every shard, it spawns S synthetic chests in a fresh zone that hashes to
//! that shard (marked synthetic, so it stays out of leaderboards and claim metrics), fires
//! C > S concurrent claims from distinct synthetic players — some racing a retry with the
//! same idempotency key, some dropping their first response and retrying — and then checks
//! the answers against the ledger read back through the API and the WebSocket events
//! (`checks`). It reports each round as a log line and, per window (default 15 minutes), the
//! fraction of clean rounds and the violations by kind, also as Prometheus metrics on its own
//! port. `--once` runs one round and exits non-zero on any violation (CI and deploy gates).
//! Synthetic zones older than the retention period are deleted through the API.

pub mod checks;
pub mod cli;
mod client;
mod round;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder,
};
use rand_chacha::rand_core::TryRngCore;

pub use checks::{Kind, Violation};
pub use client::Client;
pub use round::{zone_for, RoundReport};

/// Anything that keeps a round from running to its verdict (Trove unreachable, setup
/// refused). Not a violation: the round did not get to check anything.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no shard's part of the round ran to a verdict: {0}")]
    Incomplete(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("metrics listener: {0}")]
    Io(#[from] std::io::Error),
}

impl ProbeError {
    fn http(what: &str, source: reqwest::Error) -> Self {
        ProbeError::Http {
            what: what.to_owned(),
            source,
        }
    }
}

/// How the probe runs (the `trove probe` flags).
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Synthetic chests per shard per round (S).
    pub chests: usize,
    /// Synthetic players claiming per shard per round (C > S).
    pub claimers: usize,
    /// Of those, players that send their claim twice at once with the same key.
    pub racing: usize,
    /// Of those, players that drop their first response and retry with the same key.
    pub dropped: usize,
    /// Watch the zones over WebSocket and expect exactly S `chest_opened` events each.
    pub websocket: bool,
    /// Pause between rounds.
    pub interval: Duration,
    /// Reporting window.
    pub window: Duration,
    /// Synthetic zones older than this are deleted.
    pub retention: Duration,
}

impl ProbeOptions {
    /// Refuses shapes that could not prove anything (C must exceed S) or that would turn the
    /// probe into a load test.
    pub fn validate(&self) -> Result<(), ProbeError> {
        let bad = |m: &str| Err(ProbeError::Invalid(m.to_owned()));
        if !(1..=1000).contains(&self.chests) {
            return bad("--chests must be 1 to 1000");
        }
        // Up to twice the claimers in flight per shard, all shards at once: well inside
        // Trove's default concurrency cap, so the probe never becomes the load it measures.
        if self.claimers <= self.chests || self.claimers > 1000 {
            return bad("--claimers must exceed --chests (and be at most 1000)");
        }
        if self.racing + self.dropped > self.claimers {
            return bad("--racing plus --dropped must not exceed --claimers");
        }
        if self.window < Duration::from_secs(1) {
            return bad("--window must be at least 1s");
        }
        Ok(())
    }
}

/// The probe's own Prometheus series.
struct ProbeMetrics {
    registry: Registry,
    rounds: IntCounterVec,
    violations: IntCounterVec,
    round_seconds: Histogram,
    window_clean_ratio: Gauge,
    window_rounds: Gauge,
    window_violations: GaugeVec,
    last_round_clean: Gauge,
    last_round_timestamp: Gauge,
}

impl ProbeMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let rounds = IntCounterVec::new(
            Opts::new(
                "trove_probe_rounds_total",
                "Probe rounds by result: clean, violated, or error (could not run).",
            ),
            &["result"],
        )?;
        let violations = IntCounterVec::new(
            Opts::new("trove_probe_violations_total", "Violations found, by kind."),
            &["kind"],
        )?;
        let round_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "trove_probe_round_duration_seconds",
                "Time one probe round took, in seconds.",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
        )?;
        let window_clean_ratio = Gauge::with_opts(Opts::new(
            "trove_probe_window_clean_ratio",
            "Fraction of the last completed window's rounds with zero violations.",
        ))?;
        let window_rounds = Gauge::with_opts(Opts::new(
            "trove_probe_window_rounds",
            "Rounds that ran to a verdict in the last completed window.",
        ))?;
        let window_violations = GaugeVec::new(
            Opts::new(
                "trove_probe_window_violations",
                "Violations by kind in the last completed window.",
            ),
            &["kind"],
        )?;
        let last_round_clean = Gauge::with_opts(Opts::new(
            "trove_probe_last_round_clean",
            "1 if the last round found no violation, else 0.",
        ))?;
        let last_round_timestamp = Gauge::with_opts(Opts::new(
            "trove_probe_last_round_timestamp_seconds",
            "Unix time the last round finished.",
        ))?;
        registry.register(Box::new(rounds.clone()))?;
        registry.register(Box::new(violations.clone()))?;
        registry.register(Box::new(round_seconds.clone()))?;
        registry.register(Box::new(window_clean_ratio.clone()))?;
        registry.register(Box::new(window_rounds.clone()))?;
        registry.register(Box::new(window_violations.clone()))?;
        registry.register(Box::new(last_round_clean.clone()))?;
        registry.register(Box::new(last_round_timestamp.clone()))?;
        // Every series exists from the start, so "no violation yet" reads as 0, not absent.
        for result in ["clean", "violated", "error"] {
            rounds.with_label_values(&[result]);
        }
        for kind in Kind::ALL {
            violations.with_label_values(&[kind.as_str()]);
            window_violations.with_label_values(&[kind.as_str()]);
        }
        Ok(ProbeMetrics {
            registry,
            rounds,
            violations,
            round_seconds,
            window_clean_ratio,
            window_rounds,
            window_violations,
            last_round_clean,
            last_round_timestamp,
        })
    }

    fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// One reporting window's tally.
#[derive(Default)]
struct Window {
    rounds: u64,
    clean: u64,
    errors: u64,
    violations: BTreeMap<Kind, u64>,
    slowest: Duration,
}

/// A probe bound to one Trove.
pub struct Probe {
    client: Client,
    opts: ProbeOptions,
    /// Random per process: zones and players of this probe never collide with another's.
    tag: String,
}

impl Probe {
    pub fn new(url: &str, admin_token: &str, opts: ProbeOptions) -> Result<Self, ProbeError> {
        opts.validate()?;
        let mut tag = [0u8; 4];
        rand_chacha::rand_core::OsRng
            .try_fill_bytes(&mut tag)
            .map_err(|e| ProbeError::Invalid(format!("OS random source failed: {e}")))?;
        Ok(Probe {
            client: Client::new(url, admin_token, Duration::from_secs(30))?,
            opts,
            tag: hex::encode(tag),
        })
    }

    /// One round, then the retention cleanup (whose failure is logged, not fatal).
    pub async fn round(&self, round: u64) -> Result<RoundReport, ProbeError> {
        let report = round::run(&self.client, &self.opts, &self.tag, round).await?;
        match self.client.cleanup(self.opts.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "probe: deleted old synthetic zones"),
            Err(e) => tracing::warn!(error = %e, "probe: synthetic zone cleanup failed"),
        }
        Ok(report)
    }

    /// Runs rounds until `shutdown`, serving its metrics on `metrics_listen`.
    pub async fn run(
        self,
        metrics_listen: SocketAddr,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProbeError> {
        let metrics = std::sync::Arc::new(ProbeMetrics::new()?);
        let listener = tokio::net::TcpListener::bind(metrics_listen).await?;
        tracing::info!("probe metrics on http://{}/metrics", listener.local_addr()?);
        let served = std::sync::Arc::clone(&metrics);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = std::sync::Arc::clone(&served);
                async move { m.render() }
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        tokio::pin!(shutdown);
        let mut window = Window::default();
        let mut window_started = Instant::now();
        for n in 1.. {
            let outcome = tokio::select! {
                r = self.round(n) => r,
                _ = &mut shutdown => break,
            };
            self.record(&metrics, &mut window, n, outcome);
            if window_started.elapsed() >= self.opts.window {
                publish(&metrics, &window, self.opts.window);
                window = Window::default();
                window_started = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(self.opts.interval) => {}
                _ = &mut shutdown => break,
            }
        }
        server.abort();
        Ok(())
    }

    fn record(
        &self,
        m: &ProbeMetrics,
        w: &mut Window,
        n: u64,
        outcome: Result<RoundReport, ProbeError>,
    ) {
        m.last_round_timestamp
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        let report = match outcome {
            Ok(r) => r,
            Err(e) => {
                w.errors += 1;
                m.rounds.with_label_values(&["error"]).inc();
                tracing::warn!(round = n, error = %e, "probe round could not run");
                return;
            }
        };
        w.rounds += 1;
        w.slowest = w.slowest.max(report.elapsed);
        m.round_seconds.observe(report.elapsed.as_secs_f64());
        if report.is_clean() {
            w.clean += 1;
            m.rounds.with_label_values(&["clean"]).inc();
            m.last_round_clean.set(1.0);
            tracing::info!("{}", summary(&report));
        } else {
            m.rounds.with_label_values(&["violated"]).inc();
            m.last_round_clean.set(0.0);
            for v in &report.violations {
                *w.violations.entry(v.kind).or_default() += 1;
                m.violations.with_label_values(&[v.kind.as_str()]).inc();
                tracing::error!(round = n, kind = %v.kind, zone = %v.zone, "probe violation: {}", v.detail);
            }
            tracing::error!("{}", summary(&report));
        }
    }
}

/// Publishes a finished window as gauges and one log line.
fn publish(m: &ProbeMetrics, w: &Window, length: Duration) {
    let ratio = match w.rounds {
        0 => 0.0,
        n => w.clean as f64 / n as f64,
    };
    m.window_clean_ratio.set(ratio);
    m.window_rounds.set(w.rounds as f64);
    for kind in Kind::ALL {
        let n = w.violations.get(&kind).copied().unwrap_or(0);
        m.window_violations
            .with_label_values(&[kind.as_str()])
            .set(n as f64);
    }
    let kinds: Vec<String> = w
        .violations
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    tracing::info!(
        "probe window of {}s: {}/{} rounds clean ({:.1} %), {} could not run, slowest {:.2}s, violations: {}",
        length.as_secs(),
        w.clean,
        w.rounds,
        ratio * 100.0,
        w.errors,
        w.slowest.as_secs_f64(),
        if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") }
    );
}

/// One line per round.
pub fn summary(r: &RoundReport) -> String {
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for v in &r.violations {
        *by_kind.entry(v.kind).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!(
        "probe round {}: {} shard(s), {} chests, {} claim requests in {:.2}s: {} violation(s){}{}",
        r.round,
        r.shards,
        r.chests,
        r.requests,
        r.elapsed.as_secs_f64(),
        r.violations.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        if r.incomplete.is_empty() {
            String::new()
        } else {
            format!("; not checked: {}", r.incomplete.join("; "))
        }
    )
}
