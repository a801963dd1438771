//! `GET /v1/players/{player}/claims`: a player's history across all shards.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Path, Query};
use super::AppState;
use crate::auth::Caller;
use crate::claims::{HistoryCursor, HistoryPage};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/players/{player}/claims", get(history))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<i64>,
    before: Option<String>,
}

const MAX_PAGE: i64 = 500;

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
