//! The OpenAPI 3 description. Paths come from the handlers' `#[utoipa::path]` annotations,
//! on the same functions the router serves; this module adds what every route shares: the
//! bearer auth scheme, the error shape, and the status codes any `/v1` route can answer with
//! (401, 408, 429, 503 …), so each handler documents only its own.

use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi as Doc, Ref, RefOr, Response, ResponseBuilder, Type,
};
use utoipa::{OpenApi, ToSchema};

/// Every error response: `{"error": "snake_code", "message": "...", "request_id": "..."}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// Stable snake_case code to switch on, e.g. `zone_exhausted`.
    pub error: &'a str,
    /// Human-readable explanation.
    pub message: &'a str,
    /// The request's id, also sent as `X-Request-Id` and logged with the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trove",
        description = "Transactional loot engine: players open treasure chests; no chest is \
            ever opened twice and no acknowledged claim is lost. Every /v1 route takes \
            `Authorization: Bearer <JWT>` (HS256; `sub` = player id, `role` = player|admin).",
        license(name = "MIT")
    ),
    // Schemas only reached through query parameters are not collected by the paths.
    components(schemas(ErrorBody, crate::zones::ChestState)),
    tags(
        (name = "claims", description = "Opening chests"),
        (name = "zones", description = "Zones, chests and seed commitments"),
        (name = "loot tables", description = "Weighted loot tables (admin)"),
        (name = "players", description = "A player's history across all shards"),
        (name = "leaderboards", description = "Boards kept in Redis, rebuilt from the ledger"),
        (name = "realtime", description = "WebSocket fan-out of chest changes"),
        (name = "operations", description = "Health, readiness, metrics, this description")
    )
)]
struct ApiDoc;

/// The document the routers add their paths to.
pub(super) fn base() -> Doc {
    ApiDoc::openapi()
}

/// Adds the shared parts once every path is in.
pub(super) fn finish(doc: &mut Doc) {
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            shared_responses(op);
        }
    }
}

/// What every `/v1` operation may answer besides its own responses.
fn shared_responses(op: &mut Operation) {
    op.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    let mut add = |code: &str, response: Response| {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert(RefOr::T(response));
    };
    add(
        "400",
        error("Bad input (path, query, body or header); nothing changed"),
    );
    add("401", error("Missing, malformed, forged or expired token"));
    add(
        "408",
        error("The request took longer than TROVE_REQUEST_TIMEOUT_MS"),
    );
    add(
        "429",
        with_retry_after(error(
            "Over a rate limit (`rate_limited`); retry after Retry-After seconds",
        )),
    );
    add(
        "503",
        with_retry_after(error(
            "`shard_unavailable`, `zone_moving`, `shard_unknown`, `overloaded` or `rate_limiter_unavailable`; retry later",
        )),
    );
    add(
        "500",
        error("`internal_error`: a bug or a database fault, logged with the request id"),
    );
    if op.request_body.is_some() {
        add("413", error("Body over TROVE_BODY_LIMIT"));
        add("415", error("Body is not application/json"));
    }
}

/// An error response in the one JSON shape.
pub(super) fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn with_retry_after(mut response: Response) -> Response {
    response.headers.insert(
        "Retry-After".to_owned(),
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some("Seconds to wait before retrying"))
            .build(),
    );
    response
}
