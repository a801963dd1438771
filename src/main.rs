//! The `trove` command. Thin: parse, resolve where the shards are, call the library.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use trove::api::Application;
use trove::auth::{parse_ttl, JwtKeys, Role};
use trove::config::{Config, LogFormat};
use trove::local::{seed_demo, LocalStack};
use trove::shards::ShardSet;
use trove::Engine;

#[derive(Parser)]
#[command(
    name = "trove",
    version,
    about = "Transactional loot engine on sharded PostgreSQL"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default). Without TROVE_SHARDS: a private local stack.
    Serve,
    /// Apply migrations/ to every shard and print each shard's version.
    Migrate,
    /// Show each shard's reachability, migration version and zone count.
    Shards,
    /// Print a bearer token.
    Token {
        #[arg(long)]
        player: String,
        /// Give the token the admin role.
        #[arg(long)]
        admin: bool,
        /// Lifetime: 30s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Re-derive every claim's loot in a zone and report mismatches (exit 1 if any).
    Verify { zone: String },
    /// Print the OpenAPI 3 description of the HTTP API (as served at /openapi.json).
    Openapi,
    /// Leaderboard maintenance (needs TROVE_REDIS_URL).
    Leaderboards {
        #[command(subcommand)]
        action: BoardAction,
    },
    /// The fairness probe: synthetic chests on every shard, raced for through the public API,
    /// checked for duplicates and lost claims (README, "The fairness probe").
    Probe(ProbeArgs),
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// Trove's base URL [default: http:// and TROVE_LISTEN].
    #[arg(long, env = "TROVE_PROBE_URL")]
    url: Option<String>,
    /// An admin token [default: made from TROVE_JWT_SECRET, or the local stack's secret].
    #[arg(long, env = "TROVE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Run one round, print it, exit 1 on any violation.
    #[arg(long)]
    once: bool,
    /// Synthetic chests per shard per round (S).
    #[arg(long, default_value_t = 20)]
    chests: usize,
    /// Synthetic players claiming per shard per round (C, more than S).
    #[arg(long, default_value_t = 60)]
    claimers: usize,
    /// Players that send their claim twice at once with one idempotency key.
    #[arg(long, default_value_t = 10)]
    racing: usize,
    /// Players that drop their first response and retry with the same key.
    #[arg(long, default_value_t = 10)]
    dropped: usize,
    /// Do not watch the probe zones over WebSocket.
    #[arg(long)]
    no_websocket: bool,
    /// Pause between rounds.
    #[arg(long, default_value = "30s")]
    interval: String,
    /// Reporting window.
    #[arg(long, default_value = "15m")]
    window: String,
    /// Delete synthetic zones older than this.
    #[arg(long, default_value = "1h")]
    retention: String,
    /// Where the probe serves its own /metrics.
    #[arg(
        long,
        env = "TROVE_PROBE_METRICS_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    metrics_listen: std::net::SocketAddr,
}

#[derive(Subcommand)]
enum BoardAction {
    /// Recompute every board from the ledgers of all shards and swap them in atomically.
    Rebuild,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.config.log_format);
    let mut config = cli.config;
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        // Needs no shard: answered before any local stack would start.
        println!("{}", trove::api::openapi().to_pretty_json()?);
        return Ok(());
    }
    if let Command::Probe(args) = command {
        // An outside client of a running Trove: it never starts a stack of its own.
        return probe(args, &config).await;
    }

    // No shards configured: run on the private local stack (started here, stopped on exit).
    let local = if config.shards.is_empty() {
        let dir = config
            .data_dir
            .clone()
            .unwrap_or_else(trove::local::default_data_dir);
        let stack = LocalStack::start(&dir)
            .await
            .with_context(|| format!("starting the local stack in {}", dir.display()))?;
        config.shards = stack.shard_urls.clone();
        config
            .jwt_secret
            .get_or_insert_with(|| stack.jwt_secret.clone());
        Some(stack)
    } else {
        None
    };
    let result = run(command, &config, local.as_ref()).await;
    if let Some(stack) = &local {
        stack.stop();
    }
    result
}

