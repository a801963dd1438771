//! The HTTP API (axum). Each route module exposes its own `router()`; this module puts them
//! together with the limits and the JSON error shape, and binds before serving so tests can
//! run the real app on port 0.

mod claims;
pub mod error;
mod extract;
mod leaderboards;
mod loot_tables;
pub mod observe;
mod ops;
mod players;
mod zones;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::engine::Engine;
use crate::leaderboards::Leaderboards;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::realtime::Realtime;
use crate::redis_client::Redis;

pub mod openapi;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: JwtKeys,
    pub realtime: Realtime,
    pub limiter: RateLimiter,
    /// None without Redis: leaderboard reads answer 503.
    pub leaderboards: Option<Leaderboards>,
    /// None without Redis; `/readyz` reports it.
    pub redis: Option<Redis>,
    pub metrics: Metrics,
}

/// The `/v1` routes, the operations routes, and the OpenAPI description of both, built
/// from the same annotated handlers so the description cannot drift from the routes.
fn routes() -> (Router<AppState>, Router<AppState>, OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(loot_tables::router())
        .merge(zones::router())
        .merge(claims::router())
        .merge(players::router())
        .merge(leaderboards::router())
        .merge(crate::realtime::ws::router())
        .split_for_parts();
    let (ops, ops_doc) = ops::router().split_for_parts();
    doc.merge(ops_doc);
    openapi::finish(&mut doc);
    (api, ops, doc)
}

/// The OpenAPI 3 description of the whole HTTP API (served at `/openapi.json`).
pub fn openapi() -> OpenApi {
    routes().2
}

/// The whole router with its layers. From the outside in: request id, span, metrics and the
/// JSON error shape (`observe`); panics caught; then, for `/v1` only, the concurrency cap,
/// the request timeout, the body limit and the rate limits. Operations routes (`/healthz`,
/// `/readyz`, `/metrics`, `/openapi.json`) skip the caps so an overloaded instance still
/// answers its probes.
pub fn router(state: AppState, config: &Config) -> Router {
    let (api, ops, doc) = routes();
    let permits = Arc::new(Semaphore::new(config.max_concurrent_requests.max(1)));
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::middleware,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .layer(axum::middleware::from_fn_with_state(
            permits,
            observe::concurrency_limit,
        ));
    with_observe(api.merge(ops), state, doc)
}

/// Only the operations routes, for `TROVE_METRICS_LISTEN`.
fn ops_router(state: AppState) -> Router {
    let (_, ops, doc) = routes();
    with_observe(ops, state, doc)
}

fn with_observe(routes: Router<AppState>, state: AppState, doc: OpenApi) -> Router {
    routes
        .with_state(state.clone())
        .layer(axum::Extension(Arc::new(doc)))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.metrics,
            observe::observe,
        ))
}

/// A bound, not yet serving, HTTP server (with its realtime service already following the
/// shards).
pub struct Application {
    listener: TcpListener,
    /// `TROVE_METRICS_LISTEN`: a second listener serving only the operations routes.
    ops: Option<(TcpListener, Router)>,
    send_buffer: usize,
    router: Router,
    realtime: Realtime,
    metrics: Metrics,
    shutdown: tokio::sync::watch::Sender<bool>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Binds `config.listen` (port 0 picks a free port) and starts the realtime followers.
    pub async fn bind(config: &Config, engine: Engine, keys: JwtKeys) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let ops_listener = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let metrics = Metrics::new().map_err(std::io::Error::other)?;
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
        let realtime = Realtime::start(engine.shards.clone(), config, watch, metrics.clone()).await;
        let state = AppState {
            engine,
            keys,
            realtime: realtime.clone(),
            limiter: RateLimiter::new(config, redis.clone()),
            leaderboards,
            redis,
            metrics: metrics.clone(),
        };
        Ok(Application {
            listener,
            ops: ops_listener.map(|l| (l, ops_router(state.clone()))),
            send_buffer: config.tcp_send_buffer,
            router: router(state, config),
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
        let main = axum::serve(listener, app).with_graceful_shutdown(async move {
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
