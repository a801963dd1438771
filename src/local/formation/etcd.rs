//! Patroni's store: one etcd member.

use std::path::Path;
use std::process::{Child, Command};

use super::{io, log_file, spawn};
use crate::local::cluster::{chown_to_postgres, free_port};
use crate::local::Result;

/// One etcd member, Patroni's store.
pub struct Etcd {
    /// The address it listens on, and its client port.
    pub host: String,
    pub client_port: u16,
    child: Child,
}

impl Etcd {
    /// Starts a single-member etcd on 127.0.0.1 with its data in `dir`, on free ports from
    /// `first_port` up.
    pub fn start(dir: &Path, first_port: u16) -> Result<Etcd> {
        Etcd::start_on(dir, "127.0.0.1", first_port)
    }

    /// The same on address `host` (one of this machine's).
    pub fn start_on(dir: &Path, host: &str, first_port: u16) -> Result<Etcd> {
        let client_port = free_port(first_port);
        let peer_port = free_port(client_port + 1);
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "creating", e))?;
        chown_to_postgres(dir)?;
        let client = format!("http://{host}:{client_port}");
        let peer = format!("http://{host}:{peer_port}");
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
        let child = spawn(
            cmd,
            log,
            "etcd (Debian: `apt-get install -y etcd-server`)",
            None,
        )?;
        Ok(Etcd {
            host: host.to_owned(),
            client_port,
            child,
        })
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
