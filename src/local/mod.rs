//! The zero-setup local stack: private PostgreSQL clusters started from the machine's
//! installed binaries (as the `postgres` user when Trove runs as root, since PostgreSQL refuses
//! to run as root), kept in a data dir that survives restarts, plus a seeded demo world; or,
//! with `TROVE_LOCAL_STANDBYS`, every shard a Patroni formation (`ha`). Tests and benchmarks
//! use the same code for their throwaway clusters, formations and Redis servers.

mod cluster;
pub mod formation;
mod ha;
mod redis;

use crate::audit::Audit;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use cluster::{free_port, Cluster, PgBinaries, THROWAWAY_SETTINGS};
pub use ha::{HaNode, HaShard, HaStack, MAX_STANDBYS};
pub use redis::RedisServer;

use cluster::is_root;

use crate::auth::{JwtKeys, Role};
use crate::engine::Engine;
use crate::loot::{LootEntry, LootTableSpec, Rarity};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under \
         /usr/lib/postgresql/*/bin. Install them (Debian: `apt-get install -y postgresql`) \
         or point TROVE_SHARDS at running PostgreSQL servers."
    )]
    MissingBinaries,
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as (install the postgresql package, or run Trove as a normal user)")]
    NoPostgresUser,
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis-server did not start on port {0} (Debian: `apt-get install -y redis-server`)")]
    Redis(u16),
    #[error("failover formation: {0}")]
    Formation(String),
    #[error("seeding the demo world: {0}")]
    Seed(#[from] crate::error::Error),
}

type Result<T> = std::result::Result<T, LocalError>;

/// The local stack's default data dir.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/trove");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("trove");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/trove")
}

/// A running local stack: two shards (plain clusters, or formations in HA mode), the token
/// secret and the receipt key.
pub struct LocalStack {
    /// The plain clusters (none in HA mode).
    pub clusters: Vec<Cluster>,
    /// HA mode's formations.
    pub ha: Option<HaStack>,
    pub shard_urls: Vec<String>,
    pub jwt_secret: String,
    /// The Ed25519 secret key (hex) receipts are signed with.
    pub receipt_key: String,
    pub data_dir: PathBuf,
}

/// Number of shards the local stack runs.
pub const LOCAL_SHARDS: usize = 2;

impl LocalStack {
    /// Starts (initialising on first use) the local shards in `data_dir`: plain clusters, or
    /// with `standbys` ≥ 1 formations of a primary and that many standbys.
    pub async fn start(data_dir: &Path, standbys: u8) -> Result<LocalStack> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| LocalError::Io(format!("creating {}", data_dir.display()), e))?;
        let (clusters, ha) = match standbys {
            0 => (plain_clusters(data_dir).await?, None),
            n => (Vec::new(), Some(HaStack::start(data_dir, n).await?)),
        };
        let shard_urls = match &ha {
            Some(ha) => ha.shards.iter().map(|s| s.url.clone()).collect(),
            None => clusters.iter().map(|c| c.url("trove")).collect(),
        };
        let jwt_secret = secret_in(data_dir, "jwt-secret")?;
        let receipt_key = secret_in(data_dir, "receipt-key")?;
        Ok(LocalStack {
            clusters,
            ha,
            shard_urls,
            jwt_secret,
            receipt_key,
            data_dir: data_dir.to_owned(),
        })
    }

    /// Makes the stack ready to serve: migrates its shards, seeds the demo world once, and
    /// prints where everything is, with a demo player token and an admin token.
    /// `listen` is where Trove is about to listen (for the failover hint's `/readyz`).
    pub async fn welcome(
        &self,
        engine: &Engine,
        keys: &JwtKeys,
        listen: std::net::SocketAddr,
    ) -> Result<()> {
        engine.shards.migrate().await?;
        seed_demo(engine).await?;
        let player = keys.issue("demo-player", Role::Player, 7 * 86400)?;
        let admin = keys.issue("demo-admin", Role::Admin, 7 * 86400)?;
        let servers = match &self.ha {
            Some(ha) if ha.started_here() => "its Patroni nodes and etcd",
            Some(_) => "nothing else: another Trove runs these formations",
            None => "its PostgreSQL",
        };
        println!(
            "Local stack in {} (Ctrl-C stops Trove and {servers}):",
            self.data_dir.display()
        );
        match &self.ha {
            Some(ha) => print!("{}", ha.describe(&self.data_dir, listen).await),
            None => {
                for (i, url) in self.shard_urls.iter().enumerate() {
                    println!("  shard {i}: {url}");
                }
            }
        }
        let zones: Vec<&str> = DEMO_ZONES.iter().map(|(z, _)| *z).collect();
        println!("  demo zones: {} (loot table `starter`)", zones.join(", "));
        println!("  player token: {player}");
        println!("  admin token:  {admin}");
        Ok(())
    }

    /// Stops the clusters or formations this stack started (not ones another Trove process
    /// runs).
    pub async fn stop(&mut self) {
        if let Some(ha) = &mut self.ha {
            ha.stop().await;
        }
        for c in self.clusters.iter().filter(|c| c.started_here) {
            if let Err(e) = c.stop() {
                tracing::warn!(error = %e, "stopping local PostgreSQL");
            }
        }
    }
}

/// The plain mode's shards: one cluster each, in `<data_dir>/shard{i}`.
async fn plain_clusters(data_dir: &Path) -> Result<Vec<Cluster>> {
    let mut clusters = Vec::new();
    for i in 0..LOCAL_SHARDS {
        let cluster = Cluster::ensure(
            &data_dir.join(format!("shard{i}")),
            54330 + 10 * i as u16,
            &[],
        )?;
        cluster.create_database("trove", None).await?;
        clusters.push(cluster);
    }
    Ok(clusters)
}

/// The local stack's token secret, if its data dir has one (for tools that talk to a running
/// local Trove, like `trove probe`).
pub fn read_secret(data_dir: &Path) -> Option<String> {
    read_secret_file(data_dir, "jwt-secret")
}

fn read_secret_file(data_dir: &Path, name: &str) -> Option<String> {
    let s = std::fs::read_to_string(data_dir.join(name)).ok()?;
    let s = s.trim();
    (s.len() >= 16).then(|| s.to_owned())
}

/// A secret (32 random bytes, hex) kept in the data dir as `name`, created on first use.
fn secret_in(data_dir: &Path, name: &str) -> Result<String> {
    let path = data_dir.join(name);
    if let Some(s) = read_secret_file(data_dir, name) {
        return Ok(s);
    }
    let secret = hex::encode(crate::fairness::new_server_seed().map_err(LocalError::Seed)?);
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| LocalError::Io(format!("writing {}", path.display()), e))?;
    f.write_all(secret.as_bytes())
        .map_err(|e| LocalError::Io(format!("writing {}", path.display()), e))?;
    Ok(secret)
}

/// The demo world's loot table.
pub fn starter_table() -> LootTableSpec {
    let e = |item: &str, weight, min_qty, max_qty, rarity| LootEntry {
        item: item.into(),
        weight,
        min_qty,
        max_qty,
        rarity,
    };
    LootTableSpec {
        entries: vec![
            e("gold", 70, 1, 50, Rarity::Common),
            e("potion", 20, 1, 3, Rarity::Uncommon),
            e("gem", 8, 1, 2, Rarity::Rare),
            e("dragon-scale", 2, 1, 1, Rarity::Legendary),
        ],
        rolls: 2,
    }
}

/// Demo zones and their sizes; they spread over both local shards.
pub const DEMO_ZONES: &[(&str, i64)] = &[("meadow", 1000), ("caves", 500), ("dragon-lair", 50)];

/// Seeds the demo world once: the `starter` table and the demo zones (existing zones are
/// left as they are, so restarts keep their state).
pub async fn seed_demo(engine: &Engine) -> Result<()> {
    let audit = |action| Audit::system("local-stack", action);
    engine
        .put_loot_table("starter", &starter_table(), &audit("put_loot_table"))
        .await?;
    for (zone, count) in DEMO_ZONES {
        match engine.zone(zone).await {
            Ok(_) => {}
            Err(crate::error::Error::ZoneNotFound(_)) => {
                engine
                    .spawn(zone, *count, "starter", false, &audit("spawn"))
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
