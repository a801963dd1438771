//! The local stack's HA mode, as a newcomer runs it: the real `trove` binary with
//! `TROVE_LOCAL_STANDBYS=2` and no TROVE_SHARDS starts every shard as a Patroni formation of
//! three nodes, serves the demo world on them, stops them cleanly on SIGTERM, and on the next
//! start reuses the same formations and their data.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;

/// One `trove` run on a data dir. Dropped before its end (a failed assertion), it stops Trove
/// and then kills whatever still names the data dir (Patronis, postmasters, etcd), so a failed
/// test leaves no servers behind.
struct Run {
    child: Option<Child>,
    dir: PathBuf,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl Run {
    /// Starts `trove serve` in HA mode on `dir` and waits until it listens: its base URL and
    /// the lines it printed before.
    async fn start(dir: &Path) -> (Run, String, Vec<String>) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"))
            .arg("serve")
            .env_remove("TROVE_SHARDS")
            .env_remove("TROVE_REDIS_URL")
            .env("TROVE_LOCAL_STANDBYS", "2")
            .env("TROVE_DATA_DIR", dir)
            .env("TROVE_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start trove");
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all).await;
            all
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut run = Run {
            child: Some(child),
            dir: dir.to_owned(),
            stderr: Some(stderr),
        };
        let mut printed = Vec::new();
        let listening = tokio::time::timeout(Duration::from_secs(90), async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(url) = line.strip_prefix("Trove listening on ") {
                    return Some(url.trim().to_owned());
                }
                printed.push(line);
            }
            None
        })
        .await;
        let Ok(Some(base)) = listening else {
            let logs = run.stop_now().await;
            panic!("trove did not start listening: {printed:#?}\n{logs}");
        };
        // Nothing more is printed, but keep the pipe open and drained.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        (run, base, printed)
    }

    /// SIGTERM: Trove stops serving, then its nodes (standbys first) and etcd. Its exit
    /// status, how long it took, and its log.
    async fn terminate(&mut self) -> (std::process::ExitStatus, Duration, String) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("pid") as i32;
        let started = Instant::now();
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
            .await
            .expect("trove did not exit within 40 s of SIGTERM")
            .expect("wait");
        let took = started.elapsed();
        (status, took, self.logs().await)
    }

    async fn logs(&mut self) -> String {
        match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// For a failure on the way: SIGKILL Trove and everything it left, and its log.
    async fn stop_now(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        kill_all_naming(&self.dir);
        self.logs().await
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
        kill_all_naming(&self.dir);
    }
}

/// Processes whose command line mentions `dir`: this test's Patronis, postmasters and etcd.
fn processes_naming(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let own = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some((pid, cmdline))
        })
        .collect()
}

fn kill_all_naming(dir: &Path) {
    for (pid, _) in processes_naming(dir) {
        // SAFETY: kill(2) on a pid just read from /proc; it names this test's data dir.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The processes naming `dir`, once they are given a few seconds to go.
async fn left_running(dir: &Path) -> Vec<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_naming(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn printed_value<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} in {lines:#?}"))
}

/// `/readyz`: each shard lists its three hosts, one primary and two standbys. The stack
/// serves once each shard has its primary and synchronous standby, so the other standby may
/// still be joining: it is given 30 s.
async fn assert_each_shard_has_a_primary_and_two_standbys(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        let body: Value = resp.json().await.expect("readyz body");
        let shards = body["shards"].as_array().expect("shards");
        assert_eq!(shards.len(), 2, "{body}");
        let count = |hosts: &[Value], role: &str| {
            hosts
                .iter()
                .filter(|h| h["role"].as_str() == Some(role))
                .count()
        };
        let formed = shards.iter().all(|shard| {
            let hosts = shard["hosts"].as_array().map_or(&[][..], Vec::as_slice);
            hosts.len() == 3 && count(hosts, "primary") == 1 && count(hosts, "standby") == 2
        });
        if formed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "every shard should have one primary and two standbys within 30 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_runs_every_shard_as_a_patroni_formation_and_restarts_on_it() {
    let _turn = crate::helpers::formation_turn().await;
    let dir = PathBuf::from(format!("/tmp/trove-local-ha-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let client = reqwest::Client::new();

    let began = Instant::now();
    let (mut run, base, printed) = Run::start(&dir).await;
    println!("fresh HA local stack listening after {:?}", began.elapsed());
    let text = printed.join("\n");
    for shard in 0..2 {
        for node in 0..3 {
            let name = format!("shard{shard}-n{node}");
            assert!(text.contains(&name), "node {name} not printed: {text}");
        }
    }
    assert!(
        text.contains("pkill -9 -f ") && text.contains("postmaster.pid"),
        "{text}"
    );
    let token = printed_value(&printed, "player token:").to_owned();

    // A claim on each shard's zones (the demo world spreads over both).
    let mut claimed = Vec::new();
    for (zone, _) in trove::local::DEMO_ZONES {
        let resp = client
            .post(format!("{base}/v1/zones/{zone}/claims"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("claim");
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "{zone}");
        let body: Value = resp.json().await.expect("claim body");
        claimed.push(body["claim_id"].as_str().expect("claim id").to_owned());
    }
    assert_each_shard_has_a_primary_and_two_standbys(&client, &base).await;

    let (status, took, logs) = run.terminate().await;
    println!("stopped in {took:?}");
    assert!(status.success(), "exit status {status:?}: {logs}");
    let left = left_running(&dir).await;
    assert!(left.is_empty(), "left running: {left:#?}");
    assert!(!dir.join("ha/running.json").exists());
    drop(run);

    // The same data dir again: the same formations come up, with the claims made above.
    let began = Instant::now();
    let (mut run, base, printed) = Run::start(&dir).await;
    println!(
        "restarted HA local stack listening after {:?}",
        began.elapsed()
    );
    let token = printed_value(&printed, "player token:").to_owned();
    let history: Value = client
        .get(format!("{base}/v1/players/demo-player/claims"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("history body");
    for id in &claimed {
        assert!(
            history.to_string().contains(id.as_str()),
            "{id} lost: {history}"
        );
    }
    assert_each_shard_has_a_primary_and_two_standbys(&client, &base).await;
    let (status, took, logs) = run.terminate().await;
    println!("stopped again in {took:?}");
    assert!(status.success(), "exit status {status:?}: {logs}");
    let left = left_running(&dir).await;
    assert!(left.is_empty(), "left running: {left:#?}");
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}
