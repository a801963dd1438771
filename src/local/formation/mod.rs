//! A replicated shard under Patroni, the failover engine Trove documents: one etcd (Patroni's
//! leader lock) and a PostgreSQL node per Patroni. Patroni bootstraps the primary, clones the
//! standbys, promotes a synchronous standby when the leader lock expires, and with
//! `synchronous_mode_strict` makes commits wait for a standby rather than ever committing on
//! the primary alone. Used by the failover tests and benchmarks (and the local stack's HA mode).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection};

use super::cluster::{chown_to_postgres, free_port, PgBinaries};
use super::{LocalError, Result};

mod config;
mod etcd;

pub use etcd::Etcd;

use config::{patroni_config, PatroniConfig};

/// How fast Patroni notices a lost primary. The leader lock lives `ttl` seconds unless its
/// holder renews it (every `loop_wait`), so a primary that dies is replaced about `ttl`
/// seconds later; a primary that is stopped cleanly hands over within `loop_wait`.
#[derive(Debug, Clone, Copy)]
pub struct Detection {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
}

impl Detection {
    /// Patroni's own defaults.
    pub const DEFAULTS: Detection = Detection {
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
    };
    /// Trove's documented tuning: a lost primary's lock expires after 7 s, and about 2 s
    /// later the promoted standby has a synchronous standby of its own and commits again
    /// (Patroni wants `loop_wait + 2 * retry_timeout <= ttl`: 3 s of retries keep a busy
    /// primary from losing its lock over a slow answer).
    pub const TUNED: Detection = Detection {
        ttl: 7,
        loop_wait: 1,
        retry_timeout: 3,
    };
}

/// One node of a formation: a Patroni and the PostgreSQL it runs.
pub struct Node {
    pub name: String,
    /// Where its clients reach its PostgreSQL and REST API.
    pub host: String,
    pub port: u16,
    /// Patroni's REST API.
    pub api_port: u16,
    dir: PathBuf,
    config: PathBuf,
    netns: Option<String>,
    patroni: Option<Child>,
}

/// Where a node runs: the address its peers reach it at, the one its clients (Trove) do,
/// and the network namespace it runs in, if not this process's (tests that cut its links
/// give it one of its own, where it listens on every address).
#[derive(Debug, Clone)]
pub struct NodeHost {
    pub addr: String,
    pub client_addr: String,
    pub netns: Option<String>,
}

impl NodeHost {
    /// On the loopback, in this process's namespace.
    pub fn local() -> NodeHost {
        NodeHost {
            addr: "127.0.0.1".to_owned(),
            client_addr: "127.0.0.1".to_owned(),
            netns: None,
        }
    }
}

/// A shard's servers under Patroni (scope `scope`), sharing an etcd.
pub struct Formation {
    pub nodes: Vec<Node>,
}

impl Formation {
    /// Writes each node's Patroni configuration under `dir` and starts the Patronis (the
    /// first to take the leader lock bootstraps the primary; the others clone it). Nodes get
    /// free ports from `first_port` up; `settings` go into every node's postgresql.conf.
    pub fn start(
        dir: &Path,
        scope: &str,
        etcd: &Etcd,
        nodes: usize,
        first_port: u16,
        detection: Detection,
        settings: &[(&str, &str)],
    ) -> Result<Formation> {
        let hosts = vec![NodeHost::local(); nodes];
        Formation::start_on(dir, scope, etcd, &hosts, first_port, detection, settings)
    }

