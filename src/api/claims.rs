//! Claim routes: open any chest in a zone, or one given chest.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{OptionalJson, Path};
use super::AppState;
use crate::auth::Caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/zones/{zone}/claims", post(claim_any))
        .route(
            "/v1/zones/{zone}/chests/{chest_id}/claim",
            post(claim_chest),
        )
}

/// Optional body: admins may claim on behalf of a player; a player may only name itself.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    player: Option<String>,
}

async fn claim_any(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(zone): Path<String>,
    OptionalJson(body): OptionalJson<ClaimBody>,
) -> Result<Response, ApiError> {
    claim(state, caller, headers, zone, None, body).await
}

async fn claim_chest(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((zone, chest_id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<ClaimBody>,
) -> Result<Response, ApiError> {
    let chest_id: i64 = chest_id.parse().map_err(|_| {
        ApiError::bad_request("invalid_chest_id", "chest ids are positive integers")
    })?;
    claim(state, caller, headers, zone, Some(chest_id), body).await
}

async fn claim(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    zone: String,
    chest: Option<i64>,
    body: ClaimBody,
) -> Result<Response, ApiError> {
    let player = body.player.unwrap_or_else(|| caller.player.clone());
    caller.require_self_or_admin(&player)?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be printable ASCII",
            )
        })?),
        None => None,
    };
    let outcome = state.engine.claim(&zone, &player, chest, key).await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut resp = (status, axum::Json(outcome.claim)).into_response();
    if outcome.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}
