//! The HTTP API (axum). Each route module exposes its own `router()`; this module puts them
//! together with the limits and the JSON error shape, and binds before serving so tests can
//! run the real app on port 0.

mod claims;
pub mod error;
mod extract;
mod leaderboards;
mod loot_tables;
mod players;
mod zones;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::engine::Engine;
use crate::leaderboards::Leaderboards;
use crate::ratelimit::RateLimiter;
use crate::realtime::Realtime;
use crate::redis_client::Redis;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: JwtKeys,
    pub realtime: Realtime,
    pub limiter: RateLimiter,
    /// None without Redis: leaderboard reads answer 503.
    pub leaderboards: Option<Leaderboards>,
}

/// The whole router with its layers.
pub fn router(state: AppState, config: &Config) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/ws", get(crate::realtime::ws::upgrade))
        .merge(loot_tables::router())
        .merge(zones::router())
        .merge(claims::router())
        .merge(players::router())
        .merge(leaderboards::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::middleware,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .layer(CatchPanicLayer::new())
}

/// Liveness: the process serves requests. (Readiness of the shards is `trove shards`.)
async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// How long shutdown waits for WebSocket connections to close.
const WS_DRAIN: Duration = Duration::from_secs(5);

/// A bound, not yet serving, HTTP server (with its realtime service already following the
/// shards).
pub struct Application {
    listener: TcpListener,
    send_buffer: usize,
    router: Router,
    realtime: Realtime,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Binds `config.listen` (port 0 picks a free port) and starts the realtime followers.
    pub async fn bind(config: &Config, engine: Engine, keys: JwtKeys) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        let redis = Redis::from_config(config).map_err(std::io::Error::other)?;
        let leaderboards = redis.clone().map(|r| {
            let boards = Leaderboards::new(
                r,
                engine.shards.clone(),
                config.rarity_scores.clone(),
                Duration::from_millis(config.leaderboard_poll_ms.max(10)),
            );
            boards.start(watch.clone());
            boards
        });
        if redis.is_none() {
            tracing::info!("TROVE_REDIS_URL is unset: leaderboards and rate limits are off");
        }
        let realtime = Realtime::start(engine.shards.clone(), config, watch).await;
        let state = AppState {
            engine,
            keys,
            realtime: realtime.clone(),
            limiter: RateLimiter::new(config, redis),
            leaderboards,
        };
        Ok(Application {
            listener,
            send_buffer: config.tcp_send_buffer,
            router: router(state, config),
            realtime,
            shutdown,
        })
    }

    /// The realtime service (connection counts, for tests and metrics).
    pub fn realtime(&self) -> Realtime {
        self.realtime.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes every WebSocket with a
    /// close frame (1001) and finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let signal = self.shutdown;
        let send_buffer = self.send_buffer;
        let listener = axum::serve::ListenerExt::tap_io(self.listener, move |tcp| {
            // Events are small and latency-bound: no Nagle delay.
            let _ = tcp.set_nodelay(true);
            if send_buffer > 0 {
                set_send_buffer(tcp, send_buffer);
            }
        });
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Tells every WebSocket to close with 1001 and the followers to stop.
                let _ = signal.send(true);
            })
            .await;
        self.realtime.drained(WS_DRAIN).await;
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

/// Raises the open-file limit to the hard limit: each WebSocket holds a socket.
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
