//! The ceiling: how close Trove comes to what PostgreSQL itself does on the same machine.
//!
//! On one shard, for each zone size and concurrency, fresh zones are set up through the API;
//! Trove is driven over HTTP (closed loop), then `pgbench` runs the exact claim statement from
//! `sql/claim.sql` (its parameters filled in as pgbench variables) against the same PostgreSQL
//! at the same concurrency, on zones of its own of the same size. Claims/s of both are counted
//! from the ledger rows they produced; Trove's is printed as a ratio of pgbench's. Then the
//! naive designs (`ORDER BY random()`, count + `OFFSET`, `loadtest/sql/`) run on the same zone
//! sizes to show them growing with the zone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::api::{self, Api};
use crate::claims::{self, Load};
use crate::stats;

/// The claim statement Trove runs, byte for byte.
const CLAIM_SQL: &str = include_str!("../../sql/claim.sql");
/// The designs Trove replaces: each file picks a chest, `naive_open.sql` opens it.
const NAIVE: [(&str, &str); 2] = [
    (
        "ORDER BY random()",
        concat!(
            include_str!("../sql/naive_order_by_random.sql"),
            include_str!("../sql/naive_open.sql")
        ),
    ),
    (
        "count + OFFSET",
        concat!(
            include_str!("../sql/naive_count_offset.sql"),
            include_str!("../sql/naive_open.sql")
        ),
    ),
];

pub struct Options {
    /// The PostgreSQL URL of the shard measured (shard 0 of Trove's TROVE_SHARDS).
    pub shard_url: String,
    pub sizes: Vec<i64>,
    pub concurrency: Vec<usize>,
    pub duration: Duration,
    /// Claims/s to size zones for (zones get twice what that rate would open).
    pub expected_rate: f64,
    pub naive_duration: Duration,
    pub naive_concurrency: usize,
}

/// One pgbench run.
struct Bench {
    opened: i64,
    seconds: f64,
    latency: Histogram<u64>,
    failed: u64,
}

impl Bench {
    fn per_second(&self) -> f64 {
        self.opened as f64 / self.seconds
    }
}