    /// The same with a node on each of `hosts`.
    pub fn start_on(
        dir: &Path,
        scope: &str,
        etcd: &Etcd,
        hosts: &[NodeHost],
        first_port: u16,
        detection: Detection,
        settings: &[(&str, &str)],
    ) -> Result<Formation> {
        let bins = PgBinaries::find()?;
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "creating", e))?;
        chown_to_postgres(dir)?;
        let mut port = first_port;
        let mut formation = Formation { nodes: Vec::new() };
        let etcd_at = format!("{}:{}", etcd.host, etcd.client_port);
        for (i, host) in hosts.iter().enumerate() {
            let pg_port = free_port(port);
            let api_port = free_port(pg_port + 1);
            port = api_port + 1;
            let name = format!("{scope}-n{i}");
            let node_dir = dir.join(&name);
            let config = dir.join(format!("{name}.yml"));
            let yaml = patroni_config(PatroniConfig {
                scope,
                name: &name,
                host: &host.addr,
                listen: if host.netns.is_some() {
                    "0.0.0.0"
                } else {
                    &host.addr
                },
                etcd: &etcd_at,
                pg_port,
                api_port,
                data_dir: &node_dir,
                bin_dir: &bins.bin_dir,
                detection,
                settings,
            });
            std::fs::write(&config, yaml).map_err(|e| io(&config, "writing", e))?;
            chown_to_postgres(&config)?;
            let mut node = Node {
                name,
                host: host.client_addr.clone(),
                port: pg_port,
                api_port,
                dir: node_dir,
                config,
                netns: host.netns.clone(),
                patroni: None,
            };
            node.start()?;
            formation.nodes.push(node);
        }
        Ok(formation)
    }

    /// Waits until one node is the primary, every other streams from it, and one of them is
    /// its synchronous standby (Patroni makes one synchronous; the others are candidates).
    pub async fn wait_ready(&self, within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(primary) = self.primary().await {
                let (streaming, sync) = self.standbys(primary).await.unwrap_or((0, 0));
                if streaming + 1 >= self.nodes.len() as i64 && sync >= 1 {
                    return Ok(primary);
                }
            }
            if Instant::now() > deadline {
                return Err(LocalError::Formation(format!(
                    "no primary with {} streaming standbys, one synchronous, within {within:?}; {}",
                    self.nodes.len() - 1,
                    self.log_tails()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The node that answers and is not in recovery, if one does.
    pub async fn primary(&self) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.in_recovery().await == Some(false) {
                return Some(i);
            }
        }
        None
    }

    /// Standbys streaming from node `primary`, and how many of them synchronously.
    async fn standbys(&self, primary: usize) -> Option<(i64, i64)> {
        let mut conn = self.nodes[primary].connect("postgres").await.ok()?;
        sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE sync_state IN ('sync', 'quorum'))
             FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .fetch_one(&mut conn)
        .await
        .ok()
    }

    /// The last lines of each node's log, to say why a formation did not form.
    fn log_tails(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(node.dir.with_extension("log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n");
            text.push_str(&format!("\n--- {} ---\n{tail}", node.name));
        }
        text
    }

    /// Changes the formation's dynamic configuration (Patroni's `PATCH /config`, through the
    /// first node that answers), e.g. `{"synchronous_mode_strict": false}`.
    pub async fn patch_config(&self, patch: &serde_json::Value) -> Result<()> {
        let client = reqwest::Client::new();
        let mut last = String::from("no node");
        for node in &self.nodes {
            let url = format!("http://{}:{}/config", node.host, node.api_port);
            match client.patch(&url).json(patch).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("{}: {}", node.name, r.status()),
                Err(e) => last = format!("{}: {e}", node.name),
            }
        }
        Err(LocalError::Formation(format!(
            "patching the configuration: {last}"
        )))
    }

    /// The formation as one shard URL (libpq's multi-host form) for database `db`.
    pub fn url(&self, db: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.host, n.port))
            .collect();
        format!("postgres://trove@{}/{db}", hosts.join(","))
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

impl Node {
    /// Starts this node's Patroni (which starts, or clones and starts, its PostgreSQL).
    pub fn start(&mut self) -> Result<()> {
        let log = log_file(&self.dir.with_extension("log"))?;
        let mut cmd = Command::new("patroni");
        cmd.arg(&self.config);
        self.patroni = Some(spawn(
            cmd,
            log,
            "patroni (Debian: `apt-get install -y patroni`)",
            self.netns.as_deref(),
        )?);
        Ok(())
    }

