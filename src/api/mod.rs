//! The HTTP API (axum). Each route module exposes its own `router()`; this module puts them
//! together with the limits and the JSON error shape, and binds before serving so tests can
//! run the real app on port 0.

mod claims;
pub mod error;
mod extract;
mod loot_tables;
mod players;
mod zones;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::engine::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: JwtKeys,
}

/// The whole router with its layers.
pub fn router(state: AppState, config: &Config) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(loot_tables::router())
        .merge(zones::router())
        .merge(claims::router())
        .merge(players::router())
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

/// A bound, not yet serving, HTTP server.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `config.listen` (port 0 picks a free port).
    pub async fn bind(config: &Config, state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Application {
            listener,
            router: router(state, config),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
