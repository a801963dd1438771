//! The composition root: builds every service from its own settings (the only reader of the
//! whole `Config` besides `main`), binds before serving so tests run the real app on port 0,
//! and shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::api::{ops_router, router, AppState, Realtime, Services};
use crate::auth::JwtKeys;
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::leaderboards::Leaderboards;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::redis_client::Redis;
use crate::shards::ShardSet;

/// The engine on the configured shards (lazy pools: nothing connects yet).
pub fn engine(config: &Config) -> crate::Result<Engine> {
    if config.receipt_key.is_none() {
        tracing::warn!(
            "TROVE_RECEIPT_KEY is not set: receipts are signed with a key made now, which no \
             other instance and no later start of this one has"
        );
    }
    Ok(Engine::new(
        ShardSet::new(&config.shards())?,
        config.batching(),
        config.keys()?,
    ))
}

/// The leaderboards on `redis`, following `shards` (not started).
pub fn leaderboards(config: &Config, redis: Redis, shards: ShardSet) -> Leaderboards {
    let scores = config.rarity_scores.clone();
    Leaderboards::new(redis, shards, scores, config.leaderboard_poll())
}

/// The HTTP layers of the `/v1` routes, from their `TROVE_*` settings.
fn http_settings(config: &Config) -> crate::api::Settings {
    crate::api::Settings {
        body_limit: config.body_limit,
        request_timeout: config.request_timeout(),
        max_concurrent_requests: config.max_concurrent_requests.max(1),
        trust_forwarded_for: config.trust_forwarded_for,
    }
}

