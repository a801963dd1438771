//! `GET /v1/ws`: one task per connection, reading client ops and writing queued events.
//!
//! Protocol (JSON text frames):
//! - client: `{"op":"subscribe","zones":[…],"since":POSITION?}`, `{"op":"unsubscribe","zones":[…]}`,
//!   `{"op":"ping"}`;
//! - server: `subscribed`, `chest_opened`, `chests_spawned`, `lagged`, `resync` (a shard's tail
//!   started over: fresh snapshots of its zones), `pong`, `error`.
//!
//! Slow clients: each connection has a bounded queue (`TROVE_WS_QUEUE`). When it overflows,
//! the hub skips the connection; once the connection has written out what was queued it sends
//! one `lagged` message with a fresh snapshot and position, and events flow again (resume with
//! `since` to replay what was skipped). A write that stalls for `TROVE_WS_WRITE_TIMEOUT_MS`
//! (default 10 s: the client stopped reading altogether) drops the connection.
//! Close codes: 1001 server shutting down, 1008 no traffic for three ping intervals,
//! 1009 message over `TROVE_WS_MAX_MESSAGE`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use tokio::time::{timeout, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dedupe::ZoneState;
use super::hub::{Event, EventKind, Outbox, Outgoing};
use super::{Cursor, Position, Realtime};
use crate::api::error::ApiError;
use crate::api::openapi::ErrorBody;
use crate::api::AppState;
use crate::auth::Caller;
use crate::error::Error;
use crate::zones::validate_zone_name;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

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
        (status = 503, description = "`too_many_connections` on this instance", body = ErrorBody),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query_token = query.ok().and_then(|q| q.0.token);
    let token = header_token
        .map(str::to_owned)
        .or(query_token)
        .ok_or_else(|| {
            Error::unauthorized(
                "missing_token",
                "send Authorization: Bearer <token> or ?token=<token>",
            )
        })?;
    let caller = state.keys.verify(token.trim())?;
    let ws =
        ws.map_err(|e| ApiError::http(e.status(), "websocket_upgrade_required", e.body_text()))?;
    let rt = state.realtime.clone();
    let permit = Arc::clone(&rt.connections)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::http(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                "this instance is at TROVE_WS_MAX_CONNECTIONS",
            )
        })?;
    let max = rt.limits.max_message;
    Ok(ws
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            Connection::new(rt, caller, permit).run(socket).await;
        }))
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        zones: Vec<String>,
        #[serde(default)]
        since: Option<String>,
    },
    Unsubscribe {
        zones: Vec<String>,
    },
    Ping,
}

enum Flow {
    Continue,
    Close,
}

