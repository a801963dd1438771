//! One follower per shard: tails the ledger below the xmin horizon on a dedicated connection
//! and hands batches to the hub. On any error it reconnects with backoff and resumes from its
//! cursor, so a shard restart loses no event (the ledger is durable). When it cannot resume
//! (it first reaches the shard only after the instance started serving, or the shard's xid
//! counter went back) it starts at the horizon and has the hub resync the shard's subscribers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgConnection;

use tokio::sync::{oneshot, watch};

use super::hub::{Event, EventKind, Hub};
use super::Frame;
use crate::ledger::{batch_end, best_rarity_text, Cursor};
use crate::shards::Shard;

/// Rows fetched per poll; a full batch is followed by another poll at once.
const BATCH: i64 = 2000;
/// At most a second between reconnects: after a failover the tail is back on the new primary
/// about as soon as claims are, rather than after a burst a subscriber cannot keep up with.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) async fn follow<T: Frame>(
    shard: Arc<Shard>,
    hub: Hub<T>,
    poll: Duration,
    started: oneshot::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
    reconnects: prometheus::IntCounter,
) {
    let mut started = Some(started);
    let mut cursor: Option<Cursor> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let run = tail(&shard, &hub, poll, &mut cursor, &mut started, &mut backoff);
        tokio::select! {
            result = run => {
                if let Err(e) = result {
                    reconnects.inc();
                    tracing::warn!(shard = shard.index, error = %e, "realtime tail lost its connection; reconnecting");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn tail<T: Frame>(
    shard: &Shard,
    hub: &Hub<T>,
    poll: Duration,
    cursor: &mut Option<Cursor>,
    started: &mut Option<oneshot::Sender<()>>,
    backoff: &mut Duration,
) -> Result<(), sqlx::Error> {
    let mut conn = shard.connect().await?;
    // One plan for every position, by index throughout (sql/tail_events.sql).
    sqlx::query_file!("sql/generic_plans.sql")
        .execute(&mut conn)
        .await?;
    *backoff = Duration::from_millis(100);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first_poll = true;
    loop {
        let from = cursor.unwrap_or_default();
        let rows = sqlx::query_file!(
            "sql/tail_events.sql",
            from.xid,
            from.zone_id,
            from.chest_id,
            BATCH
        )
        .fetch_all(&mut conn)
        .await?;
        let Some(horizon) = rows.first().map(|r| r.horizon) else {
            return Err(sqlx::Error::RowNotFound);
        };
        let reconnected = std::mem::replace(&mut first_poll, false);
        let from = match *cursor {
            // Resuming from the cursor loses nothing: the ledger is durable and every row
            // after the cursor is still to be read, unless the shard's xid counter went back
            // (a restore, or a failover to a replica that was behind).
            Some(c) if !(reconnected && c.xid >= horizon) => c,
            previous => {
                // Events start at the horizon (history is for `since` replays).
                let c = Cursor::below(horizon);
                *cursor = Some(c);
                // Before the instance serves, nobody can have missed anything. Later (the
                // shard was unreachable at start, or went back), subscribers of its zones
                // may have: they get a fresh snapshot, never a silent gap.
                let on_time =
                    previous.is_none() && started.take().is_some_and(|tx| tx.send(()).is_ok());
                if on_time {
                    hub.started(shard.index, c).await;
                } else {
                    tracing::warn!(
                        shard = shard.index,
                        "realtime tail started over at the shard's horizon; resyncing its subscribers"
                    );
                    hub.resync(shard.index, c).await;
                }
                continue;
            }
        };
        let full = rows.len() as i64 == BATCH;
        let mut events = Vec::with_capacity(rows.len());
        for r in rows {
            let (Some(kind), Some(xid), Some(zone_id), Some(zone), Some(chest_id), Some(at)) =
                (r.kind, r.xid, r.zone_id, r.zone, r.chest_id, r.at)
            else {
                continue; // the no-event row
            };
            let key = Cursor {
                xid,
                zone_id,
                chest_id,
            };
            let kind = match (kind.as_str(), r.claim_id, r.count) {
                ("arrival", _, _) => EventKind::Arrived,
                ("spawn", _, Some(count)) => EventKind::Spawned {
                    count,
                    // Filled in by `spawn_totals` below, as of this event's position.
                    total: 0,
                    remaining: 0,
                },
                (_, Some(claim_id), _) => EventKind::Opened {
                    chest_id,
                    player: r.player.unwrap_or_default(),
                    rarity: r.loot.as_deref().and_then(best_rarity_text),
                    opened_at: at,
                    claim_id,
                },
                _ => continue,
            };
            events.push(Event {
                cursor: key,
                zone: zone.into(),
                kind,
            });
        }
        let end = batch_end(full, events.last().map(|e| e.cursor), horizon, from);
        spawn_totals(&mut conn, &mut events, end).await?;
        if !events.is_empty() || end != from {
            hub.batch(shard.index, events, end).await;
        }
        *cursor = Some(end);
        if !full {
            tick.tick().await;
        }
    }
}

/// Fills in each spawn's `total` and `remaining` as of its own position: one snapshot of the
/// spawned zones at the batch's end (exact there: zone_snapshot.sql), walked back over the
/// batch's later events. Claims and spawns keep committing while the tail reads, so the
/// counters of "now" would not match the event's position. One query per batch with spawns.
async fn spawn_totals(
    conn: &mut PgConnection,
    events: &mut [Event],
    end: Cursor,
) -> Result<(), sqlx::Error> {
    let mut names: Vec<String> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Spawned { .. }))
        .map(|e| e.zone.to_string())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    names.dedup();
    let rows = sqlx::query_file!(
        "sql/zone_snapshot.sql",
        &names[..],
        end.xid,
        end.zone_id,
        end.chest_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut at: HashMap<String, (i64, i64)> = rows
        .into_iter()
        .map(|r| (r.zone, (r.total, r.opened)))
        .collect();
    for e in events.iter_mut().rev() {
        let Some((total, opened)) = at.get_mut(&*e.zone) else {
            continue;
        };
        match &mut e.kind {
            EventKind::Spawned {
                count,
                total: t,
                remaining,
            } => {
                *t = *total;
                *remaining = *total - *opened;
                *total -= *count;
            }
            EventKind::Opened { .. } => *opened -= 1,
            EventKind::Arrived => {}
        }
    }
    Ok(())
}