/// A bound, not yet serving, HTTP server (with its realtime service already following the
/// shards).
pub struct Application {
    listener: TcpListener,
    /// `TROVE_METRICS_LISTEN`: a second listener serving only the operations routes.
    ops: Option<(TcpListener, Router)>,
    send_buffer: usize,
    limits: crate::api::server::ServerLimits,
    router: Router,
    realtime: Realtime,
    metrics: Metrics,
    shutdown: tokio::sync::watch::Sender<bool>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Binds `config.listen` (port 0 picks a free port), builds every service from its own
    /// settings and starts the followers (realtime, leaderboards).
    pub async fn bind(config: &Config, engine: Engine, keys: JwtKeys) -> std::io::Result<Self> {
        raise_fd_limit();
        match engine.shards.register().await {
            Ok(_) => {}
            // Down or not migrated: nothing can be routed until it answers, and `/readyz`
            // says so; the shard list is checked on the next start.
            Err(crate::Error::Unavailable { message, .. }) => {
                tracing::warn!("{message}; serving without checking the shard list")
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        // Seeds still in the clear (from before they were sealed) or under a rotated-out key.
        match engine.seal_seeds().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(seeds = n, "sealed unrevealed seeds"),
            Err(e) => {
                tracing::warn!(error = %e, "sealing unrevealed seeds; trying again at the next start")
            }
        }
        keys.warm().await;
        let listener = TcpListener::bind(config.listen).await?;
        let ops_listener = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let metrics = Metrics::new().map_err(std::io::Error::other)?;
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        engine.shards.watch_groups(watch.clone());
        let redis = match config.redis() {
            Some(settings) => Some(Redis::new(&settings).map_err(std::io::Error::other)?),
            None => {
                tracing::info!("TROVE_REDIS_URL is unset: leaderboards and rate limits are off");
                None
            }
        };
        let leaderboards = redis.clone().map(|r| {
            let boards = leaderboards(config, r, engine.shards.clone());
            boards.start(watch.clone());
            boards
        });
        let realtime = Realtime::start(
            engine.shards.clone(),
            config.realtime(),
            watch,
            metrics.clone(),
        )
        .await;
        let state = AppState::new(Services {
            engine,
            keys,
            realtime: realtime.clone(),
            limiter: RateLimiter::new(config.rate_limits(), redis.clone()),
            leaderboards,
            redis,
            metrics: metrics.clone(),
            verifications: tokio::sync::Semaphore::new(1),
            ws_addresses: crate::api::WsAddresses {
                open: Default::default(),
                cap: config.ws_max_per_ip,
                trust_forwarded_for: config.trust_forwarded_for,
                trusted_proxies: config.server.trusted_proxies.clone(),
            },
        });
        Ok(Application {
            listener,
            ops: ops_listener.map(|l| (l, ops_router(state.clone()))),
            send_buffer: config.tcp_send_buffer,
            limits: crate::api::server::ServerLimits {
                header_read_timeout: config.server.header_read_timeout(),
                keep_alive_idle: config.server.keep_alive_idle(),
                max_header_bytes: usize::try_from(config.server.max_header_bytes)
                    .unwrap_or(usize::MAX),
                per_address: usize::try_from(config.server.max_connections_per_ip)
                    .unwrap_or(usize::MAX),
                trusted_proxies: config.server.trusted_proxies.clone(),
            },
            router: router(state, &http_settings(config)),
            realtime,
            metrics,
            shutdown,
            shutdown_timeout: config.shutdown_timeout(),
        })
    }

    /// This instance's metrics (for tests and benchmarks).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// The address of the `TROVE_METRICS_LISTEN` listener, if there is one.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The realtime service (connection counts, for tests and metrics).
    pub fn realtime(&self) -> Realtime {
        self.realtime.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes every WebSocket with a
    /// close frame (1001) and lets in-flight requests finish, for at most
    /// `TROVE_SHUTDOWN_TIMEOUT_MS` in all. A claim is acknowledged only after it committed,
    /// so one cut off at the bound was never acknowledged (and an idempotent retry is safe).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let signal = self.shutdown;
        let mut stopping = signal.subscribe();
        let send_buffer = self.send_buffer;
        let tap = move |tcp: &tokio::net::TcpStream| {
            // Events are small and latency-bound: no Nagle delay.
            let _ = tcp.set_nodelay(true);
            if send_buffer > 0 {
                set_send_buffer(tcp, send_buffer);
            }
        };
        let main =
            crate::api::server::serve(self.listener, self.router, self.limits, tap, async move {
                shutdown.await;
                // Tells every WebSocket to close with 1001 and the followers to stop.
                let _ = signal.send(true);
            });
        let ops_part = self.ops;
        let mut ops_stopping = stopping.clone();
        let ops = async move {
            let Some((listener, router)) = ops_part else {
                return Ok(());
            };
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = ops_stopping.wait_for(|s| *s).await;
                })
                .await
        };
        let bound = self.shutdown_timeout;
        let deadline = async move {
            let _ = stopping.wait_for(|s| *s).await;
            let at = tokio::time::Instant::now() + bound;
            tokio::time::sleep_until(at).await;
            at
        };
        tokio::pin!(deadline);
        let result = tokio::select! {
            (main, ops) = async { tokio::join!(main, ops) } => main.and(ops),
            _ = &mut deadline => {
                tracing::warn!(?bound, "shutdown bound reached with requests still in flight; exiting");
                return Ok(());
            }
        };
        // Whatever is left of the bound goes to WebSockets finishing their close handshake.
        tokio::select! {
            _ = self.realtime.drained(bound) => {}
            _ = &mut deadline => {}
        }
        result
    }
}

/// Caps a socket's kernel send buffer (SO_SNDBUF).
fn set_send_buffer(tcp: &tokio::net::TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a socket we own, with a c_int option value and its exact size.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Raises the open-file limit to the hard limit: each WebSocket holds a socket (the tests
/// and the load tool, with thousands of sockets in one process, call it too).
pub fn raise_fd_limit() {
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Human-readable lines, or one JSON object per line (`TROVE_LOG_FORMAT=json`) carrying the
/// request span's fields (request id, route) for log pipelines. Level from `RUST_LOG`. Logs
/// go to stderr; stdout has only what a person asked for (URLs, tokens, reports).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
