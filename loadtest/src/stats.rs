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

/// Raises the open-file limit to the hard limit (thousands of sockets).
pub fn raise_fd_limit() {
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
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
