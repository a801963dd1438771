//! Configuration: every setting is a `TROVE_*` environment variable with a matching flag,
//! shared by all subcommands so `trove migrate` reads exactly what `trove serve` reads.
//!
//! Only `main`, `app` (the composition root), benchmarks and tests read the whole `Config`;
//! every module gets its own small settings struct from one of the methods below. Each default
//! is written once, in its `#[arg]` attribute ([`Config::defaults`] reads them from there).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};

mod auth;
mod server;
pub use auth::AuthArgs;
pub use server::ServerArgs;

use crate::leaderboards::RarityScores;
use crate::ratelimit::RateSpec;

/// Settings common to every subcommand. Defaults are documented in the README.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL shard URLs, comma-separated, in shard order. The order is part of the
    /// sharding scheme: only ever append. A shard that is a replicated group lists its hosts
    /// in one URL (`postgres://u@h1:5432,h2:5432/trove`): a new shard starts only where
    /// `postgres://` or `postgresql://` begins. Unset: a private local stack is started.
    #[arg(long, env = "TROVE_SHARDS", global = true)]
    pub shards: Vec<String>,

    /// HS256 secret for bearer tokens. Required with TROVE_SHARDS; the local stack keeps one
    /// in its data dir.
    #[arg(long, env = "TROVE_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Ed25519 secret key (64 hex digits) that signs claim receipts. Unset: the local stack
    /// keeps one in its data dir; elsewhere one is made at start-up, and receipts then verify
    /// only against that process's key (`GET /.well-known/trove-keys.json`).
    #[arg(long, env = "TROVE_RECEIPT_KEY", hide_env_values = true, global = true)]
    pub receipt_key: Option<String>,

    /// ChaCha20-Poly1305 key (64 hex digits) that seals unrevealed server seeds at rest.
    /// Unset: derived from TROVE_JWT_SECRET. Lose it and unrevealed epochs can never be
    /// revealed (README "Provably fair draws").
    #[arg(long, env = "TROVE_SEED_KEY", hide_env_values = true, global = true)]
    pub seed_key: Option<String>,

    /// Earlier seed keys (hex, comma-separated), still opening the seeds they sealed until
    /// `trove seal-seeds` seals them under TROVE_SEED_KEY.
    #[arg(
        long,
        env = "TROVE_SEED_OLD_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub seed_old_keys: Vec<String>,

    /// Public keys (hex, comma-separated) of retired receipt keys, still listed so receipts
    /// they signed keep verifying.
    #[arg(
        long,
        env = "TROVE_RECEIPT_RETIRED_KEYS",
        value_delimiter = ',',
        global = true
    )]
    pub receipt_retired_keys: Vec<String>,

    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "TROVE_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Connections per shard pool.
    #[arg(long, env = "TROVE_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: u32,

    /// Most claims one shard statement opens together (micro-batching; 1 turns it off).
    #[arg(long, env = "TROVE_CLAIM_BATCH_MAX", default_value_t = 64, global = true,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub claim_batch_max: u16,

    /// Most claim statements in flight per shard at once. Beyond the first, one starts only
    /// while a slot's share of a full batch (batch max / this) is waiting or none has finished
    /// for 10 ms; otherwise claims arriving meanwhile wait and go together in the next.
    #[arg(long, env = "TROVE_CLAIM_CONCURRENCY", default_value_t = 2, global = true,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub claim_concurrency: u16,

    /// How long a request waits for a shard connection before answering 503, in ms.
    #[arg(
        long,
        env = "TROVE_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub db_acquire_timeout_ms: u64,

    /// Server-side statement timeout on every shard connection, in ms.
    #[arg(
        long,
        env = "TROVE_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub db_statement_timeout_ms: u64,

    /// Replicated shards: zone totals and chest listings may come from a standby that holds
    /// everything its primary had at most this many ms ago (else from the primary). Unset:
    /// every read goes to the primary.
    #[arg(long, env = "TROVE_READ_REPLICA_STALENESS_MS", value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub read_replica_staleness_ms: Option<u64>,

    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "TROVE_BODY_LIMIT", default_value_t = 65536, global = true)]
    pub body_limit: usize,

    /// Whole-request timeout, in ms (exceeded: 408 request_timeout).
    #[arg(
        long,
        env = "TROVE_REQUEST_TIMEOUT_MS",
        default_value_t = 10000,
        global = true
    )]
    pub request_timeout_ms: u64,

    /// Requests one instance serves at once; more get 503 `overloaded` at once instead of
    /// queueing (WebSocket connections count only while upgrading).
    #[arg(
        long,
        env = "TROVE_MAX_CONCURRENT_REQUESTS",
        default_value_t = 4096,
        global = true
    )]
    pub max_concurrent_requests: usize,

    /// On SIGTERM/Ctrl-C: how long in-flight requests and WebSockets get to finish, in ms.
    #[arg(
        long,
        env = "TROVE_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 15000,
        global = true
    )]
    pub shutdown_timeout_ms: u64,

    /// Log format: `human` (default) or `json` (one object per line). Level: RUST_LOG.
    #[arg(
        long,
        env = "TROVE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Human,
        global = true
    )]
    pub log_format: LogFormat,

    /// A second address serving only the operations routes (/metrics, /healthz, /readyz,
    /// /openapi.json; e.g. 0.0.0.0:9100), so they need not be exposed with the API. Unset:
    /// they are on the main port only.
    #[arg(long, env = "TROVE_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Most WebSocket connections one instance accepts (more: 503).
    #[arg(
        long,
        env = "TROVE_WS_MAX_CONNECTIONS",
        default_value_t = 20000,
        global = true
    )]
    pub ws_max_connections: usize,

    /// Most WebSocket connections one client address may hold (0: no cap; more: 429). Behind
    /// a trusted proxy the address is the forwarded one (TROVE_TRUST_FORWARDED_FOR).
    #[arg(
        long,
        env = "TROVE_WS_MAX_PER_IP",
        default_value_t = 256,
        global = true
    )]
    pub ws_max_per_ip: usize,

    /// Most zones one WebSocket connection may watch.
    #[arg(long, env = "TROVE_WS_MAX_ZONES", default_value_t = 64, global = true)]
    pub ws_max_zones: usize,

    /// Events queued per WebSocket connection before it is `lagged`.
    #[arg(long, env = "TROVE_WS_QUEUE", default_value_t = 256, global = true)]
    pub ws_queue: usize,

    /// Largest WebSocket message a client may send, in bytes (larger: closed with 1009).
    #[arg(
        long,
        env = "TROVE_WS_MAX_MESSAGE",
        default_value_t = 4096,
        global = true
    )]
    pub ws_max_message: usize,

    /// Seconds between server pings; a client silent for three intervals is closed.
    #[arg(long, env = "TROVE_WS_PING_SECS", default_value_t = 30, global = true)]
    pub ws_ping_secs: u64,

    /// A WebSocket write stalled this long (the client stopped reading) drops the connection, in ms.
    #[arg(
        long,
        env = "TROVE_WS_WRITE_TIMEOUT_MS",
        default_value_t = 10000,
        global = true
    )]
    pub ws_write_timeout_ms: u64,

    /// SO_SNDBUF of accepted connections in bytes, so a client that stops reading ties up a
    /// bounded amount of kernel memory and is noticed soon (0: kernel autotuning, up to MBs).
    #[arg(
        long,
        env = "TROVE_TCP_SEND_BUFFER",
        default_value_t = 65536,
        global = true
    )]
    pub tcp_send_buffer: usize,

    /// How often each instance polls each shard's ledger for new events, in ms.
    #[arg(long, env = "TROVE_TAIL_POLL_MS", default_value_t = 10, global = true)]
    pub tail_poll_ms: u64,

    /// Ledger rows a resume may scan per shard; further back, a fresh snapshot is sent instead.
    #[arg(
        long,
        env = "TROVE_REPLAY_WINDOW",
        default_value_t = 200_000,
        global = true
    )]
    pub replay_window: i64,

    /// Resume pages being read or written at once on this instance (each holds at most 1,000
    /// ledger rows), so many clients resuming together use bounded memory; others wait.
    #[arg(long, env = "TROVE_WS_MAX_REPLAYS", default_value_t = 8, global = true)]
    pub ws_max_replays: usize,

    /// Redis for leaderboards and rate limits, e.g. redis://127.0.0.1:6379. Unset: both off.
    #[arg(long, env = "TROVE_REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(
        long,
        env = "TROVE_REDIS_PREFIX",
        default_value = "trove",
        global = true
    )]
    pub redis_prefix: String,

    /// Redis calls slower than this count as failures (rate limits then fail open or closed).
    #[arg(
        long,
        env = "TROVE_REDIS_TIMEOUT_MS",
        default_value_t = 100,
        global = true
    )]
    pub redis_timeout_ms: u64,

    /// Refuse requests (503) instead of letting them through when Redis cannot be asked.
    #[arg(
        long,
        env = "TROVE_RATE_LIMIT_FAIL_CLOSED",
        default_value_t = false,
        global = true
    )]
    pub rate_limit_fail_closed: bool,

    /// Per-player claim limit, `RATE/BURST` (tokens per second / bucket size).
    #[arg(
        long,
        env = "TROVE_RATE_CLAIMS",
        default_value = "10/20",
        global = true
    )]
    pub rate_claims: RateSpec,

    /// Per-player limit on other API requests.
    #[arg(
        long,
        env = "TROVE_RATE_READS",
        default_value = "50/100",
        global = true
    )]
    pub rate_reads: RateSpec,

    /// Per-player limit on WebSocket connects.
    #[arg(long, env = "TROVE_RATE_WS", default_value = "2/10", global = true)]
    pub rate_ws: RateSpec,

    /// Key the per-IP limit on the last address of X-Forwarded-For (the client as the proxy
    /// saw it). Only behind a proxy that appends it (like the compose stack's nginx): a
    /// client reaching Trove directly could name any address.
    #[arg(
        long,
        env = "TROVE_TRUST_FORWARDED_FOR",
        default_value_t = false,
        global = true
    )]
    pub trust_forwarded_for: bool,

    /// Connection limits (header-read timeout, header size, per-address cap, proxies).
    #[command(flatten)]
    pub server: ServerArgs,

    /// Token settings (previous secrets, JWKS, issuers, audiences, claims).
    #[command(flatten)]
    pub auth: AuthArgs,

    /// Per-client-IP limit on requests without a valid token.
    #[arg(long, env = "TROVE_RATE_ANON", default_value = "20/40", global = true)]
    pub rate_anon: RateSpec,

    /// Leaderboard `loot_value` points per item of each rarity.
    #[arg(
        long,
        env = "TROVE_RARITY_SCORES",
        default_value = "common=1,uncommon=3,rare=10,epic=40,legendary=200",
        global = true
    )]
    pub rarity_scores: RarityScores,

    /// How often each instance moves the leaderboards along the ledger, in ms.
    #[arg(
        long,
        env = "TROVE_LEADERBOARD_POLL_MS",
        default_value_t = 200,
        global = true
    )]
    pub leaderboard_poll_ms: u64,

    /// Where the local stack keeps its PostgreSQL clusters and secret. Default:
    /// $XDG_DATA_HOME/trove (or ~/.local/share/trove); /var/lib/trove when run as root.
    #[arg(long, env = "TROVE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// The local stack's standbys per shard. 0: each shard is one plain PostgreSQL cluster.
    /// 1-4: each shard is a Patroni formation of a primary and that many standbys, sharing one
    /// etcd (Debian: patroni, etcd-server, python3-etcd), to watch a failover. Commits wait for
    /// a synchronous standby (synchronous_mode_strict): 2 keeps writes going when one node is
    /// lost; with 1, writes wait while the one standby is down.
    #[arg(long, env = "TROVE_LOCAL_STANDBYS", default_value_t = 0, global = true,
          value_parser = clap::value_parser!(u8).range(0..=i64::from(crate::local::MAX_STANDBYS)))]
    pub local_standbys: u8,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

