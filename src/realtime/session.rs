//! One WebSocket connection: a loop that reads client messages and writes queued events.
//!
//! Slow clients: each connection has a bounded queue (`TROVE_WS_QUEUE`). When it overflows,
//! the hub skips the connection; once the connection has written out what was queued it sends
//! one `lagged` message with a fresh snapshot and position, and events flow again (resume with
//! `since` to replay what was skipped). A write that stalls for `TROVE_WS_WRITE_TIMEOUT_MS`
//! (default 10 s: the client stopped reading altogether) drops the connection.
//! Close codes: 1001 server shutting down, 1008 no traffic for three ping intervals,
//! 1009 message over `TROVE_WS_MAX_MESSAGE`.
//!
//! The session is generic over a sink of `Outgoing` and a stream of `Incoming` frames, so it
//! knows no HTTP library (the api edge adapts its socket) and can be driven by any socket.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::{timeout, Instant};

use super::dedupe::ZoneState;
use super::hub::{Outbox, Queued};
use super::protocol::{ClientMessage, ServerMessage, LAGGED, MOVED, RESYNC};
use super::replay::Replay;
use super::{ConnectionPermit, Frame, Realtime};
use crate::ledger::Position;
use crate::names::validate_zone_name;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A frame from the client, as the edge decoded it.
pub enum Incoming<T> {
    Text(T),
    Binary,
    /// A ping or a pong: the client is alive.
    Heartbeat,
    /// A close frame.
    Closed,
    /// A message over `TROVE_WS_MAX_MESSAGE`.
    TooBig,
    /// The connection failed.
    Failed,
}

/// A frame for the client.
pub enum Outgoing<T> {
    Text(T),
    Ping,
    Close { code: u16, reason: &'static str },
}

pub(super) enum Flow {
    Continue,
    Close,
}

/// One connection's state; `W` is the socket's writing half.
pub(super) struct Session<T, W> {
    id: u64,
    pub(super) rt: Realtime<T>,
    /// Subscribed zones and what this connection delivered of each (never twice).
    pub(super) zones: HashMap<Arc<str>, ZoneState>,
    pub(super) sink: W,
    _permit: ConnectionPermit,
}

impl<T: Frame> Realtime<T> {
    /// Serves one upgraded connection until it closes, at the latest at `until` (when the
    /// token it was opened with expires). `permit` came from `admit`.
    pub async fn serve<W, R>(&self, permit: ConnectionPermit, sink: W, stream: R, until: Instant)
    where
        W: Sink<Outgoing<T>> + Unpin + Send,
        R: Stream<Item = Incoming<T>> + Unpin + Send,
    {
        let session = Session {
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            rt: self.clone(),
            zones: HashMap::new(),
            sink,
            _permit: permit,
        };
        session.run(stream, until).await;
    }
}

impl<T: Frame, W: Sink<Outgoing<T>> + Unpin + Send> Session<T, W> {
    async fn run<R: Stream<Item = Incoming<T>> + Unpin>(mut self, mut stream: R, until: Instant) {
        let (tx, mut rx) = mpsc::channel::<Queued<T>>(self.rt.settings.queue);
        let lagged = Arc::new(Notify::new());
        let outbox = Outbox {
            tx,
            lagged: Arc::clone(&lagged),
        };
        self.rt.hub.join(self.id, outbox).await;
        let mut shutdown = self.rt.shutdown.clone();
        let ping_every = self.rt.settings.ping;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_heard = Instant::now();
        // Why the connection ended, for `trove_ws_clients_closed_total{reason}`; a failed or
        // stalled write unless an arm says otherwise.
        let mut reason = "write_failed";
        // One timer for the connection's life, not one per turn of the loop.
        let expiry = tokio::time::sleep_until(until);
        tokio::pin!(expiry);
        loop {
            let flow = tokio::select! {
                _ = shutdown.changed() => {
                    reason = "shutdown";
                    self.close(1001, "server shutting down").await;
                    Flow::Close
                }
                _ = &mut expiry => {
                    reason = "token_expired";
                    self.close(1008, "token expired: reconnect with a fresh one").await;
                    Flow::Close
                }
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Incoming::Text(text)) => self.on_text(&text).await,
                        Some(Incoming::Binary) => {
                            self.send_error("invalid_message", "send JSON text frames").await
                        }
                        Some(Incoming::Heartbeat) => Flow::Continue,
                        Some(Incoming::Closed | Incoming::Failed) | None => {
                            reason = "client";
                            Flow::Close
                        }
                        Some(Incoming::TooBig) => {
                            reason = "message_too_big";
                            self.close(1009, "message too big").await;
                            Flow::Close
                        }
                    }
                }
                Some(first) = rx.recv() => self.write_events(first, &mut rx).await,
                _ = lagged.notified() => self.on_lagged(&mut rx).await,
                _ = ping.tick() => {
                    if last_heard.elapsed() > ping_every * 3 {
                        reason = "idle";
                        self.close(1008, "no traffic for three ping intervals").await;
                        Flow::Close
                    } else {
                        self.send(Outgoing::Ping).await
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

    async fn on_text(&mut self, text: &str) -> Flow {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let message =
                    format!("expected {{\"op\":\"subscribe\"|\"unsubscribe\"|\"ping\", …}}: {e}");
                return self.send_error("invalid_message", &message).await;
            }
        };
        match msg {
            ClientMessage::Ping => self.send_message(&ServerMessage::Pong).await,
            ClientMessage::Unsubscribe { zones } => {
                let zones: Vec<Arc<str>> = zones.iter().map(|z| Arc::from(z.as_str())).collect();
                for z in &zones {
                    self.zones.remove(z);
                }
                self.rt.hub.unsubscribe(self.id, zones.clone()).await;
                let names: Vec<&str> = zones.iter().map(|z| &**z).collect();
                self.send_message(&ServerMessage::Unsubscribed { zones: &names })
                    .await
            }
            ClientMessage::Subscribe { zones, since } => self.on_subscribe(zones, since).await,
        }
    }

