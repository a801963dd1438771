//! Zone routes: list zones, spawn chests, zone totals, reveal, list chests, epoch
//! transcripts, verify a zone.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{audit, audited};
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::error::Error;
use crate::verify::VerifyReport;
use crate::zones::{ChestPage, ChestState, RevealResult, SpawnResult, ZoneList, ZoneView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(zone))
        .routes(routes!(verify))
        .routes(routes!(spawn, chests))
        .routes(routes!(reveal))
        .routes(routes!(transcript))
        .routes(routes!(delete_synthetic))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CleanupQuery {
    /// Delete synthetic zones created more than this many seconds ago (default 3600, at
    /// most ten years).
    #[param(minimum = 0, maximum = 315_360_000)]
    older_than_secs: Option<i64>,
}

#[derive(serde::Serialize, ToSchema)]
struct CleanupResult {
    /// Synthetic zones deleted, over all shards.
    deleted: u64,
}

/// Delete old synthetic (fairness probe) zones with all their chests and claims. Real zones
/// are never deleted. Admin only; the probe calls it after its retention period.
#[utoipa::path(delete, path = "/v1/synthetic-zones", tag = "zones",
    params(CleanupQuery),
    responses(
        (status = 200, description = "How many synthetic zones were deleted", body = CleanupResult),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
async fn delete_synthetic(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CleanupQuery>,
) -> Result<axum::Json<CleanupResult>, ApiError> {
    let audit = audit(&caller, "delete_synthetic_zones");
    let deleted = audited(&state, &audit, async {
        caller.require_admin()?;
        let secs = q.older_than_secs.unwrap_or(3600);
        if !(0..=315_360_000).contains(&secs) {
            return Err(Error::invalid(
                "invalid_query",
                "older_than_secs must be 0 to 315360000",
            ));
        }
        let before = chrono::Utc::now() - chrono::Duration::seconds(secs);
        state.engine.delete_synthetic_zones(before, &audit).await
    })
    .await?;
    Ok(axum::Json(CleanupResult { deleted }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SpawnBody {
    /// Chests to add, 1 to 1,000,000 per call.
    #[schema(minimum = 1, maximum = 1_000_000)]
    count: i64,
    /// The loot table whose latest version the new chests keep.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
    loot_table: String,
    /// Marks probe zones, kept out of leaderboards.
    #[serde(default)]
    synthetic: bool,
}

/// Spawn chests in a zone (created on first spawn). Admin only. One bulk insert: a million
/// chests take seconds.
#[utoipa::path(post, path = "/v1/zones/{zone}/chests", tag = "zones",
    params(("zone" = String, Path, example = "meadow", description = "Zone name, `^[a-z0-9][a-z0-9_.:-]{0,63}$`", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")),
    request_body = SpawnBody,
    responses(
        (status = 201, description = "Chests spawned", body = SpawnResult),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "`loot_table_not_found`", body = ErrorBody),
    ))]
async fn spawn(
    State(state): State<AppState>,
    caller: Caller,
    Path(zone): Path<String>,
    Json(body): Json<SpawnBody>,
) -> Result<(StatusCode, axum::Json<SpawnResult>), ApiError> {
    let audit = audit(&caller, "spawn").zone(&zone).target(&body.loot_table);
    let spawned = audited(&state, &audit, async {
        caller.require_admin()?;
        let engine = &state.engine;
        engine
            .spawn(&zone, body.count, &body.loot_table, body.synthetic, &audit)
            .await
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(spawned)))
}

/// A zone's totals and seed commitments (O(1) in zone size).
#[utoipa::path(get, path = "/v1/zones/{zone}", tag = "zones",
    params(("zone" = String, Path, example = "meadow", description = "Zone name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")),
    responses(
        (status = 200, description = "The zone", body = ZoneView),
        (status = 404, description = "`zone_not_found`", body = ErrorBody),
    ))]
async fn zone(
    State(state): State<AppState>,
    _caller: Caller,
    Path(zone): Path<String>,
) -> Result<axum::Json<ZoneView>, ApiError> {
    Ok(axum::Json(state.engine.zone(&zone).await?))
}

/// Every claim of a revealed seed epoch, streamed as NDJSON: a header (zone, epoch, draw
/// version, the seed and its commitment), one line per claim by player and nonce (the claim's
/// fields and its receipt `leaf`), and a trailer `{claims, digest, key_id, signature}` (README
/// "Provably fair draws"). A transcript without its trailer was cut off.
#[utoipa::path(get, path = "/v1/zones/{zone}/epochs/{epoch}/transcript", tag = "zones",
    params(
        ("zone" = String, Path, example = "meadow", description = "Zone name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"),
        ("epoch" = i32, Path, example = 1, description = "Seed epoch", minimum = 1),
    ),
    responses(
        (status = 200, description = "The transcript, one JSON object per line", content_type = "application/x-ndjson", body = String),
        (status = 404, description = "`zone_not_found` or `epoch_not_found`", body = ErrorBody),
        (status = 409, description = "`epoch_not_revealed`: its transcript comes with the reveal", body = ErrorBody),
    ))]
