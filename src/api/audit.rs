//! The audit log over HTTP: `GET /v1/audit` (admin), and [`audited`], which every admin
//! route's handler runs its work through so a refused or failed call leaves its row too.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::Query;
use super::openapi::ErrorBody;
use super::AppState;
use crate::audit::{decode_cursor, Audit, AuditPage};
use crate::auth::Caller;
use crate::error::Result;
use crate::names::validate_zone_name;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The audit row of an admin call about to run, named after the caller and this request.
pub fn audit(caller: &Caller, action: &'static str) -> Audit {
    let id = super::observe::current_request_id();
    Audit::new(caller, action, id.as_deref())
}

/// Runs an admin call's work: the work writes its `ok` row in its own transaction; when it
/// fails (refused, bad input, not found, a shard fault) the error's code is recorded instead,
/// then returned to the caller as it was.
pub async fn audited<T>(
    state: &AppState,
    audit: &Audit,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T, ApiError> {
    match work.await {
        Ok(v) => Ok(v),
        Err(e) => {
            state
                .engine
                .audit_refusal(audit, e.code(), &e.to_string())
                .await;
            Err(e.into())
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only this zone's entries.
    zone: Option<String>,
    /// Entries from this time on (RFC 3339; default: all).
    since: Option<DateTime<Utc>>,
    /// The previous page's `next`.
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The audit log, oldest first: every admin change and every refused or failed attempt at
/// one (who, when, what, the request id, the outcome), gathered from every shard in keyset
/// pages. Append-only: no route changes it. Admin only.
#[utoipa::path(get, path = "/v1/audit", tag = "operations",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    caller.require_admin()?;
    let limit = super::zones::page_limit(q.limit)?;
    if let Some(z) = &q.zone {
        validate_zone_name(z)?;
    }
    let after = q.after.as_deref().map(decode_cursor).transpose()?;
    let since = q.since.unwrap_or(DateTime::UNIX_EPOCH);
    Ok(axum::Json(
        state
            .engine
            .audit_log(q.zone.as_deref(), since, after, limit)
            .await?,
    ))
}