pub async fn run(api: &Api, o: &Options) -> Result<Value> {
    let pgbench = find_pgbench()?;
    let shards = api.shard_count().await?;
    let mut db = sqlx::PgConnection::connect(&o.shard_url)
        .await
        .with_context(|| format!("connecting to {}", o.shard_url))?;
    let run_id = chrono::Utc::now().timestamp();
    let table = format!("lt-ceil-{run_id}");
    api.put_loot_table(&table).await?;
    let work = std::env::temp_dir().join(format!("trove-ceiling-{run_id}"));
    std::fs::create_dir_all(&work)?;

    let mut rows = Vec::new();
    let mut naive_rows = Vec::new();
    for &size in &o.sizes {
        let per_zone_claims = o.expected_rate * o.duration.as_secs_f64() * 2.0;
        let zones = (per_zone_claims / size as f64).ceil().max(1.0) as usize;
        let mut pgbench_zone_ids = Vec::new();
        for &c in &o.concurrency {
            let name = |who: &str| format!("lt-ceil-{run_id}-{size}-{c}-{who}");
            let trove_zones = api::zone_names(&name("t"), zones, Some(0), shards);
            let bench_zones = api::zone_names(&name("p"), zones, Some(0), shards);
            eprintln!("zone size {size}, {c} clients: spawning 2 x {zones} zone(s) on shard 0 …");
            api::spawn_zones(api, &trove_zones, size, &table).await?;
            api::spawn_zones(api, &bench_zones, size, &table).await?;
            let table_id: i32 = sqlx::query_scalar(
                "SELECT id FROM loot_tables WHERE name = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(&table)
            .fetch_one(&mut db)
            .await
            .context("the loot table is not on the shard given: is --shard-url shard 0?")?;
            let trove_ids = zone_ids(&mut db, &trove_zones).await?;
            let bench_ids = zone_ids(&mut db, &bench_zones).await?;

            claims::warm_up(api, &trove_zones, c).await;
            let before = ledger_rows(&mut db, &trove_ids).await?;
            let load = Load {
                zones: trove_zones.clone(),
                players: 10_000,
                concurrency: c,
                duration: o.duration,
                rate: None,
                keys: false,
            };
            let trove = claims::run(api, &load, &format!("trove   {size:>7} x{c}")).await;
            let trove_opened = ledger_rows(&mut db, &trove_ids).await? - before;

            let script = claim_script(&bench_ids, table_id);
            let bench = pgbench_run(
                &pgbench,
                &work,
                &o.shard_url,
                &script,
                c,
                o.duration,
                &format!("pgbench {size:>7} x{c}"),
            )
            .await?;
            let bench = Bench {
                opened: ledger_rows(&mut db, &bench_ids).await?,
                ..bench
            };
            let trove_rate = trove_opened as f64 / trove.elapsed.as_secs_f64();
            rows.push(json!({
                "zone_size": size,
                "concurrency": c,
                "zones": zones,
                "trove": {
                    "claims_per_second": trove_rate,
                    "latency_ms": stats::percentiles_ms(&trove.latency),
                    "statuses": trove.statuses,
                    "transport_errors": trove.errors,
                    "duplicates": trove.duplicates,
                },
                "pgbench": {
                    "claims_per_second": bench.per_second(),
                    "latency_ms": stats::percentiles_ms(&bench.latency),
                    "failed": bench.failed,
                },
                "ratio": trove_rate / bench.per_second().max(1e-9),
            }));
            if pgbench_zone_ids.is_empty() {
                pgbench_zone_ids = bench_ids;
            }
        }
        // `--naive-seconds 0` skips them.
        for (design, sql) in NAIVE.iter().filter(|_| !o.naive_duration.is_zero()) {
            let script = naive_script(sql, &pgbench_zone_ids);
            let before = ledger_rows(&mut db, &pgbench_zone_ids).await?;
            let bench = pgbench_run(
                &pgbench,
                &work,
                &o.shard_url,
                &script,
                o.naive_concurrency,
                o.naive_duration,
                &format!("{design} {size:>7}"),
            )
            .await?;
            let opened = ledger_rows(&mut db, &pgbench_zone_ids).await? - before;
            naive_rows.push(json!({
                "design": design,
                "zone_size": size,
                "concurrency": o.naive_concurrency,
                "claims_per_second": opened as f64 / bench.seconds,
                "latency_ms": stats::percentiles_ms(&bench.latency),
            }));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    print(&rows, &naive_rows, o);
    Ok(
        json!({"scenario": "ceiling", "shard_url": redact(&o.shard_url), "runs": rows, "naive": naive_rows}),
    )
}

fn print(rows: &[Value], naive: &[Value], o: &Options) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "\nceiling on shard 0, {:.0} s per phase; claims/s counted from the ledger",
        o.duration.as_secs_f64()
    );
    println!(
        "zone size | clients | Trove claims/s   p50 ms   p99 ms | pgbench claims/s   p50 ms   p99 ms | Trove / pgbench"
    );
    for r in rows {
        println!(
            "{:>9} | {:>7} | {:>14.0} {:>8.2} {:>8.2} | {:>16.0} {:>8.2} {:>8.2} | {:>6.2}x",
            r["zone_size"].as_i64().unwrap_or_default(),
            r["concurrency"].as_u64().unwrap_or_default(),
            f(&r["trove"]["claims_per_second"]),
            f(&r["trove"]["latency_ms"]["p50"]),
            f(&r["trove"]["latency_ms"]["p99"]),
            f(&r["pgbench"]["claims_per_second"]),
            f(&r["pgbench"]["latency_ms"]["p50"]),
            f(&r["pgbench"]["latency_ms"]["p99"]),
            f(&r["ratio"]),
        );
    }
    println!(
        "\nnaive designs (pgbench, {} clients, {:.0} s each)",
        o.naive_concurrency,
        o.naive_duration.as_secs_f64()
    );
    println!("design            | zone size | claims/s |  p50 ms");
    for r in naive {
        println!(
            "{:<17} | {:>9} | {:>8.1} | {:>7.1}",
            r["design"].as_str().unwrap_or(""),
            r["zone_size"].as_i64().unwrap_or_default(),
            f(&r["claims_per_second"]),
            f(&r["latency_ms"]["p50"]),
        );
    }
}

async fn zone_ids(db: &mut sqlx::PgConnection, names: &[String]) -> Result<Vec<i32>> {
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM zones WHERE name = ANY($1) ORDER BY id")
        .bind(names)
        .fetch_all(db)
        .await?;
    if ids.len() != names.len() {
        bail!(
            "{} of {} zones are not on the shard given: is --shard-url shard 0?",
            names.len() - ids.len(),
            names.len()
        );
    }
    Ok(ids)
}

/// Ledger rows of some zones (a benchmark's own count, not a claim path).
async fn ledger_rows(db: &mut sqlx::PgConnection, zone_ids: &[i32]) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM claims WHERE zone_id = ANY($1)")
            .bind(zone_ids)
            .fetch_one(db)
            .await?,
    )
}

