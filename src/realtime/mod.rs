//! Realtime: a WebSocket fan-out of chest changes, fed by the shards themselves.
//!
//! # Design
//! The claims ledger is the event log. Each instance runs one follower per shard on a
//! dedicated connection that polls (every `TROVE_TAIL_POLL_MS`) for rows whose transaction id
//! lies below the snapshot's xmin horizon: every transaction under the horizon has finished, so
//! each committed claim is seen exactly once, although commits land out of xid order, and a
//! rolled-back claim never appears. Claims pay nothing extra (no NOTIFY, which serialises
//! commits); the cost is an index on `(xid, zone_id, chest_id)` and one cheap poll per shard
//! per interval, and an event waits for the oldest transaction running on its shard.
//!
//! A row's `(xid, zone_id, chest_id)` is its position on its shard; a client's position is
//! the vector of those over all shards. The hub fans events out in one task, stamping each
//! with the vector as of that event, so "everything up to this position" is well defined for
//! a resume (`since`), which replays missed `chest_opened` events from the ledger. Each
//! connection remembers per zone what its client has (`dedupe`), so live events and replays
//! never send an event twice. A follower that cannot resume from its cursor has the hub send
//! the shard's subscribers a `resync` snapshot rather than skip events silently.

mod dedupe;
mod follower;
mod hub;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::shards::ShardSet;

pub use hub::Hub;

/// A position on one shard's tail: every event with a key at or before it has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub xid: i64,
    pub zone_id: i32,
    pub chest_id: i64,
}

impl Cursor {
    /// Everything below `horizon` (all of it final).
    pub fn below(horizon: i64) -> Self {
        Cursor {
            xid: horizon - 1,
            zone_id: i32::MAX,
            chest_id: i64::MAX,
        }
    }
}

/// A client's resume token: one cursor per shard, in shard order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position(pub Vec<Cursor>);

impl Position {
    /// `1.<xid>_<zone>_<chest>.<xid>_<zone>_<chest>…` (opaque to clients).
    pub fn encode(&self) -> String {
        let mut s = String::from("1");
        for c in &self.0 {
            s.push_str(&format!(".{}_{}_{}", c.xid, c.zone_id, c.chest_id));
        }
        s
    }

    pub fn decode(s: &str, shards: usize) -> Result<Self> {
        let bad = || Error::invalid("invalid_position", "since must be a position Trove sent");
        let mut parts = s.split('.');
        if parts.next() != Some("1") {
            return Err(bad());
        }
        let cursors = parts
            .map(|p| {
                let mut n = p.split('_');
                let c = Cursor {
                    xid: n.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?,
                    zone_id: n.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?,
                    chest_id: n.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?,
                };
                match n.next() {
                    None => Ok(c),
                    Some(_) => Err(bad()),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if cursors.len() != shards {
            return Err(bad());
        }
        Ok(Position(cursors))
    }
}

/// Connections per shard for realtime reads.
const REALTIME_POOL_SIZE: u32 = 4;

/// WebSocket limits, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_zones: usize,
    pub queue: usize,
    pub max_message: usize,
    pub ping: Duration,
    pub write_timeout: Duration,
    pub replay_window: i64,
}

/// The realtime service of one instance: the hub, its followers and the connection cap.
#[derive(Clone)]
pub struct Realtime {
    pub(crate) hub: Hub,
    pub(crate) shards: ShardSet,
    pub(crate) limits: Arc<Limits>,
    pub(crate) connections: Arc<Semaphore>,
    /// Resume pages in flight: each holds up to `ws::REPLAY_PAGE` rows while it is read and
    /// written, so memory stays bounded however many clients resume at once.
    pub(crate) replays: Arc<Semaphore>,
    pub(crate) max_connections: usize,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) metrics: Metrics,
}

impl Realtime {
    /// Starts the hub and one follower per shard; waits briefly for each reachable shard's
    /// starting position so the first subscribers get complete positions.
    pub async fn start(
        shards: ShardSet,
        config: &Config,
        shutdown: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        // Own small pools for snapshots and replays (the tail has its own connections).
        let shards = shards.derived(REALTIME_POOL_SIZE, &[]);
        let hub = Hub::start(shards.len());
        let poll = Duration::from_millis(config.tail_poll_ms.max(1));
        let mut started = Vec::new();
        for shard in shards.all() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(follower::follow(
                Arc::clone(shard),
                hub.clone(),
                poll,
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
            limits: Arc::new(Limits {
                max_zones: config.ws_max_zones.max(1),
                queue: config.ws_queue.max(1),
                max_message: config.ws_max_message.max(256),
                ping: Duration::from_secs(config.ws_ping_secs.max(1)),
                write_timeout: Duration::from_millis(config.ws_write_timeout_ms.max(1)),
                replay_window: config.replay_window.max(1),
            }),
            connections: Arc::new(Semaphore::new(config.ws_max_connections)),
            replays: Arc::new(Semaphore::new(config.ws_max_replays.max(1))),
            max_connections: config.ws_max_connections,
            shutdown,
            metrics,
        }
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.max_connections - self.connections.available_permits()
    }

    /// Waits (at most `bound`) for every WebSocket connection to close after shutdown.
    pub async fn drained(&self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        while self.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_reject_garbage() {
        let p = Position(vec![
            Cursor {
                xid: 10,
                zone_id: 2,
                chest_id: 3,
            },
            Cursor::below(99),
        ]);
        assert_eq!(Position::decode(&p.encode(), 2).ok(), Some(p.clone()));
        assert!(Position::decode(&p.encode(), 3).is_err());
        for bad in ["", "2.1_1_1", "1.x_1_1", "1.1_1", "1.1_1_1_1", "garbage"] {
            assert!(Position::decode(bad, 1).is_err(), "{bad}");
        }
        assert!(
            Cursor::below(5)
                > Cursor {
                    xid: 4,
                    zone_id: 9,
                    chest_id: 9
                }
        );
        assert!(
            Cursor::below(5)
                < Cursor {
                    xid: 5,
                    zone_id: 0,
                    chest_id: 0
                }
        );
    }
}
