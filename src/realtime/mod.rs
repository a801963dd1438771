//! Realtime: a WebSocket fan-out of chest changes, fed by the shards themselves.
//!
//! # Design
//! The claims ledger is the event log. Each instance runs one follower per shard on a
//! dedicated connection that polls (every `TROVE_TAIL_POLL_MS`) below the xmin horizon
//! (`ledger`), so each committed claim is seen exactly once, although commits land out of xid
//! order, and a rolled-back claim never appears. Claims pay nothing extra (no NOTIFY, which
//! serialises commits); the cost is an index on `(xid, zone_id, chest_id)` and one cheap poll
//! per shard per interval, and an event waits for the oldest transaction running on its shard.
//!
//! A row's `(xid, zone_id, chest_id)` is its position on its shard; a client's position is
//! the vector of those over all shards. The hub fans events out in one task, stamping each
//! with the vector as of that event, so "everything up to this position" is well defined for
//! a resume (`since`), which replays missed `chest_opened` events from the ledger. Each
//! connection remembers per zone what its client has (`dedupe`), so live events and replays
//! never send an event twice. A follower that cannot resume from its cursor has the hub send
//! the shard's subscribers a `resync` snapshot rather than skip events silently.
//!
//! # Layout
//! `protocol` (typed client and server messages), `session` (one connection's loop),
//! `replay` (snapshot and `since` reads), `hub`, `follower`, `dedupe`. Nothing here knows
//! HTTP: the api edge upgrades the connection and hands `Session` a sink and a stream of this
//! module's own `Outgoing`/`Incoming` frames.

mod dedupe;
mod follower;
mod hub;
pub mod protocol;
mod replay;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::shards::ShardSet;

pub use hub::Hub;
pub use session::{Incoming, Outgoing};

/// The text of a server frame, built once per event and shared by every subscriber's queue
/// (cloning is a reference count). The api edge picks its WebSocket library's own text type,
/// so a frame reaches the socket without a copy or a second UTF-8 check.
pub trait Frame:
    From<String> + std::ops::Deref<Target = str> + Clone + Send + Sync + 'static
{
}

impl<T: From<String> + std::ops::Deref<Target = str> + Clone + Send + Sync + 'static> Frame for T {}

/// The fan-out's settings (`TROVE_WS_*`, `TROVE_TAIL_POLL_MS`, `TROVE_REPLAY_WINDOW`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often each follower polls its shard's ledger.
    pub tail_poll: Duration,
    /// Most WebSocket connections on this instance.
    pub max_connections: usize,
    /// Most zones one connection may watch.
    pub max_zones: usize,
    /// Events queued per connection before it is `lagged`.
    pub queue: usize,
    /// Largest message a client may send, in bytes.
    pub max_message: usize,
    /// Between server pings; three silent intervals close the connection.
    pub ping: Duration,
    /// A write stalled this long drops the connection.
    pub write_timeout: Duration,
    /// Ledger rows a resume may scan per shard before a snapshot is sent instead.
    pub replay_window: i64,
    /// Resume pages read or written at once on this instance.
    pub max_replays: usize,
}

/// Connections per shard for realtime reads.
const REALTIME_POOL_SIZE: u32 = 4;

/// The realtime service of one instance: the hub, its followers and the connection cap.
pub struct Realtime<T> {
    pub(crate) hub: Hub<T>,
    /// Own small pools for snapshots and replays (the tails have their own connections).
    pub shards: ShardSet,
    pub(crate) settings: Arc<Settings>,
    connections: Arc<Semaphore>,
    /// Resume pages in flight: each holds up to `replay::PAGE` rows while it is read and
    /// written, so memory stays bounded however many clients resume at once.
    pub(crate) replays: Arc<Semaphore>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) metrics: Metrics,
}

impl<T> Clone for Realtime<T> {
    fn clone(&self) -> Self {
        Realtime {
            hub: self.hub.clone(),
            shards: self.shards.clone(),
            settings: Arc::clone(&self.settings),
            connections: Arc::clone(&self.connections),
            replays: Arc::clone(&self.replays),
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// A place among `TROVE_WS_MAX_CONNECTIONS`, held for a connection's life.
pub struct ConnectionPermit {
    _held: OwnedSemaphorePermit,
}

impl<T: Frame> Realtime<T> {
    /// Starts the hub and one follower per shard; waits briefly for each reachable shard's
    /// starting position so the first subscribers get complete positions.
    pub async fn start(
        shards: ShardSet,
        settings: Settings,
        shutdown: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        let shards = shards.derived(REALTIME_POOL_SIZE, &[]);
        let hub = Hub::start(shards.len());
        let mut started = Vec::new();
        for shard in shards.all() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(follower::follow(
                Arc::clone(shard),
                hub.clone(),
                settings.tail_poll,
                tx,
                shutdown.clone(),
                metrics
                    .listener_reconnects
                    .with_label_values(&[shard.index.to_string()]),
            ));
            started.push(rx);
        }
        for rx in started {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        Realtime {
            hub,
            shards,
            connections: Arc::new(Semaphore::new(settings.max_connections)),
            replays: Arc::new(Semaphore::new(settings.max_replays)),
            settings: Arc::new(settings),
            shutdown,
            metrics,
        }
    }

    /// A place for one more connection, or None at `TROVE_WS_MAX_CONNECTIONS`.
    pub fn admit(&self) -> Option<ConnectionPermit> {
        Arc::clone(&self.connections)
            .try_acquire_owned()
            .ok()
            .map(|held| ConnectionPermit { _held: held })
    }

    /// Largest message a client may send, in bytes (the edge enforces it on the socket).
    pub fn max_message(&self) -> usize {
        self.settings.max_message
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.settings.max_connections - self.connections.available_permits()
    }

    /// Waits (at most `bound`) for every WebSocket connection to close after shutdown.
    pub async fn drained(&self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        while self.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
