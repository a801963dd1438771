//! Latency histograms (HDR, microsecond resolution) and the report table.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| unreachable!("static bounds are valid"))
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).clamp(1, 60_000_000));
}

/// `p50 … max` in milliseconds.
pub fn summary(h: &Histogram<u64>) -> String {
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.2} ms | p90 {:.2} ms | p99 {:.2} ms | p99.9 {:.2} ms | max {:.2} ms ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

pub fn statuses(counts: &BTreeMap<u16, u64>) -> String {
    counts
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat` (`self` for
/// this one); Linux counts them in USER_HZ, 100 a second.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A progress line on stderr while a phase runs: a bar, elapsed time, successes, rate and
/// transport errors. Redrawn in place on a terminal, a plain line every 5 s otherwise (logs).
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(
        label: &str,
        duration: Duration,
        done: std::sync::Arc<std::sync::atomic::AtomicU64>,
        errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Progress {
        use std::io::{IsTerminal, Write};
        use std::sync::atomic::Ordering;
        let label = label.to_owned();
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = started.elapsed().as_secs_f64();
                let frac = (t / duration.as_secs_f64()).min(1.0);
                let filled = (frac * 30.0) as usize;
                let n = done.load(Ordering::Relaxed);
                let line = format!(
                    "{label} [{}{}] {t:5.1}/{:.0}s {n} ok {:.0}/s errors {}",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    duration.as_secs_f64(),
                    n as f64 / t.max(0.001),
                    errors.load(Ordering::Relaxed)
                );
                let mut err = std::io::stderr();
                if tty {
                    let _ = write!(err, "\r{line}\x1b[K");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
            }
        });
        Progress { task }
    }

    /// Stops drawing and clears the line.
    pub fn finish(self) {
        use std::io::{IsTerminal, Write};
        self.task.abort();
        if std::io::stderr().is_terminal() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// The percentiles every report shows, in milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |v: u64| (v as f64 / 10.0).round() / 100.0;
    serde_json::json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "samples": h.len(),
    })
}
