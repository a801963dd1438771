//! `PUT /v1/loot-tables/{name}` (admin), `GET /v1/loot-tables/{name}` and the listing
//! `GET /v1/loot-tables` (admin).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{audit, audited};
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::loot::{LootEntry, LootTableSpec};
use crate::loot_tables::TableList;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(latest, put))
}

#[derive(Serialize, ToSchema)]
struct TableVersion {
    name: String,
    /// Versions are immutable: changed content makes a new one; chests keep theirs.
    version: i32,
}

#[derive(Serialize, ToSchema)]
struct TableView {
    name: String,
    version: i32,
    rolls: u8,
    entries: Vec<LootEntry>,
}

/// Store a loot table. Changed content makes a new immutable version; chests already
/// spawned keep the version they were spawned with. Admin only.
#[utoipa::path(put, path = "/v1/loot-tables/{name}", tag = "loot tables",
    params(("name" = String, Path, example = "starter", description = "Table name, `^[a-z0-9][a-z0-9_.:-]{0,63}$`", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$")),
    request_body = LootTableSpec,
    responses(
        (status = 200, description = "The table's current version", body = TableVersion),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(spec): Json<LootTableSpec>,
) -> Result<axum::Json<TableVersion>, ApiError> {
    let audit = audit(&caller, "put_loot_table").target(&name);
    let version = audited(&state, &audit, async {
        caller.require_admin()?;
        state.engine.put_loot_table(&name, &spec, &audit).await
    })
    .await?;
    Ok(axum::Json(TableVersion { name, version }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct VersionQuery {
    /// A version (a claim's `loot_table_version`); default the latest.
    #[param(minimum = 1)]
    version: Option<i32>,
}

/// A loot table: the latest version, or the one asked for (every version is kept, so any
/// claim's draw can be replayed).
#[utoipa::path(get, path = "/v1/loot-tables/{name}", tag = "loot tables",
    params(("name" = String, Path, example = "starter", description = "Table name", pattern = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"), VersionQuery),
    responses(
        (status = 200, description = "The version asked for, or the latest", body = TableView),
        (status = 404, description = "`loot_table_not_found`", body = ErrorBody),
    ))]
async fn latest(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<axum::Json<TableView>, ApiError> {
    if q.version.is_some_and(|v| v < 1) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "version must be >= 1",
        ));
    }
    let t = state.engine.loot_table(&name, q.version).await?;
    Ok(axum::Json(TableView {
        name: t.name,
        version: t.version,
        rolls: t.spec.rolls,
        entries: t.spec.entries,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Tables named after this one (the previous page's `next`; default: from the start).
    #[param(max_length = 64)]
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Every loot table in name order with its newest version, one keyset page at a time.
/// Admin only.
#[utoipa::path(get, path = "/v1/loot-tables", tag = "loot tables",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of loot tables", body = TableList),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<TableList>, ApiError> {
    caller.require_admin()?;
    let limit = super::zones::page_limit(q.limit)?;
    let after = super::zones::name_cursor(q.after)?;
    Ok(axum::Json(
        state.engine.list_loot_tables(&after, limit).await?,
    ))
}
