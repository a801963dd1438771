//! What one connection has delivered of one zone, so a resume never repeats an event.
//!
//! Events of a zone come from two sources: the live queue (every event after the point where
//! the hub started queuing them) and `since` replays from the ledger. After a `lagged`
//! message the queue restarts at a later point, and a client may resume with a `since` that
//! is older than events it already got live, or (from another instance) newer than this
//! instance's tail. So each zone keeps the ranges of its shard's positions that the client
//! already has, and both sources drop events inside them.

use crate::ledger::Cursor;

/// Ranges kept per zone. A new range only appears after a `lagged` message that the client
/// did not resume from; past this many the oldest is forgotten and a `since` below it gets a
/// snapshot (`resumed: false`) instead of a replay that might repeat events.
const MAX_RANGES: usize = 8;

/// The delivery state of one subscribed zone on one connection. All cursors are positions on
/// the zone's shard.
#[derive(Debug, Clone)]
pub struct ZoneState {
    /// The zone's shard.
    pub shard: usize,
    /// The connection's queue holds every event of the zone after this; an event at or below
    /// it still in the queue is covered by the snapshot sent at it, and earlier ones come only
    /// from a replay.
    live_from: Cursor,
    /// Sorted, disjoint ranges `(lo, hi]` the client has: sent on this connection, or declared
    /// with `since`.
    seen: Vec<(Cursor, Cursor)>,
    /// A `since` below this cannot be replayed exactly (a range was forgotten).
    exact_from: Cursor,
}

impl ZoneState {
    /// A zone whose queue starts after `live_from` (the hub's position when it subscribed).
    pub fn new(shard: usize, live_from: Cursor) -> Self {
        ZoneState {
            shard,
            live_from,
            seen: Vec::new(),
            exact_from: Cursor::default(),
        }
    }

    /// Whether a queued live event at `c` is to be sent; records it as sent if so.
    pub fn take_live(&mut self, c: Cursor) -> bool {
        if c <= self.live_from || self.covers(c) {
            return false;
        }
        // Every queued event in (live_from, c] was sent or already seen.
        self.insert(self.live_from, c);
        true
    }

    /// A snapshot as of `at` was sent: queued events up to it are in it. A position below the
    /// current one means the shard's history was reset (a resync after its xid counter went
    /// back), so what was seen no longer compares: start over.
    pub fn rebase(&mut self, at: Cursor) {
        if at < self.live_from {
            self.seen.clear();
            self.exact_from = Cursor::default();
        }
        self.live_from = at;
    }

    /// The client says it has every event up to `since`.
    pub fn declare(&mut self, since: Cursor) {
        self.insert(Cursor::default(), since);
    }

    /// Whether a replay from `since` can be exact.
    pub fn replayable(&self, since: Cursor) -> bool {
        since >= self.exact_from
    }

    /// Whether a replayed ledger event at `c` is to be sent (not had yet); records it if so.
    /// A replay reads the zone's events in order, so once `c` is sent the client has every
    /// event of the zone up to `c` (queued copies of them are then dropped).
    pub fn take_replayed(&mut self, c: Cursor) -> bool {
        if self.covers(c) {
            return false;
        }
        self.insert(Cursor::default(), c);
        true
    }

    /// A replay up to `to` finished: the client has everything up to there.
    pub fn replayed(&mut self, to: Cursor) {
        self.insert(Cursor::default(), to);
    }

    fn covers(&self, c: Cursor) -> bool {
        self.seen.iter().any(|&(lo, hi)| lo < c && c <= hi)
    }

    /// Adds `(lo, hi]`, merging overlapping or touching ranges; keeps at most `MAX_RANGES`.
    fn insert(&mut self, lo: Cursor, hi: Cursor) {
        if lo >= hi {
            return;
        }
        // The common case, a live event extending the latest range: no allocation.
        if let Some(last) = self.seen.last_mut() {
            if last.0 <= lo && lo <= last.1 {
                last.1 = last.1.max(hi);
                return;
            }
        }
        let mut merged = (lo, hi);
        let mut out = Vec::with_capacity(self.seen.len() + 1);
        for &(a, b) in &self.seen {
            if b < merged.0 || a > merged.1 {
                out.push((a, b));
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
            }
        }
        let at = out.partition_point(|&(a, _)| a < merged.0);
        out.insert(at, merged);
        while out.len() > MAX_RANGES {
            let (_, hi) = out.remove(0);
            self.exact_from = self.exact_from.max(hi);
        }
        self.seen = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(xid: i64) -> Cursor {
        Cursor {
            xid,
            zone_id: 1,
            chest_id: 1,
        }
    }

    #[test]
    fn a_lag_gap_is_replayed_once_and_live_events_are_not_repeated() {
        let mut z = ZoneState::new(0, c(10));
        assert!(z.take_live(c(11)) && z.take_live(c(12)));
        // Lagged: events 13..=19 were skipped, the queue restarts after 20.
        z.rebase(c(20));
        assert!(z.take_live(c(21)) && z.take_live(c(22)));
        assert!(!z.take_live(c(15)), "below the snapshot");
        // Resume from 12 with the hub at 24 (23 and 24 still queued): the gap (12, 20] and
        // the queued events are replayed, in order, and the queued copies dropped.
        z.declare(c(12));
        assert!(z.replayable(c(12)));
        let sent: Vec<i64> = (5..=24).filter(|&x| z.take_replayed(c(x))).collect();
        assert_eq!(sent, vec![13, 14, 15, 16, 17, 18, 19, 20, 23, 24]);
        z.replayed(c(24));
        assert!(!z.take_live(c(23)) && !z.take_live(c(24)));
        // An even older since now repeats nothing; later live events still flow.
        z.declare(c(1));
        assert!((1..=24).all(|x| !z.take_replayed(c(x))));
        assert!(z.take_live(c(25)));
    }

    #[test]
    fn a_since_ahead_of_this_instance_drops_live_events_up_to_it() {
        let mut z = ZoneState::new(0, c(10));
        z.declare(c(30));
        // This instance's tail is at 10: nothing to replay.
        z.replayed(c(10));
        assert!((11..=30).all(|x| !z.take_live(c(x))));
        assert!(z.take_live(c(31)));
    }

    #[test]
    fn too_many_gaps_make_old_positions_unreplayable_instead_of_repeating() {
        let mut z = ZoneState::new(0, c(0));
        for i in 0..20 {
            assert!(z.take_live(c(i * 10 + 1)));
            z.rebase(c(i * 10 + 5));
        }
        assert!(z.seen.len() <= MAX_RANGES);
        assert!(!z.replayable(c(1)));
        assert!(z.replayable(c(199)));
    }

    #[test]
    fn a_position_that_went_back_starts_over() {
        let mut z = ZoneState::new(0, c(100));
        assert!(z.take_live(c(101)));
        z.rebase(c(50));
        assert!(z.take_live(c(51)) && z.take_live(c(101)));
    }
}
