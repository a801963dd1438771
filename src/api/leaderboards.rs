//! Leaderboard reads: the top of a board, and one player's standing.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Path, Query};
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::error::Error;
use crate::leaderboards::{Board, Entry, Leaderboards, PlayerStanding};
use crate::names::validate_player_id;
use crate::names::validate_zone_name;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(top))
        .routes(routes!(standing))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TopQuery {
    /// A zone's board instead of the global one.
    #[param(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
    zone: Option<String>,
    /// Entries, 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StandingQuery {
    /// A zone's board instead of the global one.
    #[param(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
    zone: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct BoardPage {
    #[schema(value_type = String)]
    board: &'static str,
    /// Present for a zone's board.
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    entries: Vec<Entry>,
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

/// The top of a board: `chests` (chests opened) or `loot_value` (points by rarity).
#[utoipa::path(get, path = "/v1/leaderboards/{board}", tag = "leaderboards",
    params(("board" = String, Path, example = "chests", description = "`chests` or `loot_value`", pattern = "^(chests|loot_value)$"), TopQuery),
    responses(
        (status = 200, description = "The board's top entries", body = BoardPage),
        (status = 503, description = "`leaderboard_unavailable`: Redis is off or unreachable", body = ErrorBody),
    ))]
async fn top(
    State(state): State<AppState>,
    _caller: Caller,
    Path(board): Path<String>,
    Query(q): Query<TopQuery>,
) -> Result<axum::Json<BoardPage>, ApiError> {
    let board = Board::parse(&board)?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let entries = boards(&state)?.top(board, zone(&q.zone)?, limit).await?;
    Ok(axum::Json(BoardPage {
        board: board.name(),
        zone: q.zone,
        entries,
    }))
}

/// One player's rank and score on a board, with the few entries around it.
#[utoipa::path(get, path = "/v1/leaderboards/{board}/players/{player}", tag = "leaderboards",
    params(
        ("board" = String, Path, example = "chests", description = "`chests` or `loot_value`", pattern = "^(chests|loot_value)$"),
        ("player" = String, Path, example = "demo-player", description = "Player id", pattern = r"^[A-Za-z0-9_-]{1,64}$"),
        StandingQuery,
    ),
    responses(
        (status = 200, description = "The player's standing", body = PlayerStanding),
        (status = 404, description = "`player_not_ranked`", body = ErrorBody),
        (status = 503, description = "`leaderboard_unavailable`", body = ErrorBody),
    ))]
async fn standing(
    State(state): State<AppState>,
    _caller: Caller,
    Path((board, player)): Path<(String, String)>,
    Query(q): Query<StandingQuery>,
) -> Result<axum::Json<PlayerStanding>, ApiError> {
    let board = Board::parse(&board)?;
    validate_player_id(&player)?;
    Ok(axum::Json(
        boards(&state)?
            .standing(board, zone(&q.zone)?, &player)
            .await?,
    ))
}
