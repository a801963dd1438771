//! One probe round: for every shard, a fresh synthetic zone of S chests that hashes to it,
//! C > S concurrent claims from distinct synthetic players (some racing a retry with the same
//! key, some dropping their first response and retrying), then the ledger read back.

use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checks::{self, Answer, Observation, Plan, PlayerRun, Violation};
use super::client::Client;
use super::{ProbeError, ProbeOptions};
use crate::shards::shard_index;

/// What one round found.
#[derive(Debug, Clone)]
pub struct RoundReport {
    pub round: u64,
    pub shards: usize,
    pub chests: usize,
    /// Claim requests sent, retries and dropped ones included.
    pub requests: usize,
    pub elapsed: Duration,
    pub violations: Vec<Violation>,
    /// Shards whose part of the round could not run to a verdict (beside ones that found
    /// violations: those are never thrown away).
    pub incomplete: Vec<String>,
}

impl RoundReport {
    /// Every shard checked, nothing found.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.incomplete.is_empty()
    }
}

/// Runs round `round` on every shard at once. `tag` keeps zones and players of concurrent
/// probes (or restarts) apart.
pub async fn run(
    client: &Client,
    opts: &ProbeOptions,
    tag: &str,
    round: u64,
) -> Result<RoundReport, ProbeError> {
    let started = Instant::now();
    let shards = client.shard_count().await?;
    client.put_probe_table().await?;
    let parts = (0..shards).map(|shard| shard_round(client, opts, tag, round, shard, shards));
    let mut violations = Vec::new();
    let mut incomplete = Vec::new();
    let mut requests = 0;
    for (shard, part) in futures_util::future::join_all(parts)
        .await
        .into_iter()
        .enumerate()
    {
        match part {
            Ok((observation, sent)) => {
                requests += sent;
                violations.extend(checks::check(&observation));
            }
            Err(e) => incomplete.push(format!("shard {shard}: {e}")),
        }
    }
    if violations.is_empty() && !incomplete.is_empty() {
        return Err(ProbeError::Incomplete(incomplete.join("; ")));
    }
    Ok(RoundReport {
        round,
        shards,
        chests: opts.chests * shards,
        requests,
        elapsed: started.elapsed(),
        violations,
        incomplete,
    })
}

/// A zone name for this round that the stable hash puts on `shard`.
pub fn zone_for(tag: &str, round: u64, shard: usize, shards: usize) -> String {
    (0u32..)
        .map(|n| format!("probe.{tag}.{round}.{shard}.{n}"))
        .find(|z| shard_index(z, shards) == shard)
        .unwrap_or_default()
}

async fn shard_round(
    client: &Client,
    opts: &ProbeOptions,
    tag: &str,
    round: u64,
    shard: usize,
    shards: usize,
) -> Result<(Observation, usize), ProbeError> {
    let zone = zone_for(tag, round, shard, shards);
    client.spawn(&zone, opts.chests).await?;
    let watcher = match opts.websocket {
        true => Some(client.watch(&zone).await?),
        false => None,
    };

    // Who does what, shuffled so racing and dropping players meet the zone's last chests
    // as often as the first ones.
    let mut rng = ChaCha8Rng::seed_from_u64(round ^ ((shard as u64) << 32));
    let mut plans: Vec<Plan> = (0..opts.claimers)
        .map(|j| match j {
            j if j < opts.racing => Plan::Racing,
            j if j < opts.racing + opts.dropped => Plan::Dropped,
            _ => Plan::Single,
        })
        .collect();
    for i in (1..plans.len()).rev() {
        plans.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let runs = plans.iter().enumerate().map(|(j, &plan)| {
        let player = format!("probe-{tag}-{round}-{shard}-{j}");
        let key = format!("probe-key-{j}");
        // The dropped request is abandoned after 0-3 ms: sometimes before the server saw it,
        // sometimes mid-claim, sometimes after it committed.
        let drop_after = Duration::from_micros(rng.next_u64() % 3000);
        let zone = zone.as_str();
        async move {
            let answers = match plan {
                Plan::Single => vec![client.claim(zone, &player, &key).await],
                Plan::Racing => {
                    let (a, b) = tokio::join!(
                        client.claim(zone, &player, &key),
                        client.claim(zone, &player, &key)
                    );
                    vec![a, b]
                }
                Plan::Dropped => {
                    let _ =
                        tokio::time::timeout(drop_after, client.claim(zone, &player, &key)).await;
                    vec![client.claim(zone, &player, &key).await]
                }
            };
            (player, key, plan, answers)
        }
    });
    let done = futures_util::future::join_all(runs).await;
    let mut sent = done
        .iter()
        .map(|(_, _, plan, _)| match plan {
            Plan::Single => 1,
            Plan::Racing | Plan::Dropped => 2,
        })
        .sum::<usize>();

    // Every winner asks once more, after everything settled: the answer must not change.
    let zone_name = zone.as_str();
    let late = done.iter().map(|(player, key, _, answers)| async move {
        let won = answers.iter().any(|a| matches!(a, Answer::Claim { .. }));
        match won {
            true => Some(client.claim(zone_name, player, key).await),
            false => None,
        }
    });
    let late = futures_util::future::join_all(late).await;
    sent += late.iter().flatten().count();
    let players: Vec<PlayerRun> = done
        .into_iter()
        .zip(late)
        .map(|((player, _, plan, answers), late_replay)| PlayerRun {
            player,
            plan,
            answers,
            late_replay,
        })
        .collect();

    let events = match watcher {
        Some(w) => {
            let events = w
                .finish(
                    opts.chests,
                    Duration::from_secs(10),
                    Duration::from_millis(300),
                )
                .await;
            if events.is_none() {
                tracing::warn!(
                    shard,
                    zone = %zone,
                    "probe: the WebSocket reported a gap (lagged, resync or closed); events not checked this round"
                );
            }
            events
        }
        None => None,
    };
    let winners: Vec<String> = players
        .iter()
        .filter(|p| p.late_replay.is_some())
        .map(|p| p.player.clone())
        .collect();
    let ledger = client.ledger(&zone, &winners).await?;
    Ok((
        Observation {
            shard,
            zone,
            chests: opts.chests,
            players,
            ledger,
            events,
        },
        sent,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_zones_land_on_the_shard_they_are_for() {
        for shards in 1..6 {
            for shard in 0..shards {
                let z = zone_for("abc123", 7, shard, shards);
                assert_eq!(shard_index(&z, shards), shard);
                assert!(crate::names::validate_zone_name(&z).is_ok(), "{z}");
            }
        }
    }
}
