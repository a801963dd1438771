//! Micro-batching: concurrent claims on a shard share one statement (`sql/claim.sql`).
//!
//! Each shard has a queue and a task. When a statement slot is free the task takes whatever
//! claims are waiting (up to `TROVE_CLAIM_BATCH_MAX`) and runs them as one statement, one
//! round trip and one commit. Under light load that is a batch of one and nothing waits; under
//! heavy load the claims that queued while a statement ran go together in the next, so the
//! per-transaction costs (round trip, snapshot, WAL flush) are shared instead of paid by every
//! claim. Every claim keeps its guarantees: the statement handles each claim on its own (its
//! draw, its idempotency key, its lock), and two claims of one batch that picked the same
//! chest are told `collided` and go again.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};
use uuid::Uuid;

use super::prerolled::Prerolled;
use super::{Claim, Signed};
use crate::error::{Error, Result};
use crate::receipts::{leaf_hash, receipt_bytes, ReceiptKeys};
use crate::shards::Shard;
use crate::zones::ZoneInfo;

/// One claim for the shard's next statement.
pub struct Request {
    pub zone_id: i32,
    /// The zone's name, for the claim the statement answers with.
    pub zone: Arc<str>,
    pub epoch: i32,
    pub player: String,
    pub key: Option<String>,
    pub start: i64,
    /// Pre-rolled loot per loot table id; an opened claim's loot is the entry of its
    /// chest's table.
    pub loot: Prerolled,
    pub claim_id: Uuid,
    pub chest: Option<i64>,
    /// Version-2 draws: the nonce and client seed the draw used (None: version 1).
    pub nonce: Option<i64>,
    pub client_seed: Option<String>,
    pub authorised_by: String,
    /// The zone as the draw saw it: its loot tables name an opened claim's table (the
    /// statement names only a replayed one's, which may be a version the zone no longer has).
    pub info: Arc<ZoneInfo>,
}

/// What the statement said about one claim (its `status` column, decoded once, here).
#[derive(Debug)]
pub enum ClaimStatus {
    /// This claim opened the chest.
    Opened(Signed),
    /// An earlier claim with the same idempotency key opened it.
    Replayed(Signed),
    /// No unopened chest is left in the zone.
    Exhausted,
    /// The chest asked for was opened, or is held by a claim in flight.
    AlreadyOpened,
    /// The chest asked for never existed.
    NotFound,
    /// The seed epoch moved on (a reveal): reload the zone and draw again.
    Stale,
    /// The draw's nonce or client seed is not the player's next: draw again with these.
    Nonce { next: i64, client_seed: String },
    /// The key's insert lost to a racing retry, or no loot was rolled for the chest's table.
    Retry,
    /// Another claim of the same batch took the chest or has the same key: go again.
    Collided,
    /// The zone is being moved off this shard (fenced): wait a moment and go again.
    Moving,
}

type Reply = oneshot::Sender<Result<ClaimStatus>>;

/// A claim in its shard's queue: what to run, where to answer, and since when it waits.
type Waiting = (Request, Reply, Instant);

/// A row of the statement's answer before the batch's receipts are signed.
enum Decoded {
    /// A claim, and whether it was a replay.
    Claim(Claim, bool),
    Status(ClaimStatus),
}

/// Times a batch is run again after a deadlock, or after another instance's claim took a
/// nonce this batch drew with, before its claims fail.
const RERUNS: usize = 3;

/// How long claims wait for a running statement before another starts beside it: several
/// times a claim statement's usual 1-3 ms, so it passes one stuck behind a lock (a racing
/// retry's key, a move's fence, another transaction) without splitting ordinary batches.
const STALL: Duration = Duration::from_millis(10);

/// How a shard batches claims (`TROVE_CLAIM_BATCH_MAX`, `TROVE_CLAIM_CONCURRENCY`).
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most claims in one statement (1 turns batching off).
    pub max: usize,
    /// Most claim statements in flight per shard at once (beyond the first, only while
    /// `max / in_flight` claims are waiting or the running ones are stuck).
    pub in_flight: usize,
}

/// One queue per shard, its task started on the first claim (so building an engine needs
/// no runtime).
pub struct Queues {
    queues: Vec<Queue>,
    batching: Batching,
    receipts: Arc<ReceiptKeys>,
}

struct Queue {
    shard: Arc<Shard>,
    tx: OnceLock<mpsc::UnboundedSender<Waiting>>,
    sent: Arc<Sent>,
}

/// Claim statements a shard's queue has sent and the claims they carried: their ratio is the
/// mean batch, which decides what a claim costs (one round trip, one commit and one receipt
/// signature are shared by a statement's claims). With the time the statements took and the
/// time claims waited for one, they say where a claim's latency goes.
#[derive(Default)]
struct Sent {
    statements: AtomicU64,
    claims: AtomicU64,
    statement_nanos: AtomicU64,
    waited_nanos: AtomicU64,
}

