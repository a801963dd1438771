//! The local stack's HA mode (`TROVE_LOCAL_STANDBYS` ≥ 1): every shard is a Patroni formation
//! (a primary and N standbys, see [`super::formation`]) sharing one etcd, so a newcomer can kill
//! a primary and watch a standby take over. It keeps its own dirs (`etcd/`, `ha/shard{i}/`) apart
//! from the plain clusters' (`shard{i}/`), so switching modes never mixes their data.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::formation::{Detection, Etcd, Formation, Node};
use super::{LocalError, Result, LOCAL_SHARDS};

/// Most standbys per shard: each is a PostgreSQL and a Patroni, on a laptop.
pub const MAX_STANDBYS: u8 = 4;
/// etcd's client port (its peer port is the next free one); the plain clusters use 54330 up.
const ETCD_PORT: u16 = 54390;
/// Shard `i`'s nodes take ports from `54400 + 20 * i` up, two per node (PostgreSQL, Patroni's
/// REST API), so they are the same on every start unless something else holds them.
fn first_node_port(shard: usize) -> u16 {
    54400 + 20 * shard as u16
}
/// A fresh formation initialises and clones in seconds; a slow disk may take longer.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// One node, as printed and as recorded for other `trove` processes on the same data dir.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HaNode {
    pub name: String,
    pub port: u16,
    pub api_port: u16,
    /// Its PostgreSQL data dir (where `postmaster.pid` is).
    pub dir: PathBuf,
    /// Its Patroni configuration (what its Patroni's command line names).
    pub config: PathBuf,
}

/// One shard's formation: its multi-host URL and its nodes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HaShard {
    pub url: String,
    pub nodes: Vec<HaNode>,
}

/// `ha/running.json`: which Trove runs this data dir's formations, so a second `trove` (say
/// `trove shards`) uses them instead of starting (or stopping) them again. `shards` is empty
/// while the owner is still starting them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Running {
    pid: u32,
    etcd_port: u16,
    shards: Vec<HaShard>,
}

/// The processes this Trove started. Fields drop in order: the nodes before their etcd.
struct Owned {
    formations: Vec<Formation>,
    etcd: Etcd,
}

/// The local stack's shards as Patroni formations.
pub struct HaStack {
    pub shards: Vec<HaShard>,
    pub etcd_port: u16,
    pub etcd_dir: PathBuf,
    /// None: another Trove process runs them (and stops them).
    owned: Option<Owned>,
    marker: PathBuf,
}

