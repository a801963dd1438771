//! `GET /v1/shards` (admin): every shard's health and contents and the zone moves in
//! progress, what `trove shards` prints, for the console.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::shards::{MoveInProgress, ShardStatus};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(shards))
}

#[derive(Serialize, ToSchema)]
struct ShardsView {
    shards: Vec<ShardStatus>,
    /// Zone moves the catalog records as in progress (empty when the catalog shard is down).
    moves: Vec<MoveInProgress>,
}

/// Every shard: reachable or not, its migration, zones, unopened chests and ledger rows, and
/// for a replicated shard each host's role and lag; and the zone moves in progress. Admin
/// only. A down shard is reported, not an error.
#[utoipa::path(get, path = "/v1/shards", tag = "operations",
    responses(
        (status = 200, description = "Every shard's health", body = ShardsView),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
async fn shards(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<ShardsView>, ApiError> {
    caller.require_admin()?;
    let shards = &state.engine.shards;
    let (statuses, moves) = tokio::join!(shards.status(), shards.moves_in_progress());
    Ok(axum::Json(ShardsView {
        shards: statuses,
        moves: moves.unwrap_or_default(),
    }))
}
