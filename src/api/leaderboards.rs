//! Leaderboard reads: the top of a board, and one player's standing.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Path, Query};
use super::AppState;
use crate::auth::{valid_player_id, Caller};
use crate::error::Error;
use crate::leaderboards::{Board, Leaderboards, PlayerStanding};
use crate::zones::validate_zone_name;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/leaderboards/{board}", get(top))
        .route("/v1/leaderboards/{board}/players/{player}", get(standing))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopQuery {
    zone: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StandingQuery {
    zone: Option<String>,
}

const MAX_LIMIT: usize = 1000;

fn boards(state: &AppState) -> Result<&Leaderboards, ApiError> {
    state.leaderboards.as_ref().ok_or_else(|| {
        ApiError::from(Error::Unavailable {
            code: "leaderboard_unavailable",
            message: "leaderboards are off (TROVE_REDIS_URL is unset)".into(),
        })
    })
}

fn zone(z: &Option<String>) -> Result<Option<&str>, ApiError> {
    if let Some(z) = z {
        validate_zone_name(z)?;
    }
    Ok(z.as_deref())
}

async fn top(
    State(state): State<AppState>,
    _caller: Caller,
    Path(board): Path<String>,
    Query(q): Query<TopQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let board = Board::parse(&board)?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let entries = boards(&state)?.top(board, zone(&q.zone)?, limit).await?;
    let mut body = json!({"board": board.name(), "entries": entries});
    if let Some(z) = &q.zone {
        body["zone"] = json!(z);
    }
    Ok(axum::Json(body))
}

async fn standing(
    State(state): State<AppState>,
    _caller: Caller,
    Path((board, player)): Path<(String, String)>,
    Query(q): Query<StandingQuery>,
) -> Result<axum::Json<PlayerStanding>, ApiError> {
    let board = Board::parse(&board)?;
    if !valid_player_id(&player) {
        return Err(ApiError::bad_request(
            "invalid_player",
            "player ids are 1-64 of [A-Za-z0-9_-]",
        ));
    }
    Ok(axum::Json(
        boards(&state)?
            .standing(board, zone(&q.zone)?, &player)
            .await?,
    ))
}
