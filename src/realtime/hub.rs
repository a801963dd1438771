//! The hub: one task per instance that fans shard events out to subscribed connections.
//! One task, so every event is stamped with the position vector as of that event and queued
//! to every subscriber in the same order; it never waits on a connection (a full queue marks
//! the connection lagged and further events skip it until it resubscribes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use uuid::Uuid;

use super::protocol::ServerMessage;
use super::Frame;
use crate::ledger::{Cursor, Position};
use crate::loot::Rarity;

/// One event read from a shard's tail.
#[derive(Debug, Clone)]
pub struct Event {
    pub cursor: Cursor,
    pub zone: Arc<str>,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    Opened {
        chest_id: i64,
        player: String,
        /// The rarest item drawn.
        rarity: Option<Rarity>,
        opened_at: DateTime<Utc>,
        claim_id: Uuid,
    },
    Spawned {
        count: i64,
        /// Chests in the zone as of this event's position.
        total: i64,
        /// Unopened chests as of this event's position (total minus claims at or before it).
        remaining: i64,
    },
    /// A move switched the zone in on this shard: its events come from here from now on.
    Arrived,
}

/// What the hub queues for one connection.
#[derive(Debug, Clone)]
pub enum Queued<T> {
    /// An event; the text is reference-counted (one serialisation per event, shared by every
    /// subscriber's frame) and the cursor lets the connection drop what its client has.
    Event {
        zone: Arc<str>,
        /// The shard the event comes from: a connection drops events of a zone from a shard
        /// it no longer lives on (they are in the snapshot it got at the arrival).
        shard: usize,
        cursor: Cursor,
        text: T,
    },
    /// A move switched the zone in on `shard`: a fresh snapshot as of `position`.
    Arrived {
        zone: Arc<str>,
        shard: usize,
        position: Position,
    },
    /// The shard's follower started over without proof that it missed nothing: the
    /// connection's zones on that shard need a fresh snapshot as of `position`.
    Resync { shard: usize, position: Position },
}

/// Where the hub queues a connection's events, and how it tells the connection it lagged.
pub struct Outbox<T> {
    pub tx: mpsc::Sender<Queued<T>>,
    pub lagged: Arc<Notify>,
}

enum Command<T> {
    Started {
        shard: usize,
        cursor: Cursor,
    },
    Resync {
        shard: usize,
        cursor: Cursor,
    },
    Batch {
        shard: usize,
        events: Vec<Event>,
        end: Cursor,
    },
    Join {
        conn: u64,
        outbox: Outbox<T>,
    },
    Subscribe {
        conn: u64,
        /// Each zone with its shard.
        zones: Vec<(Arc<str>, usize)>,
        reply: oneshot::Sender<Position>,
    },
    Unsubscribe {
        conn: u64,
        zones: Vec<Arc<str>>,
    },
    Leave {
        conn: u64,
    },
}

struct Conn<T> {
    outbox: Outbox<T>,
    /// Subscribed zones and their shards.
    zones: HashMap<Arc<str>, usize>,
    lagged: bool,
}

impl<T> Conn<T> {
    /// Queues without waiting; a full queue marks the connection lagged.
    fn offer(&mut self, out: Queued<T>) {
        if self.lagged {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.outbox.tx.try_send(out) {
            self.lagged = true;
            self.outbox.lagged.notify_one();
        }
    }
}

/// Handle to the hub task. Cheap to clone.
pub struct Hub<T> {
    tx: mpsc::Sender<Command<T>>,
    /// The hub's position, so a `since` from another instance can wait for this one's tail.
    position: watch::Receiver<Vec<Cursor>>,
}

impl<T> Clone for Hub<T> {
    fn clone(&self) -> Self {
        Hub {
            tx: self.tx.clone(),
            position: self.position.clone(),
        }
    }
}

impl<T: Frame> Hub<T> {
    pub fn start(shards: usize) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let (position_tx, position) = watch::channel(vec![Cursor::default(); shards]);
        tokio::spawn(run(rx, shards, position_tx));
        Hub { tx, position }
    }

    pub(crate) async fn started(&self, shard: usize, cursor: Cursor) {
        let _ = self.tx.send(Command::Started { shard, cursor }).await;
    }

    /// The follower of `shard` starts over at `cursor` without proof that it missed nothing
    /// since the last event it handed over: subscribers of the shard's zones get a fresh
    /// snapshot, in order with the events.
    pub(crate) async fn resync(&self, shard: usize, cursor: Cursor) {
        let _ = self.tx.send(Command::Resync { shard, cursor }).await;
    }

    /// Waits (at most `bound`) until the hub's position is at or past `at` on `shards`; true
    /// if it got there.
    pub async fn reached(&self, at: &Position, shards: &[usize], bound: Duration) -> bool {
        let mut rx = self.position.clone();
        let wait = rx.wait_for(|now| {
            shards
                .iter()
                .all(|&s| now.get(s).zip(at.0.get(s)).map_or(true, |(n, a)| n >= a))
        });
        let reached = matches!(tokio::time::timeout(bound, wait).await, Ok(Ok(_)));
        reached
    }

