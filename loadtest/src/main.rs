//! `trove-loadtest`: drives a running Trove over HTTP and WebSocket like real clients would,
//! and measures it against what PostgreSQL itself does on the same machine.

mod api;
mod ceiling;
mod claims;
mod fanout;
mod mixed;
mod report;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "trove-loadtest", about = "Load generator for Trove")]
struct Cli {
    /// Trove's base URL.
    #[arg(
        long,
        env = "TROVE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// An admin token (`trove token --player loadtest --admin`; the local stack prints one).
    #[arg(long, env = "TROVE_ADMIN_TOKEN", global = true, hide_env_values = true)]
    admin_token: Option<String>,
    /// Write the run's figures as JSON here.
    #[arg(long, global = true)]
    report: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Claim storm over fresh zones: a report table, the ledger read back, JSON and an SVG chart.
    Claims {
        #[arg(long, default_value_t = 10)]
        zones: usize,
        #[arg(long, default_value_t = 100_000)]
        zone_size: i64,
        /// Workers in a closed loop (each sends its next claim when the last one answered).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Open loop instead: claims per second on a fixed schedule (latency counts from the
        /// scheduled time); `--concurrency` then caps requests in flight.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 10_000)]
        players: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Only zones on this shard (default: spread over all).
        #[arg(long)]
        shard: Option<usize>,
        /// Send an Idempotency-Key with every claim.
        #[arg(long)]
        keys: bool,
        /// Skip reading the ledger back afterwards.
        #[arg(long)]
        no_verify: bool,
        /// Write a chart of latency and throughput over time (SVG) here.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Claims/s without and with M subscribers, their memory and event latency.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 1000)]
        zones: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10_000)]
        players: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Trove's process id, to report its memory per connection.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Claims per second (open loop) for the latency phase.
        #[arg(long, default_value_t = 1000.0)]
        latency_rate: f64,
    },
    /// Claims and reads from the same players while subscribers watch the zones.
    Mixed {
        #[arg(long, default_value_t = 20)]
        zones: usize,
        #[arg(long, default_value_t = 100_000)]
        zone_size: i64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 1000)]
        players: usize,
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Trove against pgbench running the exact claim SQL on the same shard, and the naive
    /// designs on the same zone sizes.
    Ceiling {
        /// PostgreSQL URL of shard 0 (the local stack prints it).
        #[arg(long, env = "TROVE_CEILING_SHARD_URL")]
        shard_url: String,
        /// Zone sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
        sizes: Vec<i64>,
        /// Concurrencies (clients), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,64")]
        concurrency: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Claims/s to size zones for: they get twice what that rate opens.
        #[arg(long, default_value_t = 10_000.0)]
        expected_rate: f64,
        #[arg(long, default_value_t = 5)]
        naive_seconds: u64,
        #[arg(long, default_value_t = 8)]
        naive_concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    trove::app::raise_fd_limit();
    let cli = Cli::parse();
    let token = cli
        .admin_token
        .ok_or_else(|| anyhow::anyhow!("--admin-token (or TROVE_ADMIN_TOKEN) is required"))?;
    let report = match cli.command {
        Command::Claims {
            zones,
            zone_size,
            concurrency,
            rate,
            players,
            seconds,
            shard,
            keys,
            no_verify,
            chart,
        } => {
            let api = api::Api::new(&cli.url, &token, concurrency)?;
            let run_id = chrono::Utc::now().timestamp();
            let table = format!("lt-table-{run_id}");
            api.put_loot_table(&table).await?;
            let shards = api.shard_count().await?;
            let names = api::zone_names(&format!("lt-claims-{run_id}"), zones, shard, shards);
            eprintln!("setting up {zones} zones of {zone_size} chests …");
            api::spawn_zones(&api, &names, zone_size, &table).await?;
            claims::warm_up(&api, &names, concurrency).await;
            let load = claims::Load {
                zones: names.clone(),
                players,
                concurrency,
                duration: Duration::from_secs(seconds),
                rate,
                keys,
            };
            let run = claims::run(&api, &load, "claims").await;
            let verdict = match no_verify {
                true => None,
                false => Some(claims::verify(&api, &names, &run.acks).await?),
            };
            let loop_kind = match rate {
                Some(r) => format!("open loop at {r}/s, at most {concurrency} in flight"),
                None => format!("closed loop, {concurrency} players at once"),
            };
            let title = format!(
                "claims: {loop_kind}, {zones} zones of {zone_size} chests{}, {seconds} s",
                if keys { ", idempotency keys" } else { "" }
            );
            let mut report = report::table(&title, &run, verdict.as_ref());
            report["scenario"] = "claims".into();
            if let Some(path) = chart {
                report::write_svg(&path, &title, &run)?;
            }
            let broken = run.duplicates > 0 || verdict.is_some_and(|v| v.lost > 0);
            if broken {
                finish(cli.report.as_deref(), &report)?;
                bail!("the zero-dupe promise was broken");
            }
            report
        }
        Command::Fanout {
            subscribers,
            zones,
            concurrency,
            players,
            seconds,
            server_pid,
            latency_rate,
        } => {
            let api = api::Api::new(&cli.url, &token, concurrency)?;
            let opts = fanout::Options {
                latency_rate,
                subscribers,
                zones: zones.max(1),
                concurrency,
                players,
                duration: Duration::from_secs(seconds),
                server_pid,
            };
            fanout::run(&api, &opts).await?;
            return Ok(());
        }
        Command::Mixed {
            zones,
            zone_size,
            concurrency,
            players,
            subscribers,
            seconds,
        } => {
            let api = api::Api::new(&cli.url, &token, concurrency)?;
            let opts = mixed::Options {
                zones: zones.max(1),
                zone_size,
                concurrency,
                players,
                subscribers,
                duration: Duration::from_secs(seconds),
            };
            mixed::run(&api, &opts).await?
        }
        Command::Ceiling {
            shard_url,
            sizes,
            concurrency,
            seconds,
            expected_rate,
            naive_seconds,
            naive_concurrency,
        } => {
            let max_c = concurrency.iter().copied().max().unwrap_or(1);
            let api = api::Api::new(&cli.url, &token, max_c)?;
            let opts = ceiling::Options {
                shard_url,
                sizes,
                concurrency,
                duration: Duration::from_secs(seconds),
                expected_rate,
                naive_duration: Duration::from_secs(naive_seconds),
                naive_concurrency,
            };
            ceiling::run(&api, &opts).await?
        }
    };
    finish(cli.report.as_deref(), &report)
}

fn finish(path: Option<&std::path::Path>, report: &serde_json::Value) -> Result<()> {
    match path {
        Some(p) => report::write_json(p, report),
        None => Ok(()),
    }
}
