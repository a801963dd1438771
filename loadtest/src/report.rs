//! The end of a claims run: a table on stdout, a JSON report, and a self-contained SVG chart
//! of latency and throughput over time.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::claims::{ClaimRun, Verdict};
use crate::stats;

/// Prints the table and returns the JSON report.
pub fn table(title: &str, run: &ClaimRun, verdict: Option<&Verdict>) -> Value {
    let ms = |q: f64| run.latency.value_at_quantile(q) as f64 / 1000.0;
    println!("\n{title}");
    println!(
        "  throughput  | {:.0} claims/s ({} opened in {:.1} s)",
        run.per_second(),
        run.opened(),
        run.elapsed.as_secs_f64()
    );
    println!(
        "  latency ms  | p50 {:.2} | p90 {:.2} | p99 {:.2} | p99.9 {:.2} | max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        run.latency.max() as f64 / 1000.0
    );
    println!(
        "  statuses    | {}; transport errors {}",
        stats::statuses(&run.statuses),
        run.errors
    );
    let mut checks = json!({"duplicates": run.duplicates});
    match verdict {
        Some(v) => {
            let pass = run.duplicates == 0 && v.lost == 0;
            println!(
                "  checks      | duplicate chests {}, acknowledged claims missing from the ledger {}, ledger rows nobody was told of {} => {}",
                run.duplicates,
                v.lost,
                v.unannounced,
                if pass { "PASS" } else { "FAIL" }
            );
            checks["lost_acknowledged"] = json!(v.lost);
            checks["unannounced_ledger_rows"] = json!(v.unannounced);
            checks["pass"] = json!(pass);
        }
        None => {
            println!(
                "  checks      | duplicate chests {} (ledger not read back)",
                run.duplicates
            );
            checks["pass"] = json!(run.duplicates == 0);
        }
    }
    let timeline: Vec<Value> = run
        .timeline
        .iter()
        .enumerate()
        .map(|(t, s)| {
            json!({
                "second": t,
                "opened": s.opened,
                "p50_ms": s.latency.value_at_quantile(0.5) as f64 / 1000.0,
                "p99_ms": s.latency.value_at_quantile(0.99) as f64 / 1000.0,
            })
        })
        .collect();
    json!({
        "title": title,
        "claims_per_second": run.per_second(),
        "opened": run.opened(),
        "elapsed_seconds": run.elapsed.as_secs_f64(),
        "latency_ms": stats::percentiles_ms(&run.latency),
        "statuses": run.statuses,
        "transport_errors": run.errors,
        "checks": checks,
        "timeline": timeline,
    })
}

pub fn write_json(path: &Path, report: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("report written to {}", path.display());
    Ok(())
}

/// p50 and p99 latency per second (lines, left axis) over claims opened per second (bars,
/// right axis), as one SVG with no outside references.
pub fn write_svg(path: &Path, title: &str, run: &ClaimRun) -> Result<()> {
    let (w, h, left, right, top, bottom) = (900.0, 370.0, 60.0, 70.0, 50.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let secs = run.timeline.len().max(1);
    let p = |q: f64| -> Vec<f64> {
        run.timeline
            .iter()
            .map(|s| s.latency.value_at_quantile(q) as f64 / 1000.0)
            .collect()
    };
    let (p50, p99) = (p(0.5), p(0.99));
    let max_ms = nice(p99.iter().copied().fold(1.0, f64::max));
    let max_rate = nice(
        run.timeline
            .iter()
            .map(|s| s.opened as f64)
            .fold(1.0, f64::max),
    );
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / secs as f64;
    let y_ms = |v: f64| top + plot_h * (1.0 - v / max_ms);
    let y_rate = |v: f64| top + plot_h * (1.0 - v / max_rate);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{left}" y="18" font-size="14">{}</text>
"#,
        escape(title)
    );
    let bar = plot_w / secs as f64 * 0.8;
    for (i, s) in run.timeline.iter().enumerate() {
        let y = y_rate(s.opened as f64);
        svg += &format!(
            r##"<rect x="{:.1}" y="{y:.1}" width="{bar:.1}" height="{:.1}" fill="#dde6f3"/>
"##,
            x(i) - bar / 2.0,
            top + plot_h - y
        );
    }
    for (values, colour, name) in [(&p50, "#1f77b4", "p50"), (&p99, "#d62728", "p99")] {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y_ms(*v)))
            .collect();
        svg += &format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>
"#,
            points.join(" ")
        );
        let legend_x = if name == "p50" { left } else { left + 160.0 };
        svg += &format!(
            r#"<text x="{legend_x:.0}" y="38" fill="{colour}">{name} latency (ms, left axis)</text>
"#
        );
    }
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let y = top + plot_h * (1.0 - f);
        svg += &format!(
            r##"<line x1="{left}" x2="{:.0}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/>
<text x="{:.0}" y="{:.1}" text-anchor="end">{:.1}</text>
<text x="{:.0}" y="{:.1}">{:.0}/s</text>
"##,
            w - right,
            left - 6.0,
            y + 4.0,
            max_ms * f,
            w - right + 6.0,
            y + 4.0,
            max_rate * f
        );
    }
    svg += &format!(
        r##"<line x1="{left}" x2="{:.0}" y1="{:.1}" y2="{:.1}" stroke="#333"/>
<text x="{:.0}" y="{:.0}" text-anchor="middle">seconds (bars: claims opened per second)</text>
</svg>
"##,
        w - right,
        top + plot_h,
        top + plot_h,
        left + plot_w / 2.0,
        h - 10.0
    );
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    println!("chart written to {}", path.display());
    Ok(())
}

/// A round axis maximum at or above `v`.
fn nice(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
