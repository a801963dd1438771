//! The HTTP API (axum): every axum type in Trove lives here (and in `app`, which serves it).
//! Each route module exposes its own `router()`; this module groups them by rate-limit class
//! and puts them together with authentication, the limits and the JSON error shape.

pub mod addresses;
mod audit;
mod auth;
mod body;
pub use body::DISCARD_BOUND;
mod claims;
mod console;
pub mod error;
mod extract;
mod gate;
mod leaderboards;
mod limits;
mod loot_tables;
pub mod observe;
pub mod openapi;
mod ops;
mod players;
pub mod server;
mod shards;
mod ws;
mod zones;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use auth::TokenSources;

use crate::auth::JwtKeys;
use crate::engine::Engine;
use crate::leaderboards::Leaderboards;
use crate::metrics::Metrics;
use crate::ratelimit::{Class, RateLimiter};
use crate::redis_client::Redis;

/// The realtime service as the API serves it: frames are axum's own text type, built once
/// per event and handed to every socket as they are.
pub type Realtime = crate::realtime::Realtime<Utf8Bytes>;

/// What every handler can reach. Cloned by every layer and extractor of every request, so a
/// clone is one reference count (the services' own clones cost one per field).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind `AppState`.
pub struct Services {
    pub engine: Engine,
    pub keys: JwtKeys,
    pub realtime: Realtime,
    pub limiter: RateLimiter,
    /// None without Redis: leaderboard reads answer 503.
    pub leaderboards: Option<Leaderboards>,
    /// None without Redis; `/readyz` reports it.
    pub redis: Option<Redis>,
    pub metrics: Metrics,
    /// One zone verification at a time (`POST /v1/zones/{zone}/verify` replays a whole zone).
    pub verifications: Semaphore,
    /// WebSockets held per client address (`TROVE_WS_MAX_PER_IP`).
    pub ws_addresses: WsAddresses,
}

/// The per-address WebSocket cap: it holds without Redis (the per-player connect rate
/// needs Redis), and counts the address behind a trusted proxy, not the proxy.
pub struct WsAddresses {
    pub open: Arc<addresses::PerAddress>,
    /// WebSockets one address may hold open (0: no cap).
    pub cap: usize,
    /// `TROVE_TRUST_FORWARDED_FOR`: the address is the last X-Forwarded-For hop.
    pub trust_forwarded_for: bool,
    /// A proxy's own connection (no forwarded address) is not capped.
    pub trusted_proxies: Vec<server::Cidr>,
}

/// The HTTP layers of the `/v1` routes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest accepted request body, in bytes (larger: 413).
    pub body_limit: usize,
    /// Whole-request timeout (exceeded: 408).
    pub request_timeout: Duration,
    /// Requests served at once; more get 503 `overloaded` at once.
    pub max_concurrent_requests: usize,
    /// Key the per-IP limit on the last X-Forwarded-For address (behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

/// The routes by rate-limit class, plus the operations routes.
struct Groups {
    claims: Router<AppState>,
    reads: Router<AppState>,
    ws: Router<AppState>,
    ops: Router<AppState>,
}

/// Every route group, and the OpenAPI description of all of them, built from the same
/// annotated handlers so the description cannot drift from the routes.
fn routes() -> (Groups, OpenApi) {
    let mut doc = openapi::base();
    let mut part = |router: OpenApiRouter<AppState>| {
        let (router, part) = router.split_for_parts();
        doc.merge(part);
        router
    };
    let reads = part(
        OpenApiRouter::new()
            .merge(loot_tables::router())
            .merge(zones::router())
            .merge(players::router())
            .merge(shards::router())
            .merge(audit::router())
            .merge(leaderboards::router()),
    );
    let groups = Groups {
        claims: part(claims::router()),
        reads,
        ws: part(ws::router()),
        ops: part(ops::router()),
    };
    openapi::finish(&mut doc);
    (groups, doc)
}

/// The OpenAPI 3 description of the whole HTTP API (served at `/openapi.json`).
pub fn openapi() -> OpenApi {
    routes().1
}

/// The whole router with its layers. From the outside in: request id, span, metrics and the
/// JSON error shape (`observe`); panics caught; then, for `/v1` only, the request timeout,
/// the gate of the route's group (the concurrency cap, the early 413 of an oversized body,
/// authentication with one verification per request, the rate limit) and the body limit.
/// Operations routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) skip all of that
/// so an overloaded instance still answers its probes.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let (groups, doc) = routes();
    let permits = Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1)));
    // Each group's layers go on as one stack: a route wrapped layer by layer is a chain of
    // boxed services that every request clones, and each `from_fn` layer clones its inner
    // chain again (~90 allocations a claim for these layers; one stack of plain structs
    // behind a single box costs a few, and the gate is one plain service, not four).
    let group = |router: Router<AppState>, class: Class, sources: TokenSources| {
        let gate = gate::Gate {
            permits: Arc::clone(&permits),
            body_limit: settings.body_limit,
            auth: auth::Authenticator {
                keys: state.keys.clone(),
                sources,
            },
            limit: limits::Limit {
                state: state.clone(),
                class,
                trust_forwarded_for: settings.trust_forwarded_for,
            },
        };
        router.layer(
            ServiceBuilder::new()
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                ))
                .layer(gate::GateLayer(Arc::new(gate)))
                .layer(DefaultBodyLimit::max(settings.body_limit)),
        )
    };
    let api = group(groups.claims, Class::Claims, TokenSources::Header)
        .merge(group(groups.reads, Class::Reads, TokenSources::Header))
        .merge(group(groups.ws, Class::Ws, TokenSources::HeaderOrQuery));
    with_observe(api.merge(groups.ops).merge(console::router()), state, doc)
}

/// Only the operations routes, for `TROVE_METRICS_LISTEN`.
pub fn ops_router(state: AppState) -> Router {
    let (groups, doc) = routes();
    with_observe(groups.ops, state, doc)
}

fn with_observe(routes: Router<AppState>, state: AppState, doc: OpenApi) -> Router {
    let metrics = state.metrics.clone();
    routes.with_state(state).layer(
        ServiceBuilder::new()
            .layer(observe::ObserveLayer(metrics))
            .layer(CatchPanicLayer::new())
            .layer(axum::Extension(Arc::new(doc))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths (with methods) a group serves, from its part of the description.
    fn paths(router: OpenApiRouter<AppState>) -> Vec<String> {
        let doc = router.split_for_parts().1;
        let mut out = Vec::new();
        for (path, item) in doc.paths.paths {
            for (method, op) in [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put)]
                .into_iter()
                .chain([("DELETE", &item.delete)])
            {
                if op.is_some() {
                    out.push(format!("{method} {path}"));
                }
            }
        }
        out
    }

    #[test]
    fn claims_and_websockets_have_groups_of_their_own() {
        assert_eq!(
            paths(claims::router()),
            [
                "POST /v1/zones/{zone}/chests/{chest_id}/claim",
                "POST /v1/zones/{zone}/claims"
            ]
        );
        assert_eq!(paths(ws::router()), ["GET /v1/ws"]);
        assert!(paths(ops::router()).iter().all(|p| !p.contains("/v1/")));
    }
}
