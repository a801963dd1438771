//! `GET /v1/players/{player}/claims`: a player's history across all shards.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Path, Query};
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::claims::{HistoryCursor, HistoryPage};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(history))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The previous page's `next` cursor.
    before: Option<String>,
}

const MAX_PAGE: i64 = 500;

/// A player's claims, newest first, gathered from every shard. Players read their own;
/// admins anyone's.
#[utoipa::path(get, path = "/v1/players/{player}/claims", tag = "players",
    params(("player" = String, Path, example = "demo-player", description = "Player id, 1-64 of [A-Za-z0-9_-]", pattern = r"^[A-Za-z0-9_-]{1,64}$"), HistoryQuery),
    responses(
        (status = 200, description = "A page of claims", body = HistoryPage),
        (status = 403, description = "Another player's history", body = ErrorBody),
    ))]
async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(player): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<HistoryPage>, ApiError> {
    caller.require_self_or_admin(&player)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    let before = q.before.as_deref().map(HistoryCursor::decode).transpose()?;
    Ok(axum::Json(
        state.engine.history(&player, before, limit).await?,
    ))
}
