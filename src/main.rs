//! The `trove` command: parse, resolve where the shards are, hand each subcommand to the
//! library module it belongs to.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use trove::app::{self, Application};
use trove::config::Config;
use trove::local::LocalStack;
use trove::redis_client::Redis;
use trove::shards::ShardSet;
use trove::Engine;

/// Every request allocates (headers, JSON, claim rows): mimalloc's thread-local free lists
/// cost a fraction of glibc malloc's under the claim storm (README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Show each shard's reachability, migration, identity and contents; or add a shard.
    Shards {
        #[command(subcommand)]
        action: Option<trove::shards::cli::ShardCommand>,
    },
    /// Print a bearer token.
    Token(trove::auth::TokenArgs),
    /// Zone maintenance: move a zone to another shard online.
    Zones {
        #[command(subcommand)]
        action: trove::moves::ZoneCommand,
    },
    /// Re-derive every claim's loot in a zone and report mismatches (exit 1 if any).
    Verify { zone: String },
    /// Seal every unrevealed seed under TROVE_SEED_KEY (after a rotation, with the old key
    /// in TROVE_SEED_OLD_KEYS; start-up does it too).
    SealSeeds,
    /// Print the audit log of admin actions, oldest first (as GET /v1/audit).
    Audit(trove::audit::AuditArgs),
    /// Print the OpenAPI 3 description of the HTTP API (as served at /openapi.json).
    Openapi,
    /// Plan (and with --apply carry out) zone moves that even out the shards, or drain one.
    Rebalance(trove::rebalance::RebalanceArgs),
    /// Leaderboard maintenance: `rebuild` recomputes every board from the ledgers (needs
    /// TROVE_REDIS_URL).
    Leaderboards {
        action: trove::leaderboards::BoardCommand,
    },
    /// The fairness probe: synthetic chests on every shard, raced for through the public API,
    /// checked for duplicates and lost claims (README, "The fairness probe").
    Probe(trove::probe::cli::ProbeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = cli.config;
    app::init_logging(config.log_format);
    let data_dir = config
        .data_dir
        .clone()
        .unwrap_or_else(trove::local::default_data_dir);
    match cli.command.unwrap_or(Command::Serve) {
        // Neither needs a shard: answered before any local stack would start.
        Command::Openapi => println!("{}", trove::api::openapi().to_pretty_json()?),
        Command::Probe(args) => {
            let target = trove::probe::cli::Target {
                listen: config.listen,
                jwt_secret: config.jwt_secret.clone(),
                local_data_dir: config.shards.is_empty().then_some(data_dir),
            };
            trove::probe::cli::run(args, target, app::shutdown_signal()).await?;
        }
        // No shards configured: run on the private local stack (started here, stopped on exit).
        command if config.shards.is_empty() => {
            let mut stack = LocalStack::start(&data_dir, config.local_standbys)
                .await
                .with_context(|| format!("starting the local stack in {}", data_dir.display()))?;
            config.shards = stack.shard_urls.clone();
            config
                .jwt_secret
                .get_or_insert_with(|| stack.jwt_secret.clone());
            config
                .receipt_key
                .get_or_insert_with(|| stack.receipt_key.clone());
            let result = run(command, &config, Some(&stack)).await;
            stack.stop().await;
            result?;
        }
        command => {
            if config.local_standbys > 0 {
                tracing::warn!("TROVE_LOCAL_STANDBYS applies to the local stack only: ignored with TROVE_SHARDS");
            }
            run(command, &config, None).await?
        }
    }
    Ok(())
}

async fn run(command: Command, config: &Config, local: Option<&LocalStack>) -> anyhow::Result<()> {
    let shards = ShardSet::new(&config.shards())?;
    let engine = || {
        config
            .keys()
            .map(|k| Engine::new(shards.clone(), config.batching(), k))
    };
    match command {
        Command::Token(args) => println!("{}", args.issue(&config.jwt_keys()?)?),
        Command::Migrate => print!("{}", trove::shards::cli::migrate(&shards).await?),
        Command::Shards { action } => {
            let (text, ready) = trove::rebalance::shards(&engine()?, action).await?;
            print!("{text}");
            if !ready {
                bail!("not every shard is ready");
            }
        }
        Command::Zones { action } => print!("{}", trove::moves::cli(&engine()?, action).await?),
        Command::Rebalance(args) => print!("{}", trove::rebalance::cli(&engine()?, args).await?),
        Command::Verify { zone } => {
            let report = engine()?.verify(&zone).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.clean() {
                bail!(
                    "zone {zone:?}: {} claim(s) do not match their draw, {} break(s) in \
                     players' nonces, {} seed(s) do not match their commitment",
                    report.mismatch_count,
                    report.nonce_problem_count,
                    report.bad_commitments.len()
                );
            }
        }
        Command::Audit(args) => print!("{}", args.run(&engine()?).await?),
        Command::SealSeeds => println!("sealed {} seed(s)", engine()?.seal_seeds().await?),
        Command::Leaderboards { action: _ } => {
            let redis = config.redis().context("TROVE_REDIS_URL is required")?;
            let boards = app::leaderboards(config, Redis::new(&redis)?, shards.clone());
            println!("{}", boards.rebuild().await?);
        }
        Command::Serve => {
            let (keys, engine) = (config.jwt_keys()?, engine()?);
            if let Some(stack) = local {
                stack
                    .welcome(&engine, &keys, config.listen)
                    .await
                    .context("preparing the local stack")?;
            }
            let app = Application::bind(config, engine, keys)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let addr = app.local_addr()?;
            println!("Trove listening on http://{addr}");
            println!("  console: http://{addr}/console (paste the admin token to log in)");
            app.serve(app::shutdown_signal()).await?;
            tracing::info!("shut down cleanly");
        }
        Command::Openapi | Command::Probe(_) => {}
    }
    Ok(())
}
