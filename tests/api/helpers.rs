//! Test harness: two private PostgreSQL clusters per test process (started once, stopped at
//! exit), a fresh database per test on each, and the real app served on port 0.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::sync::{oneshot, OnceCell};
use trove::app::Application;
use trove::auth::{JwtKeys, Role};
use trove::config::Config;
use trove::local::{Cluster, THROWAWAY_SETTINGS};
use trove::shards::{shard_index, MIGRATOR};
use trove::Engine;

pub const SECRET: &str = "test-secret-0123456789abcdef";
const TEMPLATE: &str = "trove_template";

struct TestPg {
    clusters: Vec<Cluster>,
}

static PG: OnceCell<TestPg> = OnceCell::const_new();
/// Every cluster this process started, stopped by the exit hook.
static STARTED: OnceLock<Mutex<Vec<Cluster>>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);
/// Held by the tests that run failover formations (several PostgreSQL servers and a storm
/// each): one at a time, so on a 2-core CI machine they do not starve each other and the
/// lighter tests running beside them.
static FORMATIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the formation tests' turn (see `FORMATIONS`).
pub async fn formation_turn() -> tokio::sync::MutexGuard<'static, ()> {
    FORMATIONS.lock().await
}

extern "C" fn stop_clusters() {
    if let Some(list) = STARTED.get() {
        if let Ok(list) = list.lock() {
            for c in list.iter() {
                let _ = c.stop();
                let _ = std::fs::remove_dir_all(&c.dir);
            }
            // TROVE_KEEP_TEST_DIR=1 keeps the logs of formations for a look after a failure.
            if std::env::var_os("TROVE_KEEP_TEST_DIR").is_none() {
                let _ = std::fs::remove_dir_all(test_root());
            }
        }
    }
}

/// A directory of this test process's own (removed at exit with the clusters).
pub fn test_dir(name: &str) -> PathBuf {
    let dir = test_root().join(name);
    std::fs::create_dir_all(&dir).expect("create a test dir");
    let _ = std::fs::set_permissions(
        test_root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    dir
}

fn test_root() -> PathBuf {
    std::env::temp_dir().join(format!("trove-test-{}", std::process::id()))
}

/// Starts a throwaway cluster under this process's temp dir and registers it for cleanup.
pub fn start_cluster(name: &str) -> Cluster {
    // 1,000 concurrent requests need ~2,000 sockets in one process (client and server).
    trove::app::raise_fd_limit();
    let first = STARTED.get().is_none();
    let list = STARTED.get_or_init(|| Mutex::new(Vec::new()));
    if first {
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(stop_clusters) };
    }
    let root = test_root();
    std::fs::create_dir_all(&root).expect("create test root");
    // Let the postgres user (when we run as root) reach the cluster dirs.
    let _ = std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    // One start at a time, each scanning for a free port above the previous clusters' ports:
    // two tests starting clusters at once would otherwise pick the same free port, and a
    // test's stopped cluster would lose its port to a new one before it restarts.
    let mut started = list.lock().expect("cluster list");
    let base = started
        .iter()
        .map(|c| c.port + 1)
        .max()
        .unwrap_or(20000 + (std::process::id() % 2000) as u16 * 10);
    let cluster = Cluster::ensure(&root.join(name), base, THROWAWAY_SETTINGS)
        .expect("start a private PostgreSQL");
    started.push(cluster.clone());
    cluster
}

/// A streaming standby of `primary` under this process's temp dir, registered for cleanup.
pub fn start_standby(primary: &Cluster, name: &str) -> Cluster {
    let list = STARTED.get_or_init(|| Mutex::new(Vec::new()));
    let mut started = list.lock().expect("cluster list");
    let base = started
        .iter()
        .map(|c| c.port + 1)
        .max()
        .unwrap_or(primary.port + 1);
    let standby = primary
        .start_standby(&test_root().join(name), base)
        .expect("start a standby");
    started.push(standby.clone());
    standby
}

