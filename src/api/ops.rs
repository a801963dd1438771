//! Operations routes: liveness, readiness, Prometheus metrics and the OpenAPI description.
//! None of them needs a token, and they are outside the rate and concurrency limits so an
//! overloaded instance still answers its probes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;
use utoipa::openapi::OpenApi;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::AppState;
use crate::claims::SentTotals;
use crate::error::Error;
use crate::metrics::Sample;
use crate::shards::{ShardReadiness, ShardSet};

/// How long `/readyz` waits for each shard.
const READY_BOUND: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(receipt_keys))
}

#[derive(Serialize, ToSchema)]
pub struct ReceiptKeyList {
    /// The current key first; retired keys still verify the receipts they signed.
    keys: Vec<crate::receipts::PublicKey>,
}

/// The public keys claim receipts are signed with, by `key_id` (README "Provably fair draws").
#[utoipa::path(get, path = "/.well-known/trove-keys.json", tag = "operations",
    responses((status = 200, description = "Receipt keys", body = ReceiptKeyList)))]
async fn receipt_keys(State(state): State<AppState>) -> axum::Json<ReceiptKeyList> {
    axum::Json(ReceiptKeyList {
        keys: state.engine.receipts.public_keys(),
    })
}

/// This description: OpenAPI 3.1, generated from the handlers the router serves.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "The OpenAPI description of every route", body = Object)))]
async fn openapi_json(Extension(doc): Extension<Arc<OpenApi>>) -> axum::Json<OpenApi> {
    axum::Json((*doc).clone())
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness: the process serves requests. Says nothing about the shards (see `/readyz`).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every shard is reachable and migrated, else `not_ready`.
    status: &'static str,
    shards: Vec<ShardReadiness>,
    redis: RedisReadiness,
}

/// Redis is reported but never required: Trove works without it.
#[derive(Serialize, ToSchema)]
pub struct RedisReadiness {
    /// `up`, `down` or `disabled` (`TROVE_REDIS_URL` unset).
    status: &'static str,
    required: bool,
}