    async fn on_subscribe(&mut self, zones: Vec<String>, since: Option<String>) -> Flow {
        let mut wanted: Vec<Arc<str>> = Vec::new();
        for z in &zones {
            if validate_zone_name(z).is_err() {
                return self
                    .send_error("invalid_zone", &format!("{z:?} is not a zone name"))
                    .await;
            }
            if !wanted.iter().any(|w| &**w == z) {
                wanted.push(Arc::from(z.as_str()));
            }
        }
        if wanted.is_empty() {
            return self
                .send_error("invalid_message", "zones must not be empty")
                .await;
        }
        let after: HashSet<&Arc<str>> = self.zones.keys().chain(wanted.iter()).collect();
        let max_zones = self.rt.settings.max_zones;
        if after.len() > max_zones {
            let message = format!("a connection may watch at most {max_zones} zones");
            return self.send_error("too_many_zones", &message).await;
        }
        let since = match since
            .map(|s| Position::decode(&s, self.rt.shards.len()))
            .transpose()
        {
            Ok(s) => s,
            Err(e) => return self.send_error(e.code(), &e.to_string()).await,
        };
        let placed = match self.rt.shards_of(&wanted).await {
            Ok(p) => p,
            Err(e) => return self.send_error(e.code(), &e.to_string()).await,
        };
        if let Some(since) = &since {
            // A position from another instance may be ahead of this one's tail. Waiting a
            // moment lets the replay cover it and keeps `position` no older than `since`;
            // if the tail stays behind, dedupe still drops what the client has.
            self.rt.hub.reached(since, &placed, SINCE_WAIT).await;
        }
        let subs: Vec<(Arc<str>, usize)> = wanted.iter().cloned().zip(placed).collect();
        let Some(now) = self.rt.hub.subscribe(self.id, subs.clone()).await else {
            return Flow::Close;
        };
        for (z, shard) in subs {
            self.zones
                .entry(z)
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
            resumed = match self.replay(&wanted, since, &now).await {
                Ok(Replay::Done) => Some(true),
                Ok(Replay::TooWide) => Some(false),
                Ok(Replay::Closed) => return Flow::Close,
                Err(e) => return self.send_error(e.code(), &e.to_string()).await,
            };
            // Events up to `since` are never sent again, so the snapshot counts them even
            // where this instance's tail has not reached them yet.
            for (a, s) in at.0.iter_mut().zip(&since.0) {
                *a = (*a).max(*s);
            }
        }
        let snapshot = match self.rt.snapshot(&wanted, &at).await {
            Ok(s) => s,
            Err(e) => return self.send_error(e.code(), &e.to_string()).await,
        };
        for z in &wanted {
            if let Some(state) = self.zones.get_mut(z) {
                state.rebase(at.0[state.shard]);
            }
        }
        let msg = ServerMessage::Subscribed {
            zones: &snapshot,
            position: now.encode(),
            resumed,
        };
        self.send_message(&msg).await
    }