/// A shard queue's running totals (`trove_claim_statement*`, `trove_claim_wait*` metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SentTotals {
    pub statements: u64,
    pub claims: u64,
    /// Wall time of the statements, from asking for a connection to the answer (reruns
    /// included).
    pub statement_seconds: f64,
    /// Time claims waited in the queue before a statement took them.
    pub waited_seconds: f64,
}

fn add_nanos(total: &AtomicU64, d: Duration) {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    total.fetch_add(nanos, Ordering::Relaxed);
}

impl Queues {
    pub fn new(shards: &[Arc<Shard>], batching: Batching, receipts: Arc<ReceiptKeys>) -> Self {
        let queues = shards
            .iter()
            .map(|s| Queue {
                shard: Arc::clone(s),
                tx: OnceLock::new(),
                sent: Arc::default(),
            })
            .collect();
        Queues {
            queues,
            batching,
            receipts,
        }
    }

    /// Per shard: claim statements sent so far, the claims they carried, the statements'
    /// time and the claims' wait.
    pub fn sent(&self) -> Vec<SentTotals> {
        let seconds = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / 1e9;
        self.queues
            .iter()
            .map(|q| {
                let s = &q.sent;
                SentTotals {
                    statements: s.statements.load(Ordering::Relaxed),
                    claims: s.claims.load(Ordering::Relaxed),
                    statement_seconds: seconds(&s.statement_nanos),
                    waited_seconds: seconds(&s.waited_nanos),
                }
            })
            .collect()
    }