impl HaStack {
    /// Starts (initialising on first use) every shard's formation of `1 + standbys` nodes in
    /// `data_dir`, or uses the ones another Trove already runs from it.
    pub async fn start(data_dir: &Path, standbys: u8) -> Result<HaStack> {
        if !(1..=MAX_STANDBYS).contains(&standbys) {
            return Err(LocalError::Formation(format!(
                "TROVE_LOCAL_STANDBYS must be 0 (plain clusters) to {MAX_STANDBYS}, not {standbys}"
            )));
        }
        let ha_dir = data_dir.join("ha");
        let etcd_dir = data_dir.join("etcd");
        std::fs::create_dir_all(&ha_dir).map_err(|e| io(&ha_dir, "creating", e))?;
        // Patroni runs as `postgres` when we are root: it must reach the formations' dirs.
        super::cluster::chown_to_postgres(&ha_dir)?;
        let marker = ha_dir.join("running.json");
        if let Some(running) = read_running(&marker).filter(|r| is_trove(r.pid)) {
            if running.shards.is_empty() {
                return Err(LocalError::Formation(format!(
                    "Trove (pid {}) is still starting the formations in {}; try again shortly",
                    running.pid,
                    ha_dir.display()
                )));
            }
            return Ok(HaStack {
                shards: running.shards,
                etcd_port: running.etcd_port,
                etcd_dir,
                owned: None,
                marker,
            });
        }
        stop_leftovers(data_dir);
        write_running(&marker, 0, &[])?;
        let started = start_owned(&ha_dir, &etcd_dir, standbys).await;
        let (owned, shards) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = std::fs::remove_file(&marker);
                return Err(e);
            }
        };
        let etcd_port = owned.etcd.client_port;
        write_running(&marker, etcd_port, &shards)?;
        Ok(HaStack {
            shards,
            etcd_port,
            etcd_dir,
            owned: Some(owned),
            marker,
        })
    }

    /// Whether this process started the formations (and so stops them).
    pub fn started_here(&self) -> bool {
        self.owned.is_some()
    }

    /// Each node's role now: `primary`, `standby` or `down`, per shard.
    pub async fn roles(&self) -> Vec<Vec<&'static str>> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let mut roles = Vec::new();
            for node in &shard.nodes {
                roles.push(match in_recovery(node.port).await {
                    Some(false) => "primary",
                    Some(true) => "standby",
                    None => "down",
                });
            }
            all.push(roles);
        }
        all
    }

    /// What `trove` prints at start: per shard its URL and nodes, and how to watch a failover
    /// (kill the primary's Patroni first, or it restarts its PostgreSQL as the primary again).
    pub async fn describe(&self, data_dir: &Path, listen: std::net::SocketAddr) -> String {
        let roles = self.roles().await;
        let mut text = String::new();
        let mut watch = None;
        for (i, (shard, roles)) in self.shards.iter().zip(&roles).enumerate() {
            text.push_str(&format!("  shard {i}: {}\n", shard.url));
            for (node, role) in shard.nodes.iter().zip(roles) {
                text.push_str(&format!(
                    "    {:<10} {role:<8} port {} (Patroni API {})  {}\n",
                    node.name,
                    node.port,
                    node.api_port,
                    node.dir.display()
                ));
            }
            let primary = roles.iter().position(|r| *r == "primary");
            if let (None, Some(p)) = (&watch, primary) {
                let other = &shard.nodes[(p + 1) % shard.nodes.len()];
                watch = Some((i, &shard.nodes[p], other));
            }
        }
        text.push_str(&format!(
            "  etcd: 127.0.0.1:{} ({})\n",
            self.etcd_port,
            self.etcd_dir.display()
        ));
        if let Some((i, primary, other)) = watch {
            let trove = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "trove".into());
            let standbys = self.shards[i].nodes.len() - 1;
            let (yml, dir) = (primary.config.display(), primary.dir.display());
            let lines = [
                format!(
                    "To watch a failover, kill shard {i}'s primary {} (Patroni, then PostgreSQL):",
                    primary.name
                ),
                format!("  pkill -9 -f {yml}; kill -9 $(head -1 {dir}/postmaster.pid)"),
                format!(
                    "  patronictl -c {} list   # a standby leads within ~8 s (ttl)",
                    other.config.display()
                ),
                format!(
                    "  TROVE_DATA_DIR={} TROVE_LOCAL_STANDBYS={standbys} {trove} shards",
                    data_dir.display()
                ),
                format!("  curl -s http://{listen}/readyz"),
                "A killed node stays down until Trove restarts; it then rejoins as a standby."
                    .into(),
            ];
            for line in lines {
                text.push_str(&format!("  {line}\n"));
            }
        }
        text
    }

    /// Stops the formations this process started cleanly (SIGTERM to each Patroni, which
    /// stops its PostgreSQL with a fast shutdown) rather than the -9 of Formation's Drop:
    /// standbys first, so no standby is promoted on the way down and the next start finds
    /// the same primaries; then etcd.
    pub async fn stop(&mut self) {
        let Some(mut owned) = self.owned.take() else {
            return;
        };
        let mut primaries = Vec::new();
        for f in &owned.formations {
            primaries.push(f.primary().await);
        }
        let (mut first, mut last): (Vec<&mut Node>, Vec<&mut Node>) = (Vec::new(), Vec::new());
        for (f, primary) in owned.formations.iter_mut().zip(&primaries) {
            for (i, node) in f.nodes.iter_mut().enumerate() {
                if Some(i) == *primary {
                    last.push(node);
                } else {
                    first.push(node);
                }
            }
        }
        // Node::stop waits for its Patroni to exit; the nodes of a step stop side by side.
        for step in [first, last] {
            std::thread::scope(|s| {
                for node in step {
                    s.spawn(move || node.stop());
                }
            });
        }
        owned.etcd.stop();
        drop(owned);
        let _ = std::fs::remove_file(&self.marker);
    }
}

impl Drop for HaStack {
    fn drop(&mut self) {
        // `stop` was not reached (an error or a panic on the way): Formation's and Etcd's own
        // Drop kill what still runs (-9), and the marker goes with them.
        if self.owned.is_some() {
            let _ = std::fs::remove_file(&self.marker);
        }
    }
}

/// Starts etcd and the formations, waits until each has its primary and synchronous standby,
/// and creates the `trove` database on each primary. On an error what started is killed
/// (Formation's and Etcd's Drop).
async fn start_owned(
    ha_dir: &Path,
    etcd_dir: &Path,
    standbys: u8,
) -> Result<(Owned, Vec<HaShard>)> {
    let etcd = Etcd::start(etcd_dir, ETCD_PORT)?;
    let mut owned = Owned {
        formations: Vec::new(),
        etcd,
    };
    for i in 0..LOCAL_SHARDS {
        let scope = format!("shard{i}");
        owned.formations.push(Formation::start(
            &ha_dir.join(&scope),
            &scope,
            &owned.etcd,
            1 + usize::from(standbys),
            first_node_port(i),
            Detection::TUNED,
            &[],
        )?);
    }
    let ready =
        futures_util::future::join_all(owned.formations.iter().map(|f| f.wait_ready(READY_WITHIN)))
            .await;
    let mut shards = Vec::new();
    for (i, (formation, primary)) in owned.formations.iter().zip(ready).enumerate() {
        create_database(&formation.nodes[primary?], "trove").await?;
        shards.push(HaShard {
            url: formation.url("trove"),
            nodes: formation
                .nodes
                .iter()
                .map(|n| node_info(&ha_dir.join(format!("shard{i}")), n))
                .collect(),
        });
    }
    Ok((owned, shards))
}

