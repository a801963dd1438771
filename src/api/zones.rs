//! Zone routes: spawn chests, zone totals, reveal, list chests.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::AppState;
use crate::auth::Caller;
use crate::zones::{ChestPage, ChestState, RevealResult, SpawnResult, ZoneView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/zones/{zone}", get(zone))
        .route("/v1/zones/{zone}/chests", post(spawn).get(chests))
        .route("/v1/zones/{zone}/reveal", post(reveal))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnBody {
    count: i64,
    loot_table: String,
    /// Marks probe zones, kept out of leaderboards.
    #[serde(default)]
    synthetic: bool,
}

async fn spawn(
    State(state): State<AppState>,
    caller: Caller,
    Path(zone): Path<String>,
    Json(body): Json<SpawnBody>,
) -> Result<(StatusCode, axum::Json<SpawnResult>), ApiError> {
    caller.require_admin()?;
    let spawned = state
        .engine
        .spawn(&zone, body.count, &body.loot_table, body.synthetic)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(spawned)))
}

async fn zone(
    State(state): State<AppState>,
    _caller: Caller,
    Path(zone): Path<String>,
) -> Result<axum::Json<ZoneView>, ApiError> {
    Ok(axum::Json(state.engine.zone(&zone).await?))
}

async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path(zone): Path<String>,
) -> Result<axum::Json<RevealResult>, ApiError> {
    caller.require_admin()?;
    Ok(axum::Json(state.engine.reveal(&zone).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChestQuery {
    state: Option<ChestState>,
    limit: Option<i64>,
    after: Option<i64>,
}

pub const MAX_PAGE: i64 = 1000;

async fn chests(
    State(state): State<AppState>,
    _caller: Caller,
    Path(zone): Path<String>,
    Query(q): Query<ChestQuery>,
) -> Result<axum::Json<ChestPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("invalid_query", "after must be >= 0"));
    }
    Ok(axum::Json(
        state.engine.chests(&zone, q.state, after, limit).await?,
    ))
}