    /// Stops the node cleanly: Patroni stops PostgreSQL (a fast shutdown: committed claims
    /// reach the standbys first) and gives up the leader lock, so a standby takes over
    /// within `loop_wait`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.patroni.take() {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Kills the node outright, Patroni and its postmaster with SIGKILL: nothing is handed
    /// over, and the others only learn of it when the leader lock expires.
    pub fn kill(&mut self) {
        let postmaster = self.postmaster_pid();
        if let Some(mut child) = self.patroni.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = postmaster {
            // SAFETY: kill(2) has no memory effects; a stale pid at worst names nothing.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// The pid of its PostgreSQL's postmaster, while it runs.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether Patroni has made this node the synchronous standby (its `GET /sync`).
    pub async fn is_sync_standby(&self) -> bool {
        let url = format!("http://{}:{}/sync", self.host, self.api_port);
        let ask = reqwest::Client::new().get(url).send();
        match tokio::time::timeout(Duration::from_secs(1), ask).await {
            Ok(Ok(r)) => r.status().is_success(),
            _ => false,
        }
    }

    /// Whether the node's PostgreSQL is a standby (None: it does not answer).
    pub async fn in_recovery(&self) -> Option<bool> {
        let mut conn = self.connect("postgres").await.ok()?;
        let standby = sqlx::query_file_scalar!("sql/in_recovery.sql")
            .fetch_one(&mut conn)
            .await
            .ok()
            .flatten();
        let _ = conn.close().await;
        standby
    }

    /// A connection to database `db` on this node, bounded by a second.
    pub async fn connect(&self, db: &str) -> Result<sqlx::PgConnection> {
        let options = sqlx::postgres::PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username("trove")
            .database(db);
        match tokio::time::timeout(Duration::from_secs(1), options.connect()).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(LocalError::Formation(format!(
                "{} did not answer within 1s",
                self.name
            ))),
        }
    }
}

/// Runs `cmd` as the `postgres` user when we are root (PostgreSQL refuses root, and Patroni
/// runs it), its output into `log`, in network namespace `netns` (one `ip netns add` made)
/// if given.
fn spawn(mut cmd: Command, log: std::fs::File, what: &str, netns: Option<&str>) -> Result<Child> {
    let ids = super::cluster::postgres_ids()?;
    let namespace = match netns {
        Some(ns) => {
            let path = format!("/run/netns/{ns}");
            Some(std::fs::File::open(&path).map_err(|e| LocalError::Io(path, e))?)
        }
        None => None,
    };
    if let Some(ns) = &namespace {
        // Joining a namespace needs root, and Command's uid/gid would drop it before a
        // pre_exec hook runs: join first, then become `postgres` by hand.
        let fd = std::os::fd::AsRawFd::as_raw_fd(ns);
        // SAFETY: between fork and exec the hook only makes async-signal-safe system calls,
        // on a descriptor the parent keeps open until the spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                let fail = || Err(std::io::Error::last_os_error());
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return fail();
                }
                if let Some((uid, gid)) = ids {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return fail();
                    }
                }
                Ok(())
            });
        }
    } else if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    if ids.is_some() {
        cmd.env("HOME", "/tmp");
    }
    // A process group of its own: a terminal's Ctrl-C reaches Trove only, which stops the
    // formation in order (standbys first, etcd last) instead of everything at once.
    cmd.process_group(0);
    let err = log
        .try_clone()
        .map_err(|e| LocalError::Io("a log file".into(), e))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(err);
    cmd.spawn()
        .map_err(|e| LocalError::Io(format!("starting {what}"), e))
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| io(path, "creating", e))
}

fn io(path: &Path, doing: &str, e: std::io::Error) -> LocalError {
    LocalError::Io(format!("{doing} {}", path.display()), e)
}
