//! `GET /v1/players/{player}/claims`: a player's history across all shards; a player's
//! client seed in a zone (`/v1/zones/{zone}/players/{player}/client-seed`).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::claims::{ClientSeed, HistoryCursor, HistoryPage};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(get_client_seed, put_client_seed))
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ClientSeedBody {
    /// 0-64 printable ASCII characters without spaces ("" clears it).
    #[schema(example = "my-lucky-seed-42")]
    client_seed: String,
}

/// A player's client seed in a zone and the nonce their next claim there draws with. Players
/// read their own; admins anyone's.
#[utoipa::path(get, path = "/v1/zones/{zone}/players/{player}/client-seed", tag = "players",
    params(("zone" = String, Path, example = "meadow"), ("player" = String, Path, example = "demo-player")),
    responses(
        (status = 200, description = "The client seed (\"\" when none is set)", body = ClientSeed),
        (status = 403, description = "Another player's", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
    ))]
async fn get_client_seed(
    State(state): State<AppState>,
    caller: Caller,
    Path((zone, player)): Path<(String, String)>,
) -> Result<axum::Json<ClientSeed>, ApiError> {
    caller.require_self_or_admin(&player)?;
    Ok(axum::Json(state.engine.client_seed(&zone, &player).await?))
}

/// Sets a player's client seed in a zone: it enters the draw of their every claim there from
/// the next one on (`trove/claim/v2`), so a seed set after the epoch's commitment was
/// published cannot have been chosen against.
#[utoipa::path(put, path = "/v1/zones/{zone}/players/{player}/client-seed", tag = "players",
    params(("zone" = String, Path, example = "meadow"), ("player" = String, Path, example = "demo-player")),
    request_body = ClientSeedBody,
    responses(
        (status = 200, description = "Set", body = ClientSeed),
        (status = 400, description = "Not a valid client seed", body = ErrorBody),
        (status = 403, description = "Another player's", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
        (status = 503, description = "The zone is moving to another shard (Retry-After)", body = ErrorBody),
    ))]
async fn put_client_seed(
    State(state): State<AppState>,
    caller: Caller,
    Path((zone, player)): Path<(String, String)>,
    Json(body): Json<ClientSeedBody>,
) -> Result<axum::Json<ClientSeed>, ApiError> {
    caller.require_self_or_admin(&player)?;
    Ok(axum::Json(
        state
            .engine
            .set_client_seed(&zone, &player, &body.client_seed)
            .await?,
    ))
}