    /// Hands a shard's batch to the hub; waits if the hub is behind (back-pressure on the
    /// follower, never on connections).
    pub(crate) async fn batch(&self, shard: usize, events: Vec<Event>, end: Cursor) {
        let _ = self.tx.send(Command::Batch { shard, events, end }).await;
    }

    pub async fn join(&self, conn: u64, outbox: Outbox<T>) {
        let _ = self.tx.send(Command::Join { conn, outbox }).await;
    }

    /// Subscribes (or resubscribes, clearing a lag) and returns the position from which the
    /// connection's queue holds every event of those zones.
    pub async fn subscribe(&self, conn: u64, zones: Vec<(Arc<str>, usize)>) -> Option<Position> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Subscribe { conn, zones, reply })
            .await
            .ok()?;
        rx.await.ok()
    }

    pub async fn unsubscribe(&self, conn: u64, zones: Vec<Arc<str>>) {
        let _ = self.tx.send(Command::Unsubscribe { conn, zones }).await;
    }

    pub async fn leave(&self, conn: u64) {
        let _ = self.tx.send(Command::Leave { conn }).await;
    }
}

async fn run<T: Frame>(
    mut rx: mpsc::Receiver<Command<T>>,
    shards: usize,
    position: watch::Sender<Vec<Cursor>>,
) {
    let mut cursors = vec![Cursor::default(); shards];
    let mut conns: HashMap<u64, Conn<T>> = HashMap::new();
    let mut by_zone: HashMap<Arc<str>, HashSet<u64>> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Started { shard, cursor } => {
                if cursors[shard] < cursor {
                    cursors[shard] = cursor;
                }
            }
            Command::Resync { shard, cursor } => {
                // Set, not raised: after a restore the shard's positions may have gone back.
                cursors[shard] = cursor;
                let at = Position(cursors.clone());
                for conn in conns.values_mut() {
                    if conn.zones.values().any(|&s| s == shard) {
                        conn.offer(Queued::Resync {
                            shard,
                            position: at.clone(),
                        });
                    }
                }
            }
            Command::Batch { shard, events, end } => {
                for event in events {
                    cursors[shard] = event.cursor;
                    let Some(subs) = by_zone.get(&event.zone) else {
                        continue;
                    };
                    if let EventKind::Arrived = event.kind {
                        let position = Position(cursors.clone());
                        for id in subs {
                            if let Some(conn) = conns.get_mut(id) {
                                conn.zones.insert(Arc::clone(&event.zone), shard);
                                conn.offer(Queued::Arrived {
                                    zone: Arc::clone(&event.zone),
                                    shard,
                                    position: position.clone(),
                                });
                            }
                        }
                        continue;
                    }
                    let text = T::from(ServerMessage::event(&event, &Position(cursors.clone())));
                    for id in subs {
                        if let Some(conn) = conns.get_mut(id) {
                            conn.offer(Queued::Event {
                                zone: Arc::clone(&event.zone),
                                shard,
                                cursor: event.cursor,
                                text: text.clone(),
                            });
                        }
                    }
                }
                if cursors[shard] < end {
                    cursors[shard] = end;
                }
            }
            Command::Join { conn, outbox } => {
                conns.insert(
                    conn,
                    Conn {
                        outbox,
                        zones: HashMap::new(),
                        lagged: false,
                    },
                );
            }
            Command::Subscribe { conn, zones, reply } => {
                if let Some(c) = conns.get_mut(&conn) {
                    c.lagged = false;
                    for (z, shard) in zones {
                        by_zone.entry(Arc::clone(&z)).or_default().insert(conn);
                        c.zones.insert(z, shard);
                    }
                }
                let _ = reply.send(Position(cursors.clone()));
            }
            Command::Unsubscribe { conn, zones } => {
                if let Some(c) = conns.get_mut(&conn) {
                    for z in zones {
                        c.zones.remove(&z);
                        remove_sub(&mut by_zone, &z, conn);
                    }
                }
            }
            Command::Leave { conn } => {
                if let Some(c) = conns.remove(&conn) {
                    for z in c.zones.into_keys() {
                        remove_sub(&mut by_zone, &z, conn);
                    }
                }
            }
        }
        position.send_if_modified(|p| {
            let changed = *p != cursors;
            if changed {
                p.clone_from(&cursors);
            }
            changed
        });
    }
}

fn remove_sub(by_zone: &mut HashMap<Arc<str>, HashSet<u64>>, zone: &Arc<str>, conn: u64) {
    if let Some(set) = by_zone.get_mut(zone) {
        set.remove(&conn);
        if set.is_empty() {
            by_zone.remove(zone);
        }
    }
}