    /// Writes one queued event and whatever else is queued, with a single flush; drops events
    /// the client already has (see `dedupe`).
    async fn write_events(&mut self, first: Queued<T>, rx: &mut mpsc::Receiver<Queued<T>>) -> Flow {
        let mut next = Some(first);
        let mut n = 0;
        let write_timeout = self.rt.settings.write_timeout;
        while let Some(out) = next {
            match out {
                Queued::Event {
                    zone,
                    shard,
                    cursor,
                    text,
                } => {
                    // Also drops events of a zone unsubscribed a moment ago, or of a shard it
                    // has moved away from (its snapshot at the arrival counts them).
                    if self
                        .zones
                        .get_mut(&zone)
                        .is_some_and(|z| z.shard == shard && z.take_live(cursor))
                    {
                        match timeout(write_timeout, self.sink.feed(Outgoing::Text(text))).await {
                            Ok(Ok(())) => {}
                            _ => return Flow::Close,
                        }
                        n += 1;
                    }
                }
                Queued::Arrived {
                    zone,
                    shard,
                    position,
                } => {
                    self.rt.metrics.ws_messages_sent.inc_by(n);
                    n = 0;
                    if let Flow::Close = self.on_arrived(zone, shard, &position).await {
                        return Flow::Close;
                    }
                }
                Queued::Resync { shard, position } => {
                    // In order: what was fed before goes out with the resync message.
                    self.rt.metrics.ws_messages_sent.inc_by(n);
                    n = 0;
                    if let Flow::Close = self.on_resync(shard, &position).await {
                        return Flow::Close;
                    }
                }
            }
            next = if n < 64 { rx.try_recv().ok() } else { None };
        }
        match timeout(write_timeout, self.sink.flush()).await {
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
    async fn on_lagged(&mut self, rx: &mut mpsc::Receiver<Queued<T>>) -> Flow {
        self.rt.metrics.ws_lagged.inc();
        while let Ok(out) = rx.try_recv() {
            if let Flow::Close = self.write_events(out, rx).await {
                return Flow::Close;
            }
        }
        let subs: Vec<(Arc<str>, usize)> = self
            .zones
            .iter()
            .map(|(z, s)| (Arc::clone(z), s.shard))
            .collect();
        let zones: Vec<Arc<str>> = subs.iter().map(|(z, _)| Arc::clone(z)).collect();
        let Some(now) = self.rt.hub.subscribe(self.id, subs).await else {
            return Flow::Close;
        };
        for state in self.zones.values_mut() {
            state.rebase(now.0[state.shard]);
        }
        let snapshot = self
            .rt
            .snapshot_retrying(&zones, &now)
            .await
            .unwrap_or_default();
        let msg = ServerMessage::Lagged {
            message: LAGGED,
            zones: &snapshot,
            position: now.encode(),
        };
        self.send_message(&msg).await
    }

    /// A shard's follower started over: fresh snapshots of this connection's zones on it.
    async fn on_resync(&mut self, shard: usize, at: &Position) -> Flow {
        let zones: Vec<Arc<str>> = self
            .zones
            .iter()
            .filter(|(_, s)| s.shard == shard)
            .map(|(z, _)| Arc::clone(z))
            .collect();
        if zones.is_empty() {
            return Flow::Continue;
        }
        let snapshot = match self.rt.snapshot_retrying(&zones, at).await {
            Ok(s) => s,
            Err(e) => {
                let message = format!(
                    "could not resync after shard {shard} came back ({e}); subscribe again"
                );
                return self.send_error(e.code(), &message).await;
            }
        };
        for z in &zones {
            if let Some(state) = self.zones.get_mut(z) {
                state.rebase(at.0[shard]);
            }
        }
        let msg = ServerMessage::Resync {
            message: RESYNC,
            zones: &snapshot,
            position: at.encode(),
        };
        self.send_message(&msg).await
    }

    /// A move switched a subscribed zone in on `shard`: from now on its events come from there,
    /// starting after `at`; the client gets a fresh snapshot as of `at`, which counts every
    /// event of the zone before it, wherever it happened.
    async fn on_arrived(&mut self, zone: Arc<str>, shard: usize, at: &Position) -> Flow {
        self.rt.shards.placement().forget(&zone);
        if !self.zones.contains_key(&zone) {
            return Flow::Continue;
        }
        self.zones
            .insert(Arc::clone(&zone), ZoneState::new(shard, at.0[shard]));
        let snapshot = match self.rt.snapshot_retrying(&[Arc::clone(&zone)], at).await {
            Ok(s) => s,
            Err(e) => {
                let message =
                    format!("could not snapshot {zone:?} after its move ({e}); subscribe again");
                return self.send_error(e.code(), &message).await;
            }
        };
        let msg = ServerMessage::Resync {
            message: MOVED,
            zones: &snapshot,
            position: at.encode(),
        };
        self.send_message(&msg).await
    }

    /// Sends one frame, counted, within `CONTROL_WRITE_TIMEOUT`.
    async fn send(&mut self, frame: Outgoing<T>) -> Flow {
        match timeout(CONTROL_WRITE_TIMEOUT, self.sink.send(frame)).await {
            Ok(Ok(())) => {
                self.rt.metrics.ws_messages_sent.inc();
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    async fn send_message(&mut self, msg: &ServerMessage<'_>) -> Flow {
        self.send(Outgoing::Text(T::from(msg.to_text()))).await
    }

    async fn send_error(&mut self, code: &str, message: &str) -> Flow {
        let msg = ServerMessage::Error {
            error: code,
            message,
        };
        self.send_message(&msg).await
    }

    /// A close frame, best effort: the connection ends either way.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Outgoing::Close { code, reason };
        let _ = timeout(Duration::from_secs(1), self.sink.send(frame)).await;
    }
}

/// How long a `since` waits for this instance's tail to reach it (it may come from another
/// instance whose tail polled a moment earlier).
const SINCE_WAIT: Duration = Duration::from_secs(1);

/// Control messages (replies, pings) are small; a client that cannot take them within this
/// long is gone.
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