struct Connection {
    id: u64,
    rt: Realtime,
    /// Subscribed zones and what this connection delivered of each (never twice).
    zones: HashMap<Arc<str>, ZoneState>,
    _caller: Caller,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    fn new(rt: Realtime, caller: Caller, permit: OwnedSemaphorePermit) -> Self {
        Connection {
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            rt,
            zones: HashMap::new(),
            _caller: caller,
            _permit: permit,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(self.rt.limits.queue);
        let lagged = Arc::new(Notify::new());
        self.rt
            .hub
            .join(
                self.id,
                Outbox {
                    tx,
                    lagged: Arc::clone(&lagged),
                },
            )
            .await;
        let mut shutdown = self.rt.shutdown.clone();
        let ping_every = self.rt.limits.ping;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_heard = Instant::now();
        // Why the connection ended, for `trove_ws_clients_closed_total{reason}`; a failed or
        // stalled write unless an arm says otherwise.
        let mut reason = "write_failed";
        loop {
            let flow = tokio::select! {
                _ = shutdown.changed() => {
                    reason = "shutdown";
                    close(&mut socket, 1001, "server shutting down").await;
                    Flow::Close
                }
                frame = socket.recv() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => self.on_text(&mut socket, text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.send_error(&mut socket, "invalid_message", "send JSON text frames").await
                        }
                        Some(Ok(Message::Close(_))) | None => {
                            reason = "client";
                            Flow::Close
                        }
                        Some(Ok(_)) => Flow::Continue, // ping/pong: heard from
                        Some(Err(e)) => {
                            // tungstenite reports "Space limit exceeded: Message too long".
                            let text = e.to_string().to_lowercase();
                            let too_big = text.contains("too long") || text.contains("limit exceeded");
                            reason = "client";
                            if too_big {
                                reason = "message_too_big";
                                close(&mut socket, 1009, "message too big").await;
                            }
                            Flow::Close
                        }
                    }
                }
                Some(first) = rx.recv() => self.write_events(&mut socket, first, &mut rx).await,
                _ = lagged.notified() => self.on_lagged(&mut socket, &mut rx).await,
                _ = ping.tick() => {
                    if last_heard.elapsed() > ping_every * 3 {
                        reason = "idle";
                        close(&mut socket, 1008, "no traffic for three ping intervals").await;
                        Flow::Close
                    } else {
                        self.send(&mut socket, Message::Ping(Default::default())).await
                    }
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        self.rt.hub.leave(self.id).await;
        self.rt.metrics.ws_closed.with_label_values(&[reason]).inc();
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Flow {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let message =
                    format!("expected {{\"op\":\"subscribe\"|\"unsubscribe\"|\"ping\", …}}: {e}");
                return self.send_error(socket, "invalid_message", &message).await;
            }
        };
        match msg {
            ClientMessage::Ping => self.send_json(socket, &json!({"type": "pong"})).await,
            ClientMessage::Unsubscribe { zones } => {
                let zones: Vec<Arc<str>> = zones.iter().map(|z| Arc::from(z.as_str())).collect();
                for z in &zones {
                    self.zones.remove(z);
                }
                self.rt.hub.unsubscribe(self.id, zones.clone()).await;
                let names: Vec<&str> = zones.iter().map(|z| &**z).collect();
                self.send_json(socket, &json!({"type": "unsubscribed", "zones": names}))
                    .await
            }
            ClientMessage::Subscribe { zones, since } => {
                self.on_subscribe(socket, zones, since).await
            }
        }
    }

    async fn on_subscribe(
        &mut self,
        socket: &mut WebSocket,
        zones: Vec<String>,
        since: Option<String>,
    ) -> Flow {
        let mut wanted: Vec<Arc<str>> = Vec::new();
        for z in &zones {
            if validate_zone_name(z).is_err() {
                return self
                    .send_error(socket, "invalid_zone", &format!("{z:?} is not a zone name"))
                    .await;
            }
            if !wanted.iter().any(|w| &**w == z) {
                wanted.push(Arc::from(z.as_str()));
            }
        }
        if wanted.is_empty() {
            return self
                .send_error(socket, "invalid_message", "zones must not be empty")
                .await;
        }
        let after: HashSet<&Arc<str>> = self.zones.keys().chain(wanted.iter()).collect();
        if after.len() > self.rt.limits.max_zones {
            let message = format!(
                "a connection may watch at most {} zones",
                self.rt.limits.max_zones
            );
            return self.send_error(socket, "too_many_zones", &message).await;
        }
        let since = match since
            .map(|s| Position::decode(&s, self.rt.shards.len()))
            .transpose()
        {
            Ok(s) => s,
            Err(e) => return self.send_error(socket, e.code(), &e.to_string()).await,
        };
        if let Some(since) = &since {
            // A position from another instance may be ahead of this one's tail. Waiting a
            // moment lets the replay cover it and keeps `position` no older than `since`;
            // if the tail stays behind, dedupe still drops what the client has.
            let shards: Vec<usize> = self.by_shard(&wanted).into_keys().collect();
            self.rt.hub.reached(since, &shards, SINCE_WAIT).await;
        }
        let Some(now) = self.rt.hub.subscribe(self.id, wanted.clone()).await else {
            return Flow::Close;
        };
        for z in &wanted {
            let shard = self.rt.shards.for_zone(z).index;
            self.zones
                .entry(Arc::clone(z))
                .or_insert_with(|| ZoneState::new(shard, now.0[shard]));
        }
        let mut resumed = None;
        let mut at = now.clone();
        if let Some(since) = &since {
            for z in &wanted {
                if let Some(state) = self.zones.get_mut(z) {
                    state.declare(since.0[state.shard]);
                }
            }
            resumed = match self.replay(socket, &wanted, since, &now).await {
                Ok(Replay::Done) => Some(true),
                Ok(Replay::TooWide) => Some(false),
                Ok(Replay::Closed) => return Flow::Close,
                Err(e) => return self.send_error(socket, e.code(), &e.to_string()).await,
            };
            // Events up to `since` are never sent again, so the snapshot counts them even
            // where this instance's tail has not reached them yet.
            for (a, s) in at.0.iter_mut().zip(&since.0) {
                *a = (*a).max(*s);
            }
        }
        let snapshot = match self.snapshot(&wanted, &at).await {
            Ok(s) => s,
            Err(e) => return self.send_error(socket, e.code(), &e.to_string()).await,
        };
        for z in &wanted {
            if let Some(state) = self.zones.get_mut(z) {
                state.rebase(at.0[state.shard]);
            }
        }
        let mut msg = json!({"type": "subscribed", "zones": snapshot, "position": now.encode()});
        if let Some(r) = resumed {
            msg["resumed"] = json!(r);
        }
        self.send_json(socket, &msg).await
    }

    /// Writes one queued event and whatever else is queued, with a single flush; drops events
    /// the client already has (see `dedupe`).
    async fn write_events(
        &mut self,
        socket: &mut WebSocket,
        first: Outgoing,
        rx: &mut mpsc::Receiver<Outgoing>,
    ) -> Flow {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(out) = next {
            match out {
                Outgoing::Event { zone, cursor, json } => {
                    // Also drops events of a zone unsubscribed a moment ago.
                    if self
                        .zones
                        .get_mut(&zone)
                        .is_some_and(|z| z.take_live(cursor))
                    {
                        match timeout(
                            self.rt.limits.write_timeout,
                            socket.feed(Message::Text(json)),
                        )
                        .await
                        {
                            Ok(Ok(())) => {}
                            _ => return Flow::Close,
                        }
                        n += 1;
                    }
                }
                Outgoing::Resync { shard, position } => {
                    // In order: what was fed before goes out with the resync message.
                    self.rt.metrics.ws_messages_sent.inc_by(n);
                    n = 0;
                    if let Flow::Close = self.on_resync(socket, shard, &position).await {
                        return Flow::Close;
                    }
                }
            }
            next = if n < 64 { rx.try_recv().ok() } else { None };
        }
        match timeout(self.rt.limits.write_timeout, socket.flush()).await {
            Ok(Ok(())) => {
                self.rt.metrics.ws_messages_sent.inc_by(n);
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    /// The queue overflowed: write out what it holds, resubscribe, and send one `lagged`.
    /// The gap between what was written and the new position is what a `since` resume
    /// replays.
    async fn on_lagged(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<Outgoing>,
    ) -> Flow {
        self.rt.metrics.ws_lagged.inc();
        while let Ok(out) = rx.try_recv() {
            if let Flow::Close = self.write_events(socket, out, rx).await {
                return Flow::Close;
            }
        }
        let zones: Vec<Arc<str>> = self.zones.keys().cloned().collect();
        let Some(now) = self.rt.hub.subscribe(self.id, zones.clone()).await else {
            return Flow::Close;
        };
        for state in self.zones.values_mut() {
            state.rebase(now.0[state.shard]);
        }
        let snapshot = self
            .snapshot_retrying(&zones, &now)
            .await
            .unwrap_or_default();
        let msg = json!({
            "type": "lagged",
            "message": "events were skipped because this connection read too slowly; resume with since to replay them",
            "zones": snapshot,
            "position": now.encode(),
        });
        self.send_json(socket, &msg).await
    }

    /// A shard's follower started over: fresh snapshots of this connection's zones on it.
    async fn on_resync(&mut self, socket: &mut WebSocket, shard: usize, at: &Position) -> Flow {
        let zones: Vec<Arc<str>> = self
            .zones
            .iter()
            .filter(|(_, s)| s.shard == shard)
            .map(|(z, _)| Arc::clone(z))
            .collect();
        if zones.is_empty() {
            return Flow::Continue;
        }
        let snapshot = match self.snapshot_retrying(&zones, at).await {
            Ok(s) => s,
            Err(e) => {
                let message = format!(
                    "could not resync after shard {shard} came back ({e}); subscribe again"
                );
                return self.send_error(socket, e.code(), &message).await;
            }
        };
        for z in &zones {
            if let Some(state) = self.zones.get_mut(z) {
                state.rebase(at.0[shard]);
            }
        }
        let msg = json!({
            "type": "resync",
            "message": "the ledger tail of these zones' shard started over; events before position may be missing, so here is a fresh snapshot",
            "zones": snapshot,
            "position": at.encode(),
        });
        self.send_json(socket, &msg).await
    }

    /// `snapshot`, retried for a few seconds while the shard is marked down: right after a
    /// shard comes back its pool may still be waiting for the probe that revives it.
    async fn snapshot_retrying(
        &self,
        zones: &[Arc<str>],
        at: &Position,
    ) -> Result<Vec<Value>, Error> {
        let mut tries = 0;
        loop {
            match self.snapshot(zones, at).await {
                Err(Error::ShardUnavailable { .. }) if tries < SNAPSHOT_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(SNAPSHOT_RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    /// Zone totals as of `at`, from each zone's shard.
    async fn snapshot(&self, zones: &[Arc<str>], at: &Position) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for (shard_index, names) in self.by_shard(zones) {
            let shard = &self.rt.shards.all()[shard_index];
            let c = at.0[shard_index];
            let rows = sqlx::query_file!(
                "sql/zone_snapshot.sql",
                &names[..],
                c.xid,
                c.zone_id,
                c.chest_id
            )
            .fetch_all(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))?;
            for name in &names {
                let (total, opened) = rows
                    .iter()
                    .find(|r| &r.zone == name)
                    .map_or((0, 0), |r| (r.total, r.opened));
                out.push(json!({"zone": name, "total": total, "opened": opened, "remaining": total - opened}));
            }
        }
        Ok(out)
    }

    /// Sends the `chest_opened` events of `zones` after `since` up to `now` that the client
    /// does not have yet, oldest first per shard, each with its own position. Nothing is sent
    /// when the gap on some shard is wider than the replay window, or reaches back past what
    /// this connection can still tell apart (`TooWide`: a snapshot is sent instead). Reads
    /// and writes one bounded page at a time under a `replays` permit, so memory stays
    /// bounded however many clients resume.
    async fn replay(
        &mut self,
        socket: &mut WebSocket,
        zones: &[Arc<str>],
        since: &Position,
        now: &Position,
    ) -> Result<Replay, Error> {
        if zones.iter().any(|z| {
            self.zones
                .get(z)
                .is_some_and(|s| !s.replayable(since.0[s.shard]))
        }) {
            return Ok(Replay::TooWide);
        }
        // Measure every shard's gap before sending anything: a replay is all or nothing.
        let window = self.rt.limits.replay_window;
        let mut gaps = Vec::new();
        for (shard_index, names) in self.by_shard(zones) {
            let (from, to) = (since.0[shard_index], now.0[shard_index]);
            if from >= to {
                continue;
            }
            let shard = &self.rt.shards.all()[shard_index];
            let scanned = sqlx::query_file_scalar!(
                "sql/replay_count.sql",
                from.xid,
                from.zone_id,
                from.chest_id,
                to.xid,
                to.zone_id,
                to.chest_id,
                window
            )
            .fetch_one(&mut *shard.acquire().await?)
            .await
            .map_err(|e| shard.db_error(e))?;
            if scanned >= window {
                return Ok(Replay::TooWide);
            }
            gaps.push((shard_index, names, from, to));
        }
        // Then page through each gap, writing every page out before reading the next.
        let mut pos = since.clone();
        for (shard_index, names, from, to) in gaps {
            let shard = Arc::clone(&self.rt.shards.all()[shard_index]);
            let mut after = from;
            loop {
                let _permit = Arc::clone(&self.rt.replays)
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("the replay semaphore closed".into()))?;
                let rows = sqlx::query_file!(
                    "sql/replay_claims.sql",
                    &names[..],
                    after.xid,
                    after.zone_id,
                    after.chest_id,
                    to.xid,
                    to.zone_id,
                    to.chest_id,
                    REPLAY_PAGE
                )
                .fetch_all(&mut *shard.acquire().await?)
                .await
                .map_err(|e| shard.db_error(e))?;
                let Some(first) = rows.first() else {
                    break;
                };
                after = Cursor {
                    xid: first.last_xid,
                    zone_id: first.last_zone_id,
                    chest_id: first.last_chest_id,
                };
                let mut frames = Vec::with_capacity(rows.len());
                for r in rows {
                    let (
                        Some(xid),
                        Some(zone_id),
                        Some(zone),
                        Some(chest_id),
                        Some(claim_id),
                        Some(opened_at),
                    ) = (
                        r.xid,
                        r.zone_id,
                        r.zone,
                        r.chest_id,
                        r.claim_id,
                        r.opened_at,
                    )
                    else {
                        continue; // a page with none of these zones' claims
                    };
                    let cursor = Cursor {
                        xid,
                        zone_id,
                        chest_id,
                    };
                    if !self
                        .zones
                        .get_mut(zone.as_str())
                        .is_some_and(|s| s.take_replayed(cursor))
                    {
                        continue;
                    }
                    pos.0[shard_index] = cursor;
                    let event = Event {
                        cursor,
                        zone: zone.into(),
                        kind: EventKind::Opened {
                            chest_id,
                            player: r.player.unwrap_or_default(),
                            rarity: r.loot.as_ref().and_then(super::follower::best_rarity),
                            opened_at,
                            claim_id,
                        },
                    };
                    frames.push(Utf8Bytes::from(event.to_json(&pos)));
                }
                if let Flow::Close = self.write_page(socket, frames).await {
                    return Ok(Replay::Closed);
                }
            }
            pos.0[shard_index] = to;
        }
        for z in zones {
            if let Some(state) = self.zones.get_mut(z) {
                state.replayed(now.0[state.shard]);
            }
        }
        Ok(Replay::Done)
    }

    /// Writes one replay page with a single flush. The whole page must go out within the
    /// write timeout: it holds a replay permit, which a slow reader must not keep.
    async fn write_page(&self, socket: &mut WebSocket, frames: Vec<Utf8Bytes>) -> Flow {
        let n = frames.len() as u64;
        let write = async {
            for text in frames {
                socket.feed(Message::Text(text)).await?;
            }
            socket.flush().await
        };
        match timeout(self.rt.limits.write_timeout, write).await {
            Ok(Ok(())) => {
                self.rt.metrics.ws_messages_sent.inc_by(n);
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    fn by_shard(&self, zones: &[Arc<str>]) -> BTreeMap<usize, Vec<String>> {
        let mut map: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for z in zones {
            map.entry(self.rt.shards.for_zone(z).index)
                .or_default()
                .push(z.to_string());
        }
        map
    }

    /// Sends one message, counted, within `CONTROL_WRITE_TIMEOUT`.
    async fn send(&self, socket: &mut WebSocket, msg: Message) -> Flow {
        match timeout(CONTROL_WRITE_TIMEOUT, socket.send(msg)).await {
            Ok(Ok(())) => {
                self.rt.metrics.ws_messages_sent.inc();
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    async fn send_json(&self, socket: &mut WebSocket, value: &Value) -> Flow {
        self.send(socket, Message::Text(value.to_string().into()))
            .await
    }

    async fn send_error(&self, socket: &mut WebSocket, code: &str, message: &str) -> Flow {
        self.send_json(
            socket,
            &json!({"type": "error", "error": code, "message": message}),
        )
        .await
    }
}

/// How a `since` replay ended.
enum Replay {
    /// Every missed event was sent.
    Done,
    /// The gap was too wide to replay; nothing was sent.
    TooWide,
    /// The socket failed.
    Closed,
}

/// Ledger rows read per replay page (of every zone on the shard, in tail order).
const REPLAY_PAGE: i64 = 1000;

/// How long a `since` waits for this instance's tail to reach it (it may come from another
/// instance whose tail polled a moment earlier).
const SINCE_WAIT: Duration = Duration::from_secs(1);

/// Snapshot retries while a shard that just came back is still marked down (probed every
/// 250 ms), and the pause between them.
const SNAPSHOT_RETRIES: u32 = 10;
const SNAPSHOT_RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Control messages (replies, pings) are small; a client that cannot take them within this
/// long is gone.
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = timeout(
        Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}