async fn pg() -> &'static TestPg {
    PG.get_or_init(|| async {
        let clusters = vec![start_cluster("shard0"), start_cluster("shard1")];
        for c in &clusters {
            migrated_template(c).await;
        }
        TestPg { clusters }
    })
    .await
}

/// Creates the migrated template database every test database is copied from.
pub async fn migrated_template(c: &Cluster) {
    c.create_database(TEMPLATE, None)
        .await
        .expect("create template");
    let mut conn = sqlx::PgConnection::connect(&c.url(TEMPLATE))
        .await
        .expect("connect template");
    MIGRATOR.run(&mut conn).await.expect("migrate template");
    conn.close().await.expect("close");
}

/// Runs the real `trove` binary with `env` set (async: an app under test may be serving on
/// this test's runtime); returns whether it succeeded and its stdout and stderr.
pub async fn run_trove(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"))
        .args(args)
        .env_remove("TROVE_SHARDS")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run trove");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A new database on each shard cluster, not migrated (for `trove migrate`).
pub async fn empty_databases() -> Vec<String> {
    let pg = pg().await;
    let mut urls = Vec::new();
    for c in &pg.clusters {
        let name = format!("e{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
        c.create_database(&name, None)
            .await
            .expect("create database");
        urls.push(c.url(&name));
    }
    urls
}

/// A fresh, migrated database on `cluster`.
pub async fn fresh_db(cluster: &Cluster) -> String {
    let name = format!("t{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
    cluster
        .create_database(&name, Some(TEMPLATE))
        .await
        .expect("create test database");
    cluster.url(&name)
}

/// A fresh, migrated database on the shared cluster of shard `i` (with a cluster of a test's
/// own as another shard: every deployment's shards are its own databases).
pub async fn fresh_db_on(i: usize) -> String {
    fresh_db(&pg().await.clusters[i]).await
}

pub struct TestApp {
    pub base: String,
    /// `http://…` of the `TROVE_METRICS_LISTEN` listener, when configured.
    pub ops_base: Option<String>,
    pub realtime: trove::api::Realtime,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub keys: JwtKeys,
    pub shard_urls: Vec<String>,
    _shutdown: oneshot::Sender<()>,
}

/// The real app on two fresh shard databases.
pub async fn spawn_app() -> TestApp {
    let pg = pg().await;
    let mut urls = Vec::new();
    for c in &pg.clusters {
        urls.push(fresh_db(c).await);
    }
    spawn_app_on(urls).await
}

/// The real app on the given shard URLs.
pub async fn spawn_app_on(shard_urls: Vec<String>) -> TestApp {
    spawn_app_with(Config::for_shards(shard_urls, SECRET)).await
}

/// `config` with claims that wait up to 30 s for a pooled connection (and 60 s in all): for tests
/// of correctness under many simultaneous claims, where a busy two-core CI machine would
/// otherwise outwait the 2 s pool default and answer 503. Overload has tests of its own.
pub fn patient(mut config: Config) -> Config {
    config.db_acquire_timeout_ms = 30_000;
    config.request_timeout_ms = 60_000;
    config
}

/// The real app on two fresh shard databases, patient (see [`patient`]).
pub async fn spawn_patient_app() -> TestApp {
    let pg = pg().await;
    let mut urls = Vec::new();
    for c in &pg.clusters {
        urls.push(fresh_db(c).await);
    }
    spawn_app_with(patient(Config::for_shards(urls, SECRET))).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    let shard_urls = config.shards.clone();
    let keys = config.jwt_keys().expect("keys");
    let engine = trove::app::engine(&config).expect("shards");
    let app = Application::bind(&config, engine.clone(), keys.clone())
        .await
        .expect("bind");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    let ops_base = app.ops_addr().map(|a| format!("http://{a}"));
    let realtime = app.realtime();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.serve(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        ops_base,
        realtime,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        engine,
        keys,
        shard_urls,
        _shutdown: tx,
    }
}

/// A zone name that hashes to `shard` of 2.
pub fn zone_on(shard: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|z| shard_index(z, 2) == shard)
        .expect("some name lands on every shard")
}

/// A plan (EXPLAIN's lines) that reads no table whole: no sequential scan, and every index
/// searched by a condition, never walked from end to end. Returns the plan as one string.
pub fn assert_no_scan(plan: &[String], label: &str) -> String {
    for (i, line) in plan.iter().enumerate() {
        if line.contains("Index Scan using") || line.contains("Index Only Scan using") {
            let next = plan.get(i + 1).map(String::as_str).unwrap_or("");
            assert!(
                next.contains("Index Cond"),
                "{label}: an index walked whole:\n{}",
                plan.join("\n")
            );
        }
    }
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan"), "{label}:\n{plan}");
    plan
}

/// One sample from Prometheus text: the value of `name` whose label set is exactly `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let got: BTreeMap<&str, &str> = rest
                .split(',')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            (got == want).then(|| value.parse().ok()).flatten()
        })
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub fn token(&self, player: &str) -> String {
        self.keys.issue(player, Role::Player, 3600).expect("token")
    }

    /// Triggers graceful shutdown (as SIGTERM does in `trove serve`).
    pub fn shutdown(self) {
        drop(self._shutdown);
    }

    /// Open WebSocket connections on this instance.
    pub fn engine_connections(&self) -> usize {
        self.realtime.connections()
    }

    pub fn admin(&self) -> String {
        self.keys.issue("admin", Role::Admin, 3600).expect("token")
    }

    /// Sends a request; `body` None sends no body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn put_table(&self, name: &str, entries: Value) -> Resp {
        let admin = self.admin();
        self.call(
            Method::PUT,
            &format!("/v1/loot-tables/{name}"),
            Some(&admin),
            Some(json!({ "entries": entries })),
            &[],
        )
        .await
    }

    pub async fn starter(&self) {
        let r = self
            .put_table(
                "starter",
                json!([
                    {"item": "gold", "weight": 70, "min_qty": 1, "max_qty": 50, "rarity": "common"},
                    {"item": "gem", "weight": 25, "min_qty": 1, "max_qty": 3, "rarity": "rare"},
                    {"item": "crown", "weight": 5, "min_qty": 1, "max_qty": 1, "rarity": "legendary"}
                ]),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    pub async fn spawn_zone(&self, zone: &str, count: i64, table: &str) -> Resp {
        self.spawn(zone, json!({ "count": count, "loot_table": table }))
            .await
    }

    /// A spawn that makes `zone` synthetic (a fairness-probe zone).
    pub async fn spawn_synthetic_zone(&self, zone: &str, count: i64, table: &str) -> Resp {
        let body = json!({ "count": count, "loot_table": table, "synthetic": true });
        self.spawn(zone, body).await
    }

    async fn spawn(&self, zone: &str, body: Value) -> Resp {
        let admin = self.admin();
        let path = format!("/v1/zones/{zone}/chests");
        self.call(Method::POST, &path, Some(&admin), Some(body), &[])
            .await
    }

    /// A loot table version as anyone reads it through the API, and as the engine's type
    /// (what a replay of a claim's draw needs).
    pub async fn table_version(&self, name: &str, version: i32) -> (Value, trove::loot::LootTable) {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/loot-tables/{name}?version={version}"),
                Some(&self.token("anyone")),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let spec = json!({"entries": r.body["entries"], "rolls": r.body["rolls"]});
        let table = trove::loot::LootTable {
            id: 0,
            name: name.to_owned(),
            version,
            spec: serde_json::from_value(spec).expect("table spec"),
        };
        (r.body, table)
    }

    /// `trove verify ZONE` run as an operator runs it, against this app's shards.
    pub fn verify_cli(&self, zone: &str) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_trove"))
            .args(["verify", zone])
            .env("TROVE_SHARDS", self.shard_urls.join(","))
            .env("TROVE_JWT_SECRET", SECRET)
            .output()
            .expect("run trove verify")
    }

    /// Reveals a zone's current seed (admin).
    pub async fn reveal(&self, zone: &str) -> Resp {
        let admin = self.admin();
        let path = format!("/v1/zones/{zone}/reveal");
        self.call(Method::POST, &path, Some(&admin), None, &[])
            .await
    }

    pub async fn claim(&self, zone: &str, token: &str, key: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = key
            .map(|k| vec![("Idempotency-Key", k)])
            .unwrap_or_default();
        self.call(
            Method::POST,
            &format!("/v1/zones/{zone}/claims"),
            Some(token),
            None,
            &headers,
        )
        .await
    }

    pub async fn zone(&self, zone: &str) -> Value {
        let t = self.token("observer");
        self.call(
            Method::GET,
            &format!("/v1/zones/{zone}"),
            Some(&t),
            None,
            &[],
        )
        .await
        .body
    }

    /// The instance's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics body")
    }

    /// A direct connection to shard `i`, for asserting what is stored where.
    /// A connection to shard `i`'s primary (as the app last found it).
    pub async fn shard_db(&self, i: usize) -> sqlx::PgConnection {
        self.engine.shards.all()[i]
            .connect()
            .await
            .expect("connect shard")
    }

    /// Claims in the ledger of `zone` (on whichever shard holds it).
    pub async fn ledger_count(&self, zone: &str) -> i64 {
        // Where the catalog placed it (the hash only proposes a place for a new zone).
        let shard = self
            .engine
            .shards
            .zone_shard_or_proposed(zone)
            .await
            .expect("catalog");
        let mut db = self.shard_db(shard.index).await;
        sqlx::query_scalar(
            "SELECT count(*) FROM claims c JOIN zones z ON z.id = c.zone_id WHERE z.name = $1",
        )
        .bind(zone)
        .fetch_one(&mut db)
        .await
        .expect("count")
    }
}

