//! Reads from the ledger for a connection: zone snapshots as of a position, and `since`
//! replays of the `chest_opened` events a client missed, one bounded page at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::time::timeout;

use super::hub::{Event, EventKind};
use super::protocol::{ServerMessage, ZoneTotals};
use super::session::{Flow, Outgoing, Session};
use super::{Frame, Realtime};
use crate::error::{Error, Result};
use crate::ledger::{best_rarity, Cursor, Position};

/// How a `since` replay ended.
pub(super) enum Replay {
    /// Every missed event was sent.
    Done,
    /// The gap was too wide to replay; nothing was sent.
    TooWide,
    /// The socket failed.
    Closed,
}

/// Ledger rows read per replay page (of every zone on the shard, in tail order).
pub(super) const PAGE: i64 = 1000;

/// Snapshot retries while a shard that just came back is still marked down (probed every
/// 250 ms), and the pause between them.
const SNAPSHOT_RETRIES: u32 = 10;
const SNAPSHOT_RETRY_PAUSE: Duration = Duration::from_millis(300);

impl<T> Realtime<T> {
    /// Each zone's shard: where it lives, or for a zone not created yet, where it would be
    /// placed (a client may watch a zone before its first spawn).
    pub(super) async fn shards_of(&self, zones: &[Arc<str>]) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(zones.len());
        for z in zones {
            // Asked of the catalog, not the cache: a zone may have moved since this instance
            // last looked (subscribing is rare next to claiming).
            out.push(self.shards.zone_shard_fresh_or_proposed(z).await?.index);
        }
        Ok(out)
    }

    /// The zones grouped by their shard.
    pub(super) async fn by_shard(
        &self,
        zones: &[Arc<str>],
    ) -> Result<BTreeMap<usize, Vec<String>>> {
        let mut map: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (z, shard) in zones.iter().zip(self.shards_of(zones).await?) {
            map.entry(shard).or_default().push(z.to_string());
        }
        Ok(map)
    }

    /// `snapshot`, retried for a few seconds while the shard is marked down: right after a
    /// shard comes back its pool may still be waiting for the probe that revives it.
    pub(super) async fn snapshot_retrying(
        &self,
        zones: &[Arc<str>],
        at: &Position,
    ) -> Result<Vec<ZoneTotals>> {
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
    pub(super) async fn snapshot(
        &self,
        zones: &[Arc<str>],
        at: &Position,
    ) -> Result<Vec<ZoneTotals>> {
        let mut out = Vec::new();
        for (shard_index, names) in self.by_shard(zones).await? {
            let shard = &self.shards.all()[shard_index];
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
            for name in names {
                let (total, opened) = rows
                    .iter()
                    .find(|r| r.zone == name)
                    .map_or((0, 0), |r| (r.total, r.opened));
                out.push(ZoneTotals {
                    zone: name,
                    total,
                    opened,
                    remaining: total - opened,
                });
            }
        }
        Ok(out)
    }
}

impl<T: Frame, W: Sink<Outgoing<T>> + Unpin + Send> Session<T, W> {
    /// Sends the `chest_opened` events of `zones` after `since` up to `now` that the client
    /// does not have yet, oldest first per shard, each with its own position. Nothing is sent
    /// when the gap on some shard is wider than the replay window, or reaches back past what
    /// this connection can still tell apart (`TooWide`: a snapshot is sent instead). Reads
    /// and writes one bounded page at a time under a `replays` permit, so memory stays
    /// bounded however many clients resume.
    pub(super) async fn replay(
        &mut self,
        zones: &[Arc<str>],
        since: &Position,
        now: &Position,
    ) -> Result<Replay> {
        if zones.iter().any(|z| {
            self.zones
                .get(z)
                .is_some_and(|s| !s.replayable(since.0[s.shard]))
        }) {
            return Ok(Replay::TooWide);
        }
        // Measure every shard's gap before sending anything: a replay is all or nothing.
        let window = self.rt.settings.replay_window;
        let mut gaps = Vec::new();
        for (shard_index, names) in self.rt.by_shard(zones).await? {
            let (from, to) = (since.0[shard_index], now.0[shard_index]);
            if from >= to {
                continue;
            }
            let shard = &self.rt.shards.all()[shard_index];
            // A zone that moved here after `since`: its earlier events were on another shard.
            let arrivals = sqlx::query_file!("sql/zone_arrivals.sql", &names[..])
                .fetch_all(&mut *shard.acquire().await?)
                .await
                .map_err(|e| shard.db_error(e))?;
            if arrivals.iter().any(|a| a.arrived_xid > from.xid) {
                return Ok(Replay::TooWide);
            }
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
                    PAGE
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
                            rarity: r.loot.as_ref().and_then(best_rarity),
                            opened_at,
                            claim_id,
                        },
                    };
                    frames.push(T::from(ServerMessage::event(&event, &pos)));
                }
                if let Flow::Close = self.write_page(frames).await {
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
    async fn write_page(&mut self, frames: Vec<T>) -> Flow {
        let n = frames.len() as u64;
        let sink = &mut self.sink;
        let write = async {
            for text in frames {
                sink.feed(Outgoing::Text(text)).await?;
            }
            sink.flush().await
        };
        match timeout(self.rt.settings.write_timeout, write).await {
            Ok(Ok(())) => {
                self.rt.metrics.ws_messages_sent.inc_by(n);
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }
}
