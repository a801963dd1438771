//! `trove-loadtest`: drives a running Trove over HTTP and WebSocket like real clients would.

mod api;
mod claims;
mod fanout;
mod stats;

use std::time::Duration;

use anyhow::Result;
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
    /// An admin token (`trove token --player loadtest --admin`).
    #[arg(long, env = "TROVE_ADMIN_TOKEN", global = true)]
    admin_token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed-loop claim storm over fresh zones.
    Claims {
        #[arg(long, default_value_t = 10)]
        zones: usize,
        #[arg(long, default_value_t = 100_000)]
        zone_size: i64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10_000)]
        players: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
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
}

#[tokio::main]
async fn main() -> Result<()> {
    stats::raise_fd_limit();
    let cli = Cli::parse();
    let token = cli
        .admin_token
        .ok_or_else(|| anyhow::anyhow!("--admin-token (or TROVE_ADMIN_TOKEN) is required"))?;
    match cli.command {
        Command::Claims {
            zones,
            zone_size,
            concurrency,
            players,
            seconds,
        } => {
            let api = api::Api::new(&cli.url, &token, concurrency)?;
            let run_id = chrono::Utc::now().timestamp();
            let table = format!("lt-table-{run_id}");
            api.put_loot_table(&table).await?;
            let names: Vec<String> = (0..zones)
                .map(|i| format!("lt-claims-{run_id}-{i}"))
                .collect();
            for z in &names {
                api.spawn(z, zone_size, &table).await?;
            }
            let run = claims::run(
                &api,
                &names,
                players,
                concurrency,
                Duration::from_secs(seconds),
                None,
            )
            .await;
            claims::print("claims", &run);
            if run.duplicates > 0 {
                anyhow::bail!("{} duplicate chests", run.duplicates);
            }
            Ok(())
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
            fanout::run(&api, &opts).await
        }
    }
}