/// A private redis-server on a free port, killed on drop (tests stop it to prove Trove
/// survives without Redis).
pub struct RedisServer {
    pub port: u16,
    server: trove::local::RedisServer,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        // Each server gets a port above every earlier one of this process (below the kernel's
        // ephemeral range), so a stopped server's port never goes to another test's server:
        // its app would otherwise find "Redis" again on the old port.
        static LAST: Mutex<u16> = Mutex::new(0);
        let port = {
            let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
            let from = (*last + 1).max(30000 + (std::process::id() % 100) as u16 * 20);
            *last = trove::local::free_port(from);
            *last
        };
        let server = trove::local::RedisServer::start(port)
            .await
            .expect("start redis-server (apt-get install redis-server)");
        RedisServer {
            port: server.port,
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Runs one command with redis-cli-like raw protocol (FLUSHALL, DBSIZE …).
    pub async fn cmd(&self, args: &[&str]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("redis connect");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).await.expect("redis write");
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.expect("redis read");
        String::from_utf8_lossy(&buf[..n]).trim().to_owned()
    }
}

/// A `trove serve` process started by a test: its base URL and, once it exits, everything it
/// wrote to stderr (its logs).
pub struct Served {
    pub child: tokio::process::Child,
    pub base: String,
    pub logs: tokio::task::JoinHandle<String>,
}

/// Starts `cmd` (a `trove serve` with `TROVE_LISTEN=127.0.0.1:0`) with piped output and waits
/// for it to print where it listens.
pub async fn serve(mut cmd: tokio::process::Command) -> Served {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start trove");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            if let Some(url) = line.strip_prefix("Trove listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("trove exited before listening");
    })
    .await
    .expect("trove did not start listening");
    // Read to the end: a closed pipe would fail Trove's next line to stdout.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all).await;
        all
    });
    Served { child, base, logs }
}
