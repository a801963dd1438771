//! The HTTP server's connection limits (src/api/server.rs says why each exists).

use std::time::Duration;

use crate::api::server::Cidr;

/// Connection limits, flattened into `Config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Close a connection that has not sent a whole request head within this many ms (slow
    /// or silent clients).
    #[arg(long, env = "TROVE_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000), global = true)]
    pub header_read_timeout_ms: u64,

    /// Close a kept-alive connection that has had no request in flight and no traffic for
    /// this many ms.
    #[arg(long, env = "TROVE_KEEP_ALIVE_IDLE_MS", default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000), global = true)]
    pub keep_alive_idle_ms: u64,

    /// Largest request head (request line and headers) in bytes; a larger one gets 431.
    #[arg(long, env = "TROVE_MAX_HEADER_BYTES", default_value_t = 16_384,
        value_parser = clap::value_parser!(u64).range(8192..=1_048_576), global = true)]
    pub max_header_bytes: u64,

    /// Open connections one client address may hold (0: no cap); a connection over it is
    /// closed at once. Trusted proxies are exempt.
    #[arg(long, env = "TROVE_MAX_CONNECTIONS_PER_IP", default_value_t = 1024,
        value_parser = clap::value_parser!(u64).range(0..=1_000_000), global = true)]
    pub max_connections_per_ip: u64,

    /// Addresses or CIDR ranges of proxies in front of Trove (comma-separated, e.g.
    /// `10.0.0.5,172.16.0.0/12`): exempt from the per-address connection cap, since every
    /// connection through a proxy comes from it.
    #[arg(
        long,
        env = "TROVE_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<Cidr>,
}

impl ServerArgs {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn keep_alive_idle(&self) -> Duration {
        Duration::from_millis(self.keep_alive_idle_ms)
    }
}
