//! Claim routes: open any chest in a zone, or one given chest.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::time::Instant;

use super::error::{status_of, ApiError};
use super::extract::{OptionalJson, Path};
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::{Caller, Role};
use crate::claims::{Claim, ClaimOutcome};
use crate::error::Error;
use crate::receipts::Receipt;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(claim_any))
        .routes(routes!(claim_chest))
}

/// A claim as answered: the ledger's record, and the server's signed receipt for it (README
/// "Provably fair draws": recompute `receipt.leaf` from the claim's fields, follow `path` to
/// `root`, check `signature` with the key `key_id` names at `/.well-known/trove-keys.json`).
#[derive(Serialize, ToSchema)]
struct ClaimAnswer {
    #[serde(flatten)]
    claim: Claim,
    receipt: Receipt,
}

/// The answer's JSON, as `#[serde(flatten)]` writes it but without its detour through a map
/// of every field: the claim's object, then `"receipt"` appended to it, written into one
/// buffer sized for a whole answer.
fn answer_json(answer: &ClaimAnswer) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(2048);
    let fail = |e: serde_json::Error| Error::Internal(format!("encoding a claim: {e}"));
    serde_json::to_writer(&mut out, &answer.claim).map_err(fail)?;
    if out.pop() != Some(b'}') || out.len() < 2 {
        return Err(Error::Internal(
            "a claim must encode as a non-empty object".into(),
        ));
    }
    out.extend_from_slice(b",\"receipt\":");
    answer.receipt.write_json(&mut out);
    out.push(b'}');
    Ok(out)
}

/// Optional body: admins may claim on behalf of a player; a player may only name itself.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    /// Whose claim this is (default: the token's player).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    player: Option<String>,
}

/// Claim a random unopened chest in a zone. Send `Idempotency-Key` to retry safely: a retry
/// returns the first answer (200, `Idempotent-Replayed: true`) and never opens a second chest.
#[utoipa::path(post, path = "/v1/zones/{zone}/claims", tag = "claims",
    params(
        ("zone" = String, Path, example = "meadow", description = "Zone name, `^[a-z0-9][a-z0-9_.:-]{0,63}$`", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII, unique per player and zone", pattern = r"^[!-~]{1,255}$"),
    ),
    request_body(content = Option<ClaimBody>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 201, description = "A chest was opened", body = ClaimAnswer),
        (status = 200, description = "Replay of an earlier claim with the same Idempotency-Key", body = ClaimAnswer,
         headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 403, description = "A player claiming as another player", body = ErrorBody),
        (status = 404, description = "`zone_not_found`", body = ErrorBody),
        (status = 409, description = "`zone_exhausted`: no unopened chest is left", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused` for a different request", body = ErrorBody),
    ))]

async fn claim_any(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(zone): Path<String>,
    OptionalJson(body): OptionalJson<ClaimBody>,
) -> Result<Response, ApiError> {
    claim(state, caller, headers, zone, None, body).await
}

/// Claim one given chest.
#[utoipa::path(post, path = "/v1/zones/{zone}/chests/{chest_id}/claim", tag = "claims",
    params(
        ("zone" = String, Path, example = "meadow", description = "Zone name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"),
        ("chest_id" = i64, Path, example = 1, description = "Chest id (1-based)", minimum = 1),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII, unique per player and zone", pattern = r"^[!-~]{1,255}$"),
    ),
    request_body(content = Option<ClaimBody>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 201, description = "The chest was opened", body = ClaimAnswer),
        (status = 200, description = "Replay of an earlier claim with the same Idempotency-Key", body = ClaimAnswer,
         headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 403, description = "A player claiming as another player", body = ErrorBody),
        (status = 404, description = "`zone_not_found` or `chest_not_found`", body = ErrorBody),
        (status = 409, description = "`chest_already_opened`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused` for a different chest", body = ErrorBody),
    ))]
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
    let started = Instant::now();
    let result = open(&state, &caller, &headers, &zone, &player, chest).await;
    let (outcome, answered) = match &result {
        Ok(o) if o.replayed => ("replayed", true),
        Ok(_) => ("opened", true),
        Err(Error::ZoneExhausted(_)) => ("zone_exhausted", true),
        Err(Error::ChestAlreadyOpened { .. }) => ("chest_already_opened", true),
        Err(Error::ZoneNotFound(_) | Error::ChestNotFound { .. }) => ("not_found", true),
        Err(Error::ShardUnavailable { .. }) => ("shard_unavailable", false),
        Err(Error::Unavailable {
            code: "zone_moving",
            ..
        }) => ("zone_moving", false),
        Err(e) if status_of(e).is_client_error() => ("rejected", false),
        Err(_) => ("error", false),
    };
    // Latency only of claims the shard answered: fast refusals would flatter it.
    let seconds = answered.then(|| started.elapsed().as_secs_f64());
    let synthetic = state.engine.is_synthetic(&zone);
    let shard = state.engine.shards.zone_shard_label(&zone);
    state.metrics.claim(outcome, shard, seconds, synthetic);
    let outcome = result?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let answer = ClaimAnswer {
        claim: outcome.claim,
        receipt: outcome.receipt,
    };
    let json = HeaderValue::from_static("application/json");
    let body = answer_json(&answer)?;
    let mut resp = (status, [(header::CONTENT_TYPE, json)], body).into_response();
    if outcome.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

async fn open(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    zone: &str,
    player: &str,
    chest: Option<i64>,
) -> Result<ClaimOutcome, Error> {
    caller.require_self_or_admin(player)?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| {
            Error::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key must be printable ASCII",
            )
        })?),
        None => None,
    };
    // Recorded with the claim, so a player can see every claim made in their name.
    let authorised_by = match caller.role {
        Role::Player => "player".to_owned(),
        Role::Admin => format!("admin:{}", caller.player),
    };
    state
        .engine
        .claim(zone, player, chest, key, &authorised_by)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_byte_for_byte_what_flatten_writes() {
        let claim = Claim {
            claim_id: uuid::Uuid::now_v7(),
            zone: "meadow \"north\"".into(),
            chest_id: 42,
            player: "p-1".into(),
            loot: serde_json::json!([{"item": "gold", "qty": 3, "rarity": "common"}]),
            opened_at: chrono::Utc::now(),
            seed_epoch: 2,
            loot_table: "starter".into(),
            loot_table_version: 1,
            nonce: Some(7),
            client_seed: None,
            authorised_by: Some("admin:ops".into()),
        };
        let keys = crate::receipts::ReceiptKeys::generate().expect("keys");
        let receipt = keys.sign_one([7; 32]);
        let answer = ClaimAnswer { claim, receipt };
        let body = answer_json(&answer).expect("encode");
        assert_eq!(body, serde_json::to_vec(&answer).expect("flatten"));
    }
}
