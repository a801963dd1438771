//! `GET /v1/ws`: the WebSocket upgrade. The connection itself is a `realtime` session; this
//! edge checks the caller and the connection cap, sets the socket's limits, and adapts axum's
//! socket to the session's own frames (protocol: `realtime::protocol`, README "Realtime").

use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::addresses::Counted;
use super::error::ApiError;
use super::limits::client_addr;
use super::openapi::ErrorBody;
use super::AppState;
use crate::auth::Caller;
use crate::realtime::{Incoming, Outgoing};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// Upgrade to a WebSocket that streams chest changes of the zones the client subscribes to
/// (protocol: README, "Realtime"). Browsers, which cannot set headers on WebSockets, pass the
/// token as `?token=`.
#[utoipa::path(get, path = "/v1/ws", tag = "realtime",
    params(("token" = Option<String>, Query, description = "The bearer token, for clients that cannot set headers")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 405, description = "Not a GET", body = ErrorBody),
        (status = 426, description = "`websocket_upgrade_required`: not a WebSocket handshake", body = ErrorBody),
        (status = 429, description = "`rate_limited` (retry after Retry-After seconds), or `too_many_connections` from this client address (`TROVE_WS_MAX_PER_IP`)", body = ErrorBody),
        (status = 503, description = "`too_many_connections` on this instance", body = ErrorBody),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws =
        ws.map_err(|e| ApiError::http(e.status(), "websocket_upgrade_required", e.body_text()))?;
    let slot = address_slot(&state, &headers, peer.map(|p| p.0 .0))?;
    let rt = state.realtime.clone();
    // The connection lasts as long as its token: closed (1008) when it expires.
    let left = caller
        .expires_at
        .saturating_sub(chrono::Utc::now().timestamp());
    let until = tokio::time::Instant::now()
        + std::time::Duration::from_secs(u64::try_from(left).unwrap_or(0).min(10 * 366 * 86400));
    let permit = rt.admit().ok_or_else(|| {
        ApiError::http(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "this instance is at TROVE_WS_MAX_CONNECTIONS",
        )
    })?;
    let max = rt.max_message();
    Ok(ws
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            let sink = sink.with(|out| std::future::ready(Ok::<_, axum::Error>(to_axum(out))));
            let stream = stream.map(from_axum);
            rt.serve(permit, sink, stream, until).await;
            drop(slot);
        }))
}

/// A place for one more WebSocket from the caller's address, or 429 at `TROVE_WS_MAX_PER_IP`.
fn address_slot(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Option<Counted>, ApiError> {
    let cap = &state.ws_addresses;
    if cap.cap == 0 {
        return Ok(None);
    }
    let peer_ip = peer.map(|p| p.ip().to_canonical());
    let from_proxy = peer_ip.is_some_and(|ip| cap.trusted_proxies.iter().any(|c| c.contains(ip)));
    // With proxies named, only theirs is a forwarded address to believe.
    let trust = cap.trust_forwarded_for && (from_proxy || cap.trusted_proxies.is_empty());
    let Some(ip) = client_addr(headers, peer, trust).map(|ip| ip.to_canonical()) else {
        return Ok(None);
    };
    if from_proxy && Some(ip) == peer_ip {
        return Ok(None);
    }
    cap.open.admit(ip, cap.cap).map(Some).ok_or_else(|| {
        ApiError::http(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!(
                "{ip} holds TROVE_WS_MAX_PER_IP ({}) WebSockets already",
                cap.cap
            ),
        )
    })
}

/// A session's frame as axum's message; the text is handed over as it is (no copy).
fn to_axum(out: Outgoing<Utf8Bytes>) -> Message {
    match out {
        Outgoing::Text(text) => Message::Text(text),
        Outgoing::Ping => Message::Ping(Default::default()),
        Outgoing::Close { code, reason } => Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })),
    }
}

/// What the client sent, as the session's frame.
fn from_axum(frame: Result<Message, axum::Error>) -> Incoming<Utf8Bytes> {
    match frame {
        Ok(Message::Text(text)) => Incoming::Text(text),
        Ok(Message::Binary(_)) => Incoming::Binary,
        Ok(Message::Close(_)) => Incoming::Closed,
        Ok(Message::Ping(_) | Message::Pong(_)) => Incoming::Heartbeat,
        Err(e) => {
            // tungstenite reports "Space limit exceeded: Message too long".
            let text = e.to_string().to_lowercase();
            if text.contains("too long") || text.contains("limit exceeded") {
                Incoming::TooBig
            } else {
                Incoming::Failed
            }
        }
    }
}