/// `sql/claim.sql` as a pgbench script: a batch of one, each array's element a pgbench
/// variable or the value Trove would send (no idempotency key, any chest, the loot literal).
fn claim_script(zone_ids: &[i32], table_id: i32) -> String {
    let ids: Vec<String> = zone_ids.iter().map(i32::to_string).collect();
    let values = [
        format!("(ARRAY[{}])[:zi]", ids.join(",")),
        "1".to_owned(),
        "'lt-pgb-' || :p".to_owned(),
        "NULL".to_owned(),
        ":start".to_owned(),
        format!(r#"'{{"{table_id}": [{{"item": "gold", "qty": 1, "rarity": "common"}}]}}'"#),
        "gen_random_uuid()".to_owned(),
        "NULL".to_owned(),
    ];
    let mut sql = CLAIM_SQL.to_owned();
    for (i, v) in values.iter().enumerate() {
        for ty in ["integer", "text", "bigint", "jsonb", "uuid"] {
            sql = sql.replace(
                &format!("${}::{ty}[]", i + 1),
                &format!("ARRAY[{v}]::{ty}[]"),
            );
        }
    }
    format!(
        "\\set zi random(1, {})\n\\set p random(1, 10000)\n\\set start random(0, 9223372036854775806)\n{};\n",
        zone_ids.len(),
        sql.trim_end().trim_end_matches(';')
    )
}

fn naive_script(template: &str, zone_ids: &[i32]) -> String {
    let ids: Vec<String> = zone_ids.iter().map(i32::to_string).collect();
    let sql = template
        .replace("{ZONE}", &format!("(ARRAY[{}])[:zi]", ids.join(",")))
        .replace("{PLAYER}", "'lt-naive-' || :p");
    format!(
        "\\set zi random(1, {})\n\\set p random(1, 10000)\n\\set r random(0, 1000000000)\n{sql}",
        zone_ids.len()
    )
}

/// Runs pgbench (prepared statements, per-transaction log) and reads its latencies.
async fn pgbench_run(
    pgbench: &Path,
    work: &Path,
    url: &str,
    script: &str,
    clients: usize,
    duration: Duration,
    label: &str,
) -> Result<Bench> {
    let dir = work.join(format!("{}", chrono::Utc::now().timestamp_micros()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("script.sql");
    std::fs::write(&file, script)?;
    eprintln!("{label}: pgbench for {:.0} s …", duration.as_secs_f64());
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(pgbench)
        .current_dir(&dir)
        .args(["-n", "-M", "prepared", "-l"])
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.clamp(1, 2).to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output()
        .await
        .with_context(|| format!("running {}", pgbench.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let failed = text
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
        .and_then(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut latency = stats::histogram();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pgbench_log"));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            // client_id transaction_no time(us) script_no time_epoch time_us
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()) {
                stats::record(&mut latency, Duration::from_micros(us));
            }
        }
    }
    Ok(Bench {
        opened: 0,
        seconds,
        latency,
        failed,
    })
}

/// pgbench from PATH or the newest PostgreSQL under /usr/lib/postgresql.
fn find_pgbench() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("pgbench"))
        .find(|p| p.is_file())
    {
        return Ok(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(Path::parent)
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .context("pgbench not found (it comes with the PostgreSQL server package: apt-get install postgresql)")
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => match scheme_user.rsplit_once(':') {
            Some((su, _pw)) if su.contains("//") && !su.ends_with('/') => {
                format!("{su}:***@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