    /// Runs `req` in the next statement on `shard` and returns what it said.
    pub async fn submit(&self, shard: usize, req: Request) -> Result<ClaimStatus> {
        let queue = self
            .queues
            .get(shard)
            .ok_or_else(|| Error::Internal(format!("no claim queue for shard {shard}")))?;
        let tx = queue.tx.get_or_init(|| {
            // Unbounded: its length is bounded by the requests in flight, which the HTTP
            // concurrency cap already bounds.
            let (tx, rx) = mpsc::unbounded_channel();
            let receipts = Arc::clone(&self.receipts);
            let sent = Arc::clone(&queue.sent);
            tokio::spawn(run(
                Arc::clone(&queue.shard),
                rx,
                self.batching,
                receipts,
                sent,
            ));
            tx
        });
        let (reply, answer) = oneshot::channel();
        tx.send((req, reply, Instant::now()))
            .map_err(|_| Error::Internal("claim queue stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("claim batch dropped its answer".into()))?
    }
}

/// The shard's task. A statement takes everything waiting (up to the batch size). While one
/// is in flight, the next waits for it, unless the claims waiting fill a slot's share of a
/// full batch (`max / slots`) or no statement has finished for `STALL` (one is stuck behind a
/// lock): under moderate load claims share one statement at a time (one round trip, one
/// commit and one receipt signature for the lot; two at once made batches half as big and
/// cost PostgreSQL ~18 % more CPU a claim, `benches/claim_cpu.py`). Under heavy load the
/// statements run side by side, each on its own backend: waiting for a whole full batch
/// instead kept one backend (one core) doing every claim of the shard while the other slot
/// sat idle (64 clients never fill a 64-claim batch behind a running one), and pgbench with
/// the same batches on both connections did twice the claims.
async fn run(
    shard: Arc<Shard>,
    mut rx: mpsc::UnboundedReceiver<Waiting>,
    batching: Batching,
    receipts: Arc<ReceiptKeys>,
    sent: Arc<Sent>,
) {
    let (max, slots) = (batching.max.max(1), batching.in_flight.max(1));
    let share = max.div_ceil(slots);
    let running = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let mut batch = Vec::new();
    let mut open = true;
    // When a statement last started or finished.
    let mut progress = Instant::now();
    loop {
        while batch.len() < max {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let busy = running.load(Ordering::Acquire);
        let stalled = progress.elapsed() >= STALL;
        if starts(batch.len(), busy, slots, share, stalled) {
            sent.statements.fetch_add(1, Ordering::Relaxed);
            sent.claims.fetch_add(batch.len() as u64, Ordering::Relaxed);
            running.fetch_add(1, Ordering::AcqRel);
            let (shard, receipts) = (Arc::clone(&shard), Arc::clone(&receipts));
            let slot = Slot {
                running: Arc::clone(&running),
                done: Arc::clone(&done),
            };
            let claims = std::mem::take(&mut batch);
            progress = Instant::now();
            let waited = claims.iter().map(|(_, _, since)| progress - *since).sum();
            add_nanos(&sent.waited_nanos, waited);
            let sent = Arc::clone(&sent);
            tokio::spawn(async move { execute(&shard, &receipts, &sent, claims, slot).await });
            continue;
        }
        if !open && batch.is_empty() {
            return;
        }
        // Wait for a claim, a finished statement (a stored permit covers one that finished
        // since the check above) or, with claims waiting and a slot free, the stall.
        let waiting = !batch.is_empty() && busy < slots;
        tokio::select! {
            next = rx.recv(), if open && batch.len() < max => match next {
                Some(next) => batch.push(next),
                None => open = false,
            },
            () = done.notified() => progress = Instant::now(),
            () = tokio::time::sleep_until((progress + STALL).into()), if waiting => {}
        }
    }
}

/// A running statement's place among the shard's slots. Given back (waking the shard's task)
/// once the statement has answered, before its rows are decoded, its receipts signed and its
/// claims answered: the connection is free by then, and the next statement need not wait
/// for that work. Dropped on every path, a panic's included.
struct Slot {
    running: Arc<AtomicUsize>,
    done: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.done.notify_one();
    }
}

/// Whether `waiting` claims go now, with `busy` of `slots` statements in flight: at once on an
/// idle shard; beside running ones when a slot's `share` of a full batch waits or the running
/// ones are stalled.
fn starts(waiting: usize, busy: usize, slots: usize, share: usize, stalled: bool) -> bool {
    waiting > 0 && (busy == 0 || (busy < slots && (waiting >= share || stalled)))
}

async fn execute(
    shard: &Arc<Shard>,
    receipts: &ReceiptKeys,
    sent: &Sent,
    batch: Vec<Waiting>,
    slot: Slot,
) {
    let n = batch.len();
    let mut zone_ids = Vec::with_capacity(n);
    let mut epochs = Vec::with_capacity(n);
    let mut players = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    let mut loots = Vec::with_capacity(n);
    let mut claim_ids = Vec::with_capacity(n);
    let mut chests = Vec::with_capacity(n);
    let mut nonces = Vec::with_capacity(n);
    let mut client_seeds = Vec::with_capacity(n);
    let mut authorisers = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut infos = Vec::with_capacity(n);
    for (r, reply, _) in batch {
        names.push(r.zone);
        infos.push(r.info);
        zone_ids.push(r.zone_id);
        epochs.push(r.epoch);
        players.push(r.player);
        keys.push(r.key);
        starts.push(r.start);
        loots.push(r.loot);
        claim_ids.push(r.claim_id);
        chests.push(r.chest);
        nonces.push(r.nonce);
        client_seeds.push(r.client_seed);
        authorisers.push(r.authorised_by);
        replies.push(reply);
    }
    let run = || async {
        let mut conn = shard.acquire().await?;
        let rows = sqlx::query_file!(
            "sql/claim.sql",
            &zone_ids,
            &epochs,
            &players,
            &keys as &[Option<String>],
            &starts,
            &loots as &[Prerolled],
            &claim_ids,
            &chests as &[Option<i64>],
            &nonces as &[Option<i64>],
            &client_seeds as &[Option<String>],
            &authorisers
        )
        .fetch_all(&mut *conn)
        .await;
        Ok::<_, Error>(rows)
    };
    let started = Instant::now();
    let mut rows = run().await;
    // The statement rolled back as a whole, so running it again is safe. A deadlock needs
    // every counter slot of two zones held at once (the statement then waits for one), or
    // two instances claiming for the same players at once; a nonce taken by another
    // instance's claim is seen by the next run's snapshot (and answered `nonce`).
    for _ in 0..RERUNS {
        match &rows {
            Ok(Err(sqlx::Error::Database(e)))
                if e.code().as_deref() == Some("40P01")
                    || (e.code().as_deref() == Some("23505")
                        && e.constraint() == Some("claims_nonce")) =>
            {
                rows = run().await;
            }
            _ => break,
        }
    }
    add_nanos(&sent.statement_nanos, started.elapsed());
    drop(slot);
    let rows = rows.and_then(|r| r.map_err(|e| shard.db_error(e)));
    match rows {
        Ok(rows)
            if rows.iter().enumerate().all(|(i, r)| r.idx == i as i64 + 1) && rows.len() == n =>
        {
            let mut decoded = Vec::with_capacity(n);
            for ((((row, reply), (zone, player)), info), rolled) in rows
                .into_iter()
                .zip(replies)
                .zip(names.into_iter().zip(players))
                .zip(infos)
                .zip(loots.iter_mut())
            {
                // An opened claim's loot is what this claim rolled for the chest's table (the
                // statement wrote it as sent and does not send it back); a replay's comes
                // from the ledger.
                let loot = row.loot.or_else(|| rolled.take(row.loot_table_id?));
                let table = match (&row.loot_table, row.loot_table_version) {
                    (Some(name), Some(version)) => Some((name.clone(), version)),
                    _ => row
                        .loot_table_id
                        .and_then(|id| info.tables.iter().find(|t| t.id == id))
                        .map(|t| (t.name.clone(), t.version)),
                };
                let recorded = || match (
                    row.claim_id,
                    row.chest_id,
                    loot,
                    row.opened_at,
                    row.seed_epoch,
                    table,
                ) {
                    (
                        Some(claim_id),
                        Some(chest_id),
                        Some(loot),
                        Some(opened_at),
                        Some(seed_epoch),
                        Some((loot_table, loot_table_version)),
                    ) => Ok(Claim {
                        claim_id,
                        zone: zone.to_string(),
                        chest_id,
                        player,
                        loot,
                        opened_at,
                        seed_epoch,
                        loot_table,
                        loot_table_version,
                        nonce: row.nonce,
                        client_seed: row.client_seed,
                        authorised_by: row.authorised_by,
                    }),
                    _ => Err(Error::Internal("claim statement returned no claim".into())),
                };
                let status = match row.status.as_str() {
                    "opened" => recorded().map(|c| Decoded::Claim(c, false)),
                    "replayed" => recorded().map(|c| Decoded::Claim(c, true)),
                    "exhausted" => Ok(Decoded::Status(ClaimStatus::Exhausted)),
                    "already_opened" => Ok(Decoded::Status(ClaimStatus::AlreadyOpened)),
                    "not_found" => Ok(Decoded::Status(ClaimStatus::NotFound)),
                    "stale" => Ok(Decoded::Status(ClaimStatus::Stale)),
                    "nonce" => match (row.next_nonce, row.next_client_seed.clone()) {
                        (Some(next), Some(client_seed)) => {
                            Ok(Decoded::Status(ClaimStatus::Nonce { next, client_seed }))
                        }
                        _ => Err(Error::Internal("a nonce answer without the next".into())),
                    },
                    "retry" => Ok(Decoded::Status(ClaimStatus::Retry)),
                    "collided" => Ok(Decoded::Status(ClaimStatus::Collided)),
                    "moving" => Ok(Decoded::Status(ClaimStatus::Moving)),
                    other => Err(Error::Internal(format!("unknown claim status {other:?}"))),
                };
                decoded.push((reply, status));
            }
            // One signature for the batch: its claims' receipts are the leaves of one tree.
            let leaves: Vec<_> = decoded
                .iter()
                .filter_map(|(_, d)| match d {
                    Ok(Decoded::Claim(c, _)) => {
                        Some(leaf_hash(&receipt_bytes(&c.receipt_fields())))
                    }
                    _ => None,
                })
                .collect();
            let mut signed = receipts.sign(&leaves).into_iter();
            for (reply, d) in decoded {
                let status = match d {
                    Ok(Decoded::Claim(claim, replayed)) => match signed.next() {
                        Some(receipt) => {
                            let s = Signed { claim, receipt };
                            Ok(if replayed {
                                ClaimStatus::Replayed(s)
                            } else {
                                ClaimStatus::Opened(s)
                            })
                        }
                        None => Err(Error::Internal("a claim without its receipt".into())),
                    },
                    Ok(Decoded::Status(s)) => Ok(s),
                    Err(e) => Err(e),
                };
                let _ = reply.send(status);
            }
        }
        Ok(rows) => {
            let msg = format!(
                "claim statement answered {} rows for {n} claims",
                rows.len()
            );
            for reply in replies {
                let _ = reply.send(Err(Error::Internal(msg.clone())));
            }
        }
        Err(e) => {
            // Every claim of the batch gets the batch's fate (the statement ran as one).
            tracing::warn!(shard = shard.index, claims = n, error = %e, "claim batch failed");
            for reply in replies {
                let _ = reply.send(Err(e.copy_for_batch()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::starts;

    #[test]
    fn a_second_statement_starts_once_a_slots_share_waits() {
        // Batches of up to 64 on two slots: a share is 32.
        let share = 64usize.div_ceil(2);
        assert!(
            starts(1, 0, 2, share, false),
            "an idle shard runs a lone claim at once"
        );
        assert!(
            !starts(0, 0, 2, share, false),
            "nothing waiting, nothing to run"
        );
        assert!(
            !starts(31, 1, 2, share, false),
            "fewer than a share wait for the running one"
        );
        assert!(
            starts(32, 1, 2, share, false),
            "a share goes beside the running one"
        );
        assert!(!starts(64, 2, 2, share, false), "never beyond the slots");
        assert!(
            starts(1, 1, 2, share, true),
            "a stalled statement is passed"
        );
        // Batching off: every claim is its own statement, up to the slots.
        assert!(starts(1, 1, 2, 1, false));
    }
}