async fn run(command: Command, config: &Config, local: Option<&LocalStack>) -> anyhow::Result<()> {
    let keys = || -> anyhow::Result<JwtKeys> {
        let secret = config
            .jwt_secret
            .as_deref()
            .context("TROVE_JWT_SECRET is required when TROVE_SHARDS is set")?;
        Ok(JwtKeys::new(secret.as_bytes())?)
    };
    match command {
        Command::Token { player, admin, ttl } => {
            let role = if admin { Role::Admin } else { Role::Player };
            println!("{}", keys()?.issue(&player, role, parse_ttl(&ttl)?)?);
            Ok(())
        }
        Command::Migrate => {
            let shards = ShardSet::new(config)?;
            for s in shards.migrate().await? {
                println!(
                    "shard {} {}: migrated to version {}",
                    s.shard,
                    s.url,
                    s.migration_version.unwrap_or(0)
                );
            }
            Ok(())
        }
        Command::Shards => {
            let shards = ShardSet::new(config)?;
            let mut down = 0;
            for s in shards.status().await {
                match (s.reachable, s.migration_version, s.zones) {
                    (true, Some(v), Some(z)) => {
                        println!("shard {} {}: up, migration {v}, {z} zones", s.shard, s.url)
                    }
                    (reachable, _, _) => {
                        down += 1;
                        let state = if reachable {
                            "up, not migrated"
                        } else {
                            "DOWN"
                        };
                        println!(
                            "shard {} {}: {state} ({})",
                            s.shard,
                            s.url,
                            s.error.unwrap_or_default()
                        );
                    }
                }
            }
            if down > 0 {
                bail!("{down} shard(s) not ready");
            }
            Ok(())
        }
        Command::Verify { zone } => {
            let engine = Engine::new(ShardSet::new(config)?);
            let report = engine.verify(&zone).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.mismatches.is_empty() {
                bail!(
                    "{} claim(s) in zone {zone:?} do not match their draw",
                    report.mismatches.len()
                );
            }
            Ok(())
        }
        Command::Leaderboards {
            action: BoardAction::Rebuild,
        } => {
            let redis = trove::redis_client::Redis::from_config(config)?
                .context("TROVE_REDIS_URL is required for leaderboards")?;
            let boards = trove::leaderboards::Leaderboards::new(
                redis,
                ShardSet::new(config)?,
                config.rarity_scores.clone(),
                std::time::Duration::from_millis(config.leaderboard_poll_ms),
            );
            let report = boards.rebuild().await?;
            println!(
                "rebuilt leaderboards from {} shard(s): {} (zone, player) rows over {} zones",
                report.shards, report.rows, report.zones
            );
            Ok(())
        }
        Command::Serve => serve(config, keys()?, local).await,
        Command::Openapi | Command::Probe(_) => Ok(()),
    }
}

async fn serve(config: &Config, keys: JwtKeys, local: Option<&LocalStack>) -> anyhow::Result<()> {
    trove::api::raise_fd_limit();
    let shards = ShardSet::new(config)?;
    let engine = Engine::new(shards.clone());
    if let Some(stack) = local {
        shards
            .migrate()
            .await
            .context("migrating the local shards")?;
        seed_demo(&engine).await.context("seeding the demo world")?;
        let player = keys.issue("demo-player", Role::Player, 7 * 86400)?;
        let admin = keys.issue("demo-admin", Role::Admin, 7 * 86400)?;
        println!(
            "Local stack in {} (Ctrl-C stops Trove and its PostgreSQL):",
            stack.data_dir.display()
        );
        for (i, url) in stack.shard_urls.iter().enumerate() {
            println!("  shard {i}: {url}");
        }
        println!("  demo zones: meadow, caves, dragon-lair (loot table `starter`)");
        println!("  player token: {player}");
        println!("  admin token:  {admin}");
    }
    let app = Application::bind(config, engine, keys)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("Trove listening on http://{}", app.local_addr()?);
    app.serve(shutdown_signal()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn probe(args: ProbeArgs, config: &Config) -> anyhow::Result<()> {
    let seconds = |s: &str, what: &str| -> anyhow::Result<std::time::Duration> {
        let n = parse_ttl(s).with_context(|| format!("--{what}"))?;
        Ok(std::time::Duration::from_secs(n.unsigned_abs()))
    };
    let opts = trove::probe::ProbeOptions {
        chests: args.chests,
        claimers: args.claimers,
        racing: args.racing,
        dropped: args.dropped,
        websocket: !args.no_websocket,
        interval: seconds(&args.interval, "interval")?,
        window: seconds(&args.window, "window")?,
        retention: seconds(&args.retention, "retention")?,
    };
    let url = args.url.unwrap_or_else(|| {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let token = match args.admin_token {
        Some(t) => t,
        None => {
            // Same secret the server uses: configured, or the local stack's (read, never made).
            let secret = match &config.jwt_secret {
                Some(s) => s.clone(),
                None if config.shards.is_empty() => {
                    let dir = config
                        .data_dir
                        .clone()
                        .unwrap_or_else(trove::local::default_data_dir);
                    trove::local::read_secret(&dir).with_context(|| {
                        format!(
                            "no --admin-token, no TROVE_JWT_SECRET, and no local stack secret in {}",
                            dir.display()
                        )
                    })?
                }
                None => bail!("--admin-token or TROVE_JWT_SECRET is required"),
            };
            JwtKeys::new(secret.as_bytes())?.issue("trove-probe", Role::Admin, 86400)?
        }
    };
    let probe = trove::probe::Probe::new(&url, &token, opts)?;
    if args.once {
        let report = probe
            .round(1)
            .await
            .with_context(|| format!("the probe round against {url} could not run"))?;
        for v in &report.violations {
            println!("VIOLATION {} in zone {}: {}", v.kind, v.zone, v.detail);
        }
        println!("{}", trove::probe::summary(&report));
        if !report.is_clean() {
            bail!("the probe found {} violation(s)", report.violations.len());
        }
        return Ok(());
    }
    probe.run(args.metrics_listen, shutdown_signal()).await?;
    Ok(())
}

/// Human-readable lines, or one JSON object per line (`TROVE_LOG_FORMAT=json`) carrying the
/// request span's fields (request id, route) for log pipelines. Level from `RUST_LOG`. Logs
/// go to stderr; stdout has only what a person asked for (URLs, tokens, reports).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