/// Where formation.rs keeps node `n` of the formation in `dir`: `<dir>/<name>` (data) and
/// `<dir>/<name>.yml` (Patroni's configuration).
fn node_info(dir: &Path, n: &Node) -> HaNode {
    HaNode {
        name: n.name.clone(),
        port: n.port,
        api_port: n.api_port,
        dir: dir.join(&n.name),
        config: dir.join(format!("{}.yml", n.name)),
    }
}

/// Creates database `db` on a formation's primary unless it exists (it survives restarts).
async fn create_database(primary: &Node, db: &str) -> Result<()> {
    let mut conn = primary.connect("postgres").await?;
    super::cluster::create_database_on(&mut conn, db, None).await?;
    conn.close().await?;
    Ok(())
}

/// Whether the PostgreSQL on `port` is a standby (None: it does not answer within a second).
async fn in_recovery(port: u16) -> Option<bool> {
    use sqlx::ConnectOptions;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("trove")
        .database("postgres");
    let ask = async {
        let mut conn = options.connect().await.ok()?;
        let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await
            .ok()?;
        let _ = conn.close().await;
        Some(standby)
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

fn read_running(marker: &Path) -> Option<Running> {
    serde_json::from_str(&std::fs::read_to_string(marker).ok()?).ok()
}

fn write_running(marker: &Path, etcd_port: u16, shards: &[HaShard]) -> Result<()> {
    let running = Running {
        pid: std::process::id(),
        etcd_port,
        shards: shards.to_vec(),
    };
    let text = serde_json::to_string_pretty(&running)
        .map_err(|e| LocalError::Formation(format!("recording the formations: {e}")))?;
    std::fs::write(marker, text).map_err(|e| io(marker, "writing", e))
}

/// Whether `pid` is another live `trove` process (not a pid reused by something else).
fn is_trove(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let name = Path::new(std::str::from_utf8(argv0).unwrap_or_default()).file_name();
    alive(pid as i32) && name.is_some_and(|n| n.to_string_lossy().starts_with("trove"))
}

/// Stops what a Trove that died without stopping its formations (SIGKILL, a crash) left
/// running from `data_dir`, so this start does not race it for the same data dirs and ports:
/// the Patronis (SIGTERM: each stops its PostgreSQL), then any postmaster without its Patroni
/// (SIGINT: a fast shutdown), then etcd. Found by their command lines, which name this data
/// dir's files exactly.
fn stop_leftovers(data_dir: &Path) {
    let ha = data_dir.join("ha");
    let mut configs = Vec::new();
    let mut node_dirs = Vec::new();
    for i in 0..LOCAL_SHARDS {
        for n in 0..=usize::from(MAX_STANDBYS) {
            let name = format!("shard{i}-n{n}");
            configs.push(ha.join(format!("shard{i}")).join(format!("{name}.yml")));
            node_dirs.push(ha.join(format!("shard{i}")).join(name));
        }
    }
    let etcd = [data_dir.join("etcd").join("data")];
    let steps: [(&[PathBuf], i32, &str); 3] = [
        (&configs, libc::SIGTERM, "Patroni"),
        (&node_dirs, libc::SIGINT, "PostgreSQL"),
        (&etcd, libc::SIGTERM, "etcd"),
    ];
    for (paths, signal, what) in steps {
        let pids = processes_naming(paths);
        if pids.is_empty() {
            continue;
        }
        tracing::warn!(?pids, "stopping {what} left running by an earlier Trove");
        for &pid in &pids {
            // SAFETY: kill(2) has no memory effects; the pids were just read from /proc.
            unsafe { libc::kill(pid, signal) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in pids.into_iter().filter(|&p| alive(p)) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Processes with one of `paths` as a whole argument of their command line.
fn processes_naming(paths: &[PathBuf]) -> Vec<i32> {
    let wanted: Vec<&[u8]> = paths
        .iter()
        .map(|p| p.as_os_str().as_encoded_bytes())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| wanted.contains(&arg)))
        })
        .collect()
}

/// Whether `pid` runs (a zombie, dead but not yet reaped, does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn io(path: &Path, doing: &str, e: std::io::Error) -> LocalError {
    LocalError::Io(format!("{doing} {}", path.display()), e)
}