impl Config {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.db_statement_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Every setting at its default (as `trove` with no flags and no `TROVE_*` variables
    /// would have it): the defaults come from the `#[arg]` attributes, not a second copy.
    pub fn defaults() -> Self {
        let mut cmd = Config::augment_args(clap::Command::new("trove").no_binary_name(true));
        let ids: Vec<clap::Id> = cmd.get_arguments().map(|a| a.get_id().clone()).collect();
        for id in ids {
            // Ignore the environment: defaults are what the attributes say.
            cmd = cmd.mut_arg(id, |a| a.env(None));
        }
        cmd.try_get_matches_from(std::iter::empty::<String>())
            .and_then(|m| Config::from_arg_matches(&m))
            .unwrap_or_else(|e| panic!("the settings' own defaults must parse: {e}"))
    }

    /// A config for the given shards with every other setting at its default, listening on a
    /// free port; used by tests, benchmarks and the local stack.
    pub fn for_shards(shards: Vec<String>, jwt_secret: &str) -> Self {
        Config {
            shards,
            jwt_secret: Some(jwt_secret.to_owned()),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            // Tests and benches drive thousands of players from one address.
            server: ServerArgs {
                max_connections_per_ip: 0,
                ..Config::defaults().server
            },
            ws_max_per_ip: 0,
            ..Config::defaults()
        }
    }

    /// The token keys (`TROVE_JWT_SECRET`, `TROVE_JWKS` and the rest of [`AuthArgs`]).
    pub fn jwt_keys(&self) -> crate::Result<crate::auth::JwtKeys> {
        if self.jwt_secret.is_none() && self.auth.jwks.is_none() {
            return Err(crate::Error::invalid(
                "invalid_config",
                "TROVE_JWT_SECRET (or TROVE_JWKS) is required when TROVE_SHARDS is set",
            ));
        }
        crate::auth::JwtKeys::from_settings(self.auth.settings(self.jwt_secret.clone()))
    }

    /// The receipt keys (`TROVE_RECEIPT_KEY`, `TROVE_RECEIPT_RETIRED_KEYS`); a fresh key when
    /// none is set.
    pub fn receipt_keys(&self) -> crate::Result<crate::receipts::ReceiptKeys> {
        match &self.receipt_key {
            Some(key) => crate::receipts::ReceiptKeys::new(key, &self.receipt_retired_keys),
            None => crate::receipts::ReceiptKeys::generate(),
        }
    }

    /// The receipt and seed keys an engine holds.
    pub fn keys(&self) -> crate::Result<crate::engine::Keys> {
        use crate::seeds::SeedKeys;
        let seeds = match (&self.seed_key, &self.jwt_secret) {
            (Some(key), _) => SeedKeys::new(key, &self.seed_old_keys)?,
            (None, Some(secret)) => SeedKeys::derived_from(secret.as_bytes()),
            (None, None) => SeedKeys::missing(),
        };
        Ok(crate::engine::Keys {
            receipts: self.receipt_keys()?,
            seeds,
        })
    }

    /// One URL per shard (`--shards` may be given more than once, each a list).
    pub fn shard_urls(&self) -> Vec<String> {
        self.shards
            .iter()
            .flat_map(|list| crate::shards::split_shard_list(list))
            .collect()
    }

    /// The shards' pools (`TROVE_SHARDS`, `TROVE_DB_*`).
    pub fn shards(&self) -> crate::shards::Settings {
        crate::shards::Settings {
            urls: self.shard_urls(),
            pool_size: self.db_pool_size,
            acquire_timeout: self.acquire_timeout(),
            statement_timeout: self.statement_timeout(),
            read_staleness: self.read_replica_staleness_ms.map(Duration::from_millis),
        }
    }

    /// How claims are batched per shard (`TROVE_CLAIM_*`).
    pub fn batching(&self) -> crate::claims::Batching {
        crate::claims::Batching {
            max: usize::from(self.claim_batch_max),
            in_flight: usize::from(self.claim_concurrency),
        }
    }

    /// Redis, when `TROVE_REDIS_URL` is set.
    pub fn redis(&self) -> Option<crate::redis_client::Settings> {
        let url = self.redis_url.as_deref().filter(|u| !u.is_empty())?;
        Some(crate::redis_client::Settings {
            url: url.to_owned(),
            prefix: self.redis_prefix.clone(),
            timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
        })
    }

    /// The rate limits (`TROVE_RATE_*`).
    pub fn rate_limits(&self) -> crate::ratelimit::Settings {
        crate::ratelimit::Settings {
            claims: self.rate_claims,
            reads: self.rate_reads,
            ws: self.rate_ws,
            anon: self.rate_anon,
            fail_closed: self.rate_limit_fail_closed,
        }
    }

    /// How often the leaderboards follow the ledger (`TROVE_LEADERBOARD_POLL_MS`, at least
    /// 10 ms).
    pub fn leaderboard_poll(&self) -> Duration {
        Duration::from_millis(self.leaderboard_poll_ms.max(10))
    }

    /// The WebSocket fan-out (`TROVE_WS_*`, `TROVE_TAIL_POLL_MS`, `TROVE_REPLAY_WINDOW`).
    pub fn realtime(&self) -> crate::realtime::Settings {
        crate::realtime::Settings {
            tail_poll: Duration::from_millis(self.tail_poll_ms.max(1)),
            max_connections: self.ws_max_connections,
            max_zones: self.ws_max_zones.max(1),
            queue: self.ws_queue.max(1),
            max_message: self.ws_max_message.max(256),
            ping: Duration::from_secs(self.ws_ping_secs.max(1)),
            write_timeout: Duration::from_millis(self.ws_write_timeout_ms.max(1)),
            replay_window: self.replay_window.max(1),
            max_replays: self.ws_max_replays.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_attributes_and_ignore_the_environment() {
        let d = Config::defaults();
        assert_eq!(d.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(
            (d.db_pool_size, d.claim_batch_max, d.claim_concurrency),
            (16, 64, 2)
        );
        assert_eq!((d.ws_queue, d.replay_window), (256, 200_000));
        assert_eq!(
            d.rate_claims,
            RateSpec {
                rate: 10.0,
                burst: 20.0
            }
        );
        assert_eq!(d.rarity_scores, RarityScores::default());
        assert!(d.shards.is_empty() && d.redis_url.is_none());
        let t = Config::for_shards(vec!["postgres://x".into()], "s");
        assert_eq!(t.listen.port(), 0);
        assert_eq!(t.ws_ping_secs, d.ws_ping_secs);
    }
}
