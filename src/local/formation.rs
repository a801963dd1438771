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
    /// Trove's documented tuning: failover in about 8 s (Patroni wants
    /// `loop_wait + 2 * retry_timeout <= ttl`).
    pub const TUNED: Detection = Detection {
        ttl: 8,
        loop_wait: 1,
        retry_timeout: 3,
    };
}

/// One etcd member, Patroni's store.
pub struct Etcd {
    pub client_port: u16,
    child: Child,
}

impl Etcd {
    /// Starts a single-member etcd with its data in `dir`, on free ports from `first_port` up.
    pub fn start(dir: &Path, first_port: u16) -> Result<Etcd> {
        let client_port = free_port(first_port);
        let peer_port = free_port(client_port + 1);
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "creating", e))?;
        chown_to_postgres(dir)?;
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = log_file(&dir.join("etcd.log"))?;
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "e0", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("e0={peer}")]);
        let child = spawn(cmd, log, "etcd (Debian: `apt-get install -y etcd-server`)")?;
        Ok(Etcd { client_port, child })
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One node of a formation: a Patroni and the PostgreSQL it runs.
pub struct Node {
    pub name: String,
    pub port: u16,
    /// Patroni's REST API.
    pub api_port: u16,
    dir: PathBuf,
    config: PathBuf,
    patroni: Option<Child>,
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
        let bins = PgBinaries::find()?;
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "creating", e))?;
        chown_to_postgres(dir)?;
        let mut port = first_port;
        let mut formation = Formation { nodes: Vec::new() };
        for i in 0..nodes {
            let pg_port = free_port(port);
            let api_port = free_port(pg_port + 1);
            port = api_port + 1;
            let name = format!("{scope}-n{i}");
            let node_dir = dir.join(&name);
            let config = dir.join(format!("{name}.yml"));
            let yaml = patroni_config(PatroniConfig {
                scope,
                name: &name,
                etcd_port: etcd.client_port,
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
                port: pg_port,
                api_port,
                dir: node_dir,
                config,
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
            let url = format!("http://127.0.0.1:{}/config", node.api_port);
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
            .map(|n| format!("127.0.0.1:{}", n.port))
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

    fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether Patroni has made this node the synchronous standby (its `GET /sync`).
    pub async fn is_sync_standby(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/sync", self.api_port);
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
            .host("127.0.0.1")
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

struct PatroniConfig<'a> {
    scope: &'a str,
    name: &'a str,
    etcd_port: u16,
    pg_port: u16,
    api_port: u16,
    data_dir: &'a Path,
    bin_dir: &'a Path,
    detection: Detection,
    settings: &'a [(&'a str, &'a str)],
}

/// A node's Patroni configuration. Every node trusts local connections (like the local
/// stack's clusters); the superuser is `trove`, as in the local stack.
fn patroni_config(c: PatroniConfig) -> String {
    let mut parameters = String::new();
    for (k, v) in c.settings {
        parameters.push_str(&format!("        {k}: \"{v}\"\n"));
    }
    format!(
        r#"scope: {scope}
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    # A standby is promoted only if it was synchronous, and commits wait for a standby
    # rather than ever going on without one: no acknowledged claim is on one server only.
    synchronous_mode: true
    synchronous_mode_strict: true
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
        max_connections: 200
        # A standby retries its primary every 0.5 s (not 5 s), so after a promotion the new
        # primary gets its synchronous standby, and with it its writes, back sooner.
        wal_retrieve_retry_interval: 500ms
{parameters}  initdb:
    - encoding: UTF8
    - locale: C
    - auth: trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {data}.pgpass
  authentication:
    superuser:
      username: trove
    replication:
      username: trove
  parameters:
    unix_socket_directories: ""
  pg_hba:
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
"#,
        scope = c.scope,
        name = c.name,
        api = c.api_port,
        etcd = c.etcd_port,
        ttl = c.detection.ttl,
        loop_wait = c.detection.loop_wait,
        retry = c.detection.retry_timeout,
        pg = c.pg_port,
        data = c.data_dir.display(),
        bin = c.bin_dir.display(),
    )
}

/// Runs `cmd` as the `postgres` user when we are root (PostgreSQL refuses root, and Patroni
/// runs it), its output into `log`.
fn spawn(mut cmd: Command, log: std::fs::File, what: &str) -> Result<Child> {
    if let Some((uid, gid)) = super::cluster::postgres_ids()? {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
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
