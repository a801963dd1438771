//! `PUT /v1/loot-tables/{name}` (admin) and `GET /v1/loot-tables/{name}`.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Json, Path};
use super::AppState;
use crate::auth::Caller;
use crate::loot::LootTableSpec;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/loot-tables/{name}", get(latest).put(put))
}

async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(spec): Json<LootTableSpec>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require_admin()?;
    let version = state.engine.put_loot_table(&name, &spec).await?;
    Ok(axum::Json(json!({ "name": name, "version": version })))
}

async fn latest(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let t = state.engine.latest_loot_table(&name).await?;
    Ok(axum::Json(json!({
        "name": t.name,
        "version": t.version,
        "rolls": t.spec.rolls,
        "entries": t.spec.entries,
    })))
}