/// Readiness: 200 when every shard answers and carries this binary's migrations; 503 (same
/// body) when any does not. Redis is reported, not required.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Every shard is reachable and migrated", body = Readiness),
    (status = 503, description = "Some shard is down or not migrated", body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let (shards, redis) = tokio::join!(state.engine.shards.readiness(READY_BOUND), async {
        match &state.redis {
            None => "disabled",
            Some(r) if r.ping().await => "up",
            Some(_) => "down",
        }
    });
    let ready = shards.iter().all(|s| s.status == "up");
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        shards,
        redis: RedisReadiness {
            status: redis,
            required: false,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics of this instance (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format",
     content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render(sample(&state).map_err(metrics_error)?)
        .map_err(metrics_error)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn metrics_error(e: prometheus::Error) -> ApiError {
    ApiError::from(Error::Internal(format!("rendering metrics: {e}")))
}

/// The gauges, and the counters other modules keep, read at scrape time.
fn sample(state: &AppState) -> Result<Sample, prometheus::Error> {
    let mut s = Sample::default();
    s.gauge(
        "trove_build_info",
        "Always 1; the labels say which Trove this is.",
        &["version"],
        vec![(vec![env!("CARGO_PKG_VERSION").to_owned()], 1.0)],
    )?;
    let up = state.engine.shards.all().iter().map(|shard| {
        let v = if shard.is_up() { 1.0 } else { 0.0 };
        (vec![shard.index.to_string()], v)
    });
    s.gauge(
        "trove_shard_up",
        "1 while the shard answers, 0 while it is marked down.",
        &["shard"],
        up.collect(),
    )?;
    let shards = state.engine.shards.all();
    let hosts = shards.iter().flat_map(|shard| {
        let primary = shard.primary_host();
        shard.host_names().into_iter().map(move |host| {
            let v = if host == primary { 1.0 } else { 0.0 };
            (vec![shard.index.to_string(), host.to_owned()], v)
        })
    });
    s.gauge(
        "trove_shard_primary",
        "1 for the host a shard's writes go to (its primary, as last found), 0 for its others.",
        &["shard", "host"],
        hosts.collect(),
    )?;
    s.counters(
        "trove_shard_failovers_total",
        "Times a shard's primary was found on another host than before.",
        &["shard"],
        shards
            .iter()
            .map(|shard| (vec![shard.index.to_string()], shard.failovers()))
            .collect(),
    )?;
    let lags = shards.iter().flat_map(|shard| {
        let shard_label = shard.index.to_string();
        shard
            .standby_lags()
            .into_iter()
            .map(move |(host, lag)| (vec![shard_label.clone(), host], lag as f64))
    });
    s.gauge(
        "trove_shard_standby_lag_bytes",
        "WAL bytes a replicated shard's standby has yet to replay (sampled every second).",
        &["shard", "host"],
        lags.collect(),
    )?;
    let synchronous = shards.iter().filter_map(|shard| {
        let v = if shard.synchronous()? { 1.0 } else { 0.0 };
        Some((vec![shard.index.to_string()], v))
    });
    s.gauge(
        "trove_shard_synchronous",
        "1 while a replicated shard's primary makes commits wait for a standby; 0 while it commits alone (degraded: an acknowledged claim may be lost in a failover).",
        &["shard"],
        synchronous.collect(),
    )?;
    s.counters(
        "trove_shard_degraded_total",
        "Times a replicated shard's primary was seen to stop waiting for a standby.",
        &["shard"],
        shards
            .iter()
            .filter(|shard| shard.host_names().len() > 1)
            .map(|shard| (vec![shard.index.to_string()], shard.degradations()))
            .collect(),
    )?;
    s.counters(
        "trove_shard_standby_reads_total",
        "Reads (zone totals, chest listings) a replicated shard's standby served (TROVE_READ_REPLICA_STALENESS_MS).",
        &["shard"],
        shards
            .iter()
            .filter(|shard| shard.host_names().len() > 1)
            .map(|shard| (vec![shard.index.to_string()], shard.standby_reads()))
            .collect(),
    )?;
    pool_gauges(
        &mut s,
        &[
            ("api", &state.engine.shards),
            ("claims", &state.engine.claim_shards),
            ("realtime", &state.realtime.shards),
        ],
    )?;
    s.gauge(
        "trove_ws_connections",
        "Open WebSocket connections.",
        &[],
        vec![(vec![], state.realtime.connections() as f64)],
    )?;
    s.counter(
        "trove_redis_errors_total",
        "Redis calls that failed or timed out.",
        state.redis.as_ref().map_or(0, |r| r.errors()),
    )?;
    s.counter(
        "trove_rate_limit_fail_open_total",
        "Requests let through because Redis could not be asked (fail open).",
        state.limiter.fail_open.load(Ordering::Relaxed),
    )?;
    s.counter(
        "trove_rate_limit_fail_closed_total",
        "Requests refused with 503 because Redis could not be asked (fail closed).",
        state.limiter.refused_closed.load(Ordering::Relaxed),
    )?;
    let sent = state.engine.claim_statements();
    fn per_shard<T>(sent: &[SentTotals], pick: fn(&SentTotals) -> T) -> Vec<(Vec<String>, T)> {
        let rows = sent.iter().enumerate();
        rows.map(|(i, v)| (vec![i.to_string()], pick(v))).collect()
    }
    s.counters(
        "trove_claim_statements_total",
        "Claim statements sent to each shard (each a batch of claims, one round trip and commit).",
        &["shard"],
        per_shard(&sent, |v| v.statements),
    )?;
    s.counters(
        "trove_claim_statement_claims_total",
        "Claims carried by those statements: divided by trove_claim_statements_total, the mean batch.",
        &["shard"],
        per_shard(&sent, |v| v.claims),
    )?;
    s.seconds(
        "trove_claim_statement_seconds_total",
        "Wall time of those statements, from asking for a connection to the answer: divided by trove_claim_statements_total, the mean statement.",
        &["shard"],
        per_shard(&sent, |v| v.statement_seconds),
    )?;
    s.seconds(
        "trove_claim_wait_seconds_total",
        "Time claims waited in their shard's queue for a statement: divided by trove_claim_statement_claims_total, the mean wait.",
        &["shard"],
        per_shard(&sent, |v| v.waited_seconds),
    )?;
    s.counter(
        "trove_token_verifications_total",
        "Bearer tokens verified (valid or not): one per request that sent a token.",
        state.keys.verifications(),
    )?;
    s.counter(
        "trove_token_cache_hits_total",
        "Token verifications answered from the cache of verified tokens.",
        state.keys.cache_hits(),
    )?;
    s.counter(
        "trove_jwks_reads_total",
        "Reads of the identity provider's key set (TROVE_JWKS), successful or not.",
        state.keys.jwks_reads(),
    )?;
    s.counter(
        "trove_rate_limited_total",
        "Requests refused with 429 rate_limited.",
        state.limiter.limited.load(Ordering::Relaxed),
    )?;
    if let Some(boards) = &state.leaderboards {
        s.gauge(
            "trove_leaderboard_lag_seconds",
            "How far the leaderboards trail the newest ledger row they have applied.",
            &[],
            vec![(
                vec![],
                boards.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            )],
        )?;
    }
    Ok(s)
}

/// Open (idle or in use), maximum and waiting connections of each pool of each shard.
fn pool_gauges(s: &mut Sample, pools: &[(&str, &ShardSet)]) -> Result<(), prometheus::Error> {
    let (mut open, mut max, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    for (pool, set) in pools {
        for shard in set.all() {
            let st = shard.pool_stats();
            let labels = vec![shard.index.to_string(), (*pool).to_owned()];
            let in_use = st.open.saturating_sub(st.idle as u32);
            for (state, n) in [("idle", st.idle as f64), ("in_use", f64::from(in_use))] {
                let mut l = labels.clone();
                l.push(state.to_owned());
                open.push((l, n));
            }
            max.push((labels.clone(), f64::from(st.max)));
            waiting.push((labels, st.waiting as f64));
        }
    }
    s.gauge(
        "trove_db_pool_connections",
        "Open connections per shard pool, idle or in use.",
        &["shard", "pool", "state"],
        open,
    )?;
    s.gauge(
        "trove_db_pool_max_connections",
        "Configured size of each shard pool.",
        &["shard", "pool"],
        max,
    )?;
    s.gauge(
        "trove_db_pool_waiting",
        "Requests waiting for a connection from each shard pool.",
        &["shard", "pool"],
        waiting,
    )
}
