//! A private, throwaway `redis-server` for tests and benchmarks (the local stack itself runs
//! without Redis): nothing kept on disk, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, LocalError, Result};

/// A running `redis-server` on 127.0.0.1.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on the first free port from `from` and waits until it accepts connections.
    pub async fn start(from: u16) -> Result<RedisServer> {
        let port = free_port(from);
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| LocalError::Io("starting redis-server".into(), e))?;
        // Owned at once, so every path (a panic too) kills and reaps it.
        let server = RedisServer {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LocalError::Redis(port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (tests stop it to prove Trove survives without Redis).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