async fn transcript(
    State(state): State<AppState>,
    _caller: Caller,
    Path((zone, epoch)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let epoch = epoch
        .parse::<i32>()
        .ok()
        .filter(|e| *e >= 1)
        .ok_or_else(|| {
            ApiError::bad_request("invalid_epoch", "seed epochs are positive integers")
        })?;
    let lines = state.engine.transcript(&zone, epoch).await?;
    let body = futures_util::stream::unfold(lines, |mut lines| async move {
        let line = lines.recv().await?;
        Some((line.map(|l| l + "\n"), lines))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Reveal the zone's current server seed (check it against its commitment); later claims
/// draw from a new epoch with a new commitment. Admin only.
#[utoipa::path(post, path = "/v1/zones/{zone}/reveal", tag = "zones",
    params(("zone" = String, Path, example = "meadow", description = "Zone name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")),
    responses(
        (status = 200, description = "The revealed seed and the next commitment", body = RevealResult),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "`zone_not_found`", body = ErrorBody),
    ))]
async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path(zone): Path<String>,
) -> Result<axum::Json<RevealResult>, ApiError> {
    let audit = audit(&caller, "reveal").zone(&zone);
    let revealed = audited(&state, &audit, async {
        caller.require_admin()?;
        state.engine.reveal(&zone, &audit).await
    })
    .await?;
    Ok(axum::Json(revealed))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ChestQuery {
    /// Only chests in this state (default: both).
    state: Option<ChestState>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Chests with ids above this (the previous page's `next`; default 0).
    #[param(minimum = 0)]
    after: Option<i64>,
}

pub const MAX_PAGE: i64 = 1000;

/// A listing's page size: 1 to [`MAX_PAGE`], 100 when not given.
pub(super) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// A listing's `after` that is a name (zones, loot tables): at most 64 characters.
pub(super) fn name_cursor(after: Option<String>) -> Result<String, ApiError> {
    let after = after.unwrap_or_default();
    if after.len() > 64 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "after is a name, at most 64 characters",
        ));
    }
    Ok(after)
}

/// A zone's chests in id order, one keyset page at a time.
#[utoipa::path(get, path = "/v1/zones/{zone}/chests", tag = "zones",
    params(("zone" = String, Path, example = "meadow", description = "Zone name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"), ChestQuery),
    responses(
        (status = 200, description = "A page of chests", body = ChestPage),
        (status = 404, description = "`zone_not_found`", body = ErrorBody),
    ))]
async fn chests(
    State(state): State<AppState>,
    _caller: Caller,
    Path(zone): Path<String>,
    Query(q): Query<ChestQuery>,
) -> Result<axum::Json<ChestPage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("invalid_query", "after must be >= 0"));
    }
    Ok(axum::Json(
        state.engine.chests(&zone, q.state, after, limit).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ZoneListQuery {
    /// Zones named after this one (the previous page's `next`; default: from the start).
    #[param(max_length = 64)]
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only synthetic (fairness probe) zones, or only real ones (default: both).
    synthetic: Option<bool>,
}

/// Every zone of the deployment in name order, one keyset page at a time, gathered from
/// every shard, with its totals (no chest is counted). Admin only.
#[utoipa::path(get, path = "/v1/zones", tag = "zones",
    params(ZoneListQuery),
    responses(
        (status = 200, description = "A page of zones", body = ZoneList),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "A shard is down: the listing would be partial", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ZoneListQuery>,
) -> Result<axum::Json<ZoneList>, ApiError> {
    caller.require_admin()?;
    let limit = page_limit(q.limit)?;
    let after = name_cursor(q.after)?;
    Ok(axum::Json(
        state.engine.list_zones(&after, limit, q.synthetic).await?,
    ))
}

/// Replays every claim of the zone from its ledger and seeds, as `trove verify` does: each
/// draw against the recorded loot, each player's nonces, each seed against its commitment
/// (the first 1,000 problems of each kind listed, all counted). One verification runs at a
/// time per instance; a zone too large to replay within the request timeout is for
/// `trove verify`. Admin only.
#[utoipa::path(post, path = "/v1/zones/{zone}/verify", tag = "zones",
    params(("zone" = String, Path, example = "meadow", description = "Zone name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")),
    responses(
        (status = 200, description = "What the replay found (`clean`: nothing)", body = VerifyReport),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "`zone_not_found`", body = ErrorBody),
        (status = 429, description = "`verify_busy`: another verification is running here", body = ErrorBody),
    ))]
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path(zone): Path<String>,
) -> Result<axum::Json<VerifyReport>, ApiError> {
    caller.require_admin()?;
    let _turn = state.verifications.try_acquire().map_err(|_| {
        ApiError::http(
            StatusCode::TOO_MANY_REQUESTS,
            "verify_busy",
            "another verification is running on this instance; try again when it ends",
        )
    })?;
    Ok(axum::Json(state.engine.verify(&zone).await?))
}
