//! Rebalancing and draining: plans of zone moves that even out the chests per shard (or empty
//! one shard), shown before they run, carried out one online move at a time with `--apply`.
//!
//! The plan is greedy: while the fullest shard is more than the tolerance above the mean, its
//! largest zone that fits in the gap to the emptiest shard moves there. A zone larger than
//! the gap would only move the imbalance, so it stays; the plan says how far it got.

use std::time::Duration;

use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::moves::MoveOptions;
use crate::shards::cli::ShardCommand;

/// One zone as the plan sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSize {
    pub zone: String,
    pub shard: usize,
    /// Chests over its life (unopened plus ledger rows): what it stores.
    pub chests: i64,
    pub unopened: i64,
    /// Claims per second recently (sampled by `trove rebalance --sample-secs`), if known.
    pub rate: Option<f64>,
}

/// A planned move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMove {
    pub zone: String,
    pub from: usize,
    pub to: usize,
    pub chests: i64,
}

/// Chests per shard before and after, and the moves between.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub before: Vec<i64>,
    pub after: Vec<i64>,
    /// Recent claims per second per shard, where sampled.
    pub rate_before: Vec<f64>,
    pub rate_after: Vec<f64>,
    pub zones_before: Vec<usize>,
    pub zones_after: Vec<usize>,
    pub moves: Vec<PlannedMove>,
}

/// `trove rebalance` and `trove shards drain`.
#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    /// Carry the plan out (online, one zone at a time); without it, only show it.
    #[arg(long)]
    apply: bool,
    /// Empty this shard instead: move every zone off it (to retire it).
    #[arg(long)]
    drain: Option<usize>,
    /// How far above the mean a shard may stay, as a fraction of the mean.
    #[arg(long, default_value_t = 0.1)]
    tolerance: f64,
    /// Pause between moves, and after each copy transaction, in ms (throttling).
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
    /// The most of the time each move's copy may keep the shards busy, in percent (1-100).
    #[arg(long, default_value_t = crate::moves::DEFAULT_SHARE)]
    share: u32,
    /// Sample each zone's claim rate over this many seconds first, to show it in the plan.
    #[arg(long, default_value_t = 0)]
    sample_secs: u64,
}

/// Plans moves until no shard is more than `tolerance` (of the mean) above the mean, or no
/// single move would bring the fullest shard closer. `avoid` shards take no zones.
pub fn plan(zones: &[ZoneSize], shards: usize, tolerance: f64, avoid: &[usize]) -> Plan {
    let mut load = vec![0i64; shards];
    let mut count = vec![0usize; shards];
    for z in zones {
        load[z.shard] += z.chests;
        count[z.shard] += 1;
    }
    let (before, zones_before) = (load.clone(), count.clone());
    let rate_of = |zones: &[ZoneSize]| {
        let mut r = vec![0.0; shards];
        for z in zones {
            r[z.shard] += z.rate.unwrap_or(0.0);
        }
        r
    };
    let rate_before = rate_of(zones);
    let targets: Vec<usize> = (0..shards).filter(|s| !avoid.contains(s)).collect();
    let mut placed: Vec<ZoneSize> = zones.to_vec();
    let mut moves = Vec::new();
    let total: i64 = load.iter().sum();
    let mean = total as f64 / targets.len().max(1) as f64;
    for _ in 0..zones.len() {
        // A drained shard gives away everything; otherwise the fullest gives to the emptiest.
        let from = avoid
            .iter()
            .copied()
            .find(|&s| load[s] > 0 || count[s] > 0)
            .or_else(|| (0..shards).max_by_key(|&s| load[s]))
            .unwrap_or(0);
        let Some(&to) = targets
            .iter()
            .filter(|&&s| s != from)
            .min_by_key(|&&s| load[s])
        else {
            break;
        };
        let draining = avoid.contains(&from);
        if !draining && (load[from] as f64) <= mean * (1.0 + tolerance) {
            break;
        }
        let gap = load[from] - load[to];
        // The largest zone of `from` that narrows the gap (all of them when draining).
        let pick = placed
            .iter_mut()
            .filter(|z| z.shard == from && (draining || z.chests < gap))
            .max_by_key(|z| z.chests);
        let Some(zone) = pick else { break };
        zone.shard = to;
        load[from] -= zone.chests;
        load[to] += zone.chests;
        count[from] -= 1;
        count[to] += 1;
        moves.push(PlannedMove {
            zone: zone.zone.clone(),
            from,
            to,
            chests: zone.chests,
        });
    }
    Plan {
        rate_after: rate_of(&placed),
        rate_before,
        before,
        after: load,
        zones_before,
        zones_after: count,
        moves,
    }
}

impl Plan {
    /// The plan as an operator reads it.
    pub fn describe(&self) -> String {
        let mut out = String::from(
            "shard | zones before | chests before | claims/s | zones after | chests after | claims/s\n",
        );
        for s in 0..self.before.len() {
            out.push_str(&format!(
                "{s:>5} | {:>12} | {:>13} | {:>8.1} | {:>11} | {:>12} | {:>8.1}\n",
                self.zones_before[s],
                self.before[s],
                self.rate_before[s],
                self.zones_after[s],
                self.after[s],
                self.rate_after[s]
            ));
        }
        if self.moves.is_empty() {
            out.push_str("no move needed\n");
        }
        for m in &self.moves {
            out.push_str(&format!(
                "move {} ({} chests): shard {} -> {}\n",
                m.zone, m.chests, m.from, m.to
            ));
        }
        out
    }
}

impl Engine {
    /// Every live zone's size, on every shard (a read per shard, O(zones)).
    pub async fn zone_sizes(&self) -> Result<Vec<ZoneSize>> {
        let mut out = Vec::new();
        for shard in self.shards.all() {
            let rows = sqlx::query_file!("sql/zone_sizes.sql")
                .fetch_all(&shard.pool()?)
                .await
                .map_err(|e| shard.db_error(e))?;
            out.extend(rows.into_iter().map(|r| ZoneSize {
                zone: r.name,
                shard: shard.index,
                chests: r.chest_count,
                unopened: r.chest_count - r.opened,
                rate: None,
            }));
        }
        Ok(out)
    }
}

/// Runs `trove shards [add URL | drain N]`: the text to print, and whether every shard is
/// ready. A drain is a plan of moves, so it is this module's.
pub async fn shards(engine: &Engine, command: Option<ShardCommand>) -> Result<(String, bool)> {
    match command {
        Some(ShardCommand::Drain { shard, apply }) => {
            let args = RebalanceArgs {
                apply,
                drain: Some(shard),
                tolerance: 0.1,
                pause_ms: 20,
                share: crate::moves::DEFAULT_SHARE,
                sample_secs: 0,
            };
            Ok((cli(engine, args).await?, true))
        }
        other => crate::shards::cli::shards(&engine.shards, other).await,
    }
}

/// Runs `trove rebalance [--drain N] [--apply]`: the plan, and with `--apply` the moves.
pub async fn cli(engine: &Engine, args: RebalanceArgs) -> Result<String> {
    let shards = engine.shards.len();
    if args.drain.is_some_and(|d| d >= shards) || !(0.0..10.0).contains(&args.tolerance) {
        return Err(Error::invalid(
            "invalid_plan",
            format!("--drain takes a shard below {shards}; --tolerance 0 to 10"),
        ));
    }
    if let Some(d) = args.drain {
        if args.apply {
            // From now on no new zone lands there.
            engine.shards.placement().drain(d).await?;
        }
    }
    let mut avoid = engine.shards.placement().draining().await?;
    avoid.extend(args.drain);
    avoid.sort_unstable();
    avoid.dedup();
    let mut sizes = engine.zone_sizes().await?;
    if args.sample_secs > 0 {
        // The claim rate: opened counts now and a moment later (counters only, no scan).
        let wait = Duration::from_secs(args.sample_secs.min(600));
        tokio::time::sleep(wait).await;
        let later: std::collections::HashMap<String, i64> = engine
            .zone_sizes()
            .await?
            .into_iter()
            .map(|z| (z.zone, z.chests - z.unopened))
            .collect();
        for z in &mut sizes {
            let opened = later.get(&z.zone).copied().unwrap_or(z.chests - z.unopened);
            z.rate = Some((opened - (z.chests - z.unopened)) as f64 / wait.as_secs_f64());
        }
    }
    let plan = plan(&sizes, shards, args.tolerance, &avoid);
    let mut out = plan.describe();
    if !args.apply {
        out.push_str("(a plan only: --apply carries it out)\n");
        return Ok(out);
    }
    let opts = MoveOptions {
        pause: Duration::from_millis(args.pause_ms),
        share: args.share.clamp(1, 100),
        ..MoveOptions::default()
    };
    for m in &plan.moves {
        let r = crate::moves::move_audited(engine, &m.zone, m.to, &opts).await?;
        out.push_str(&format!(
            "moved {} to shard {} (fenced {} ms)\n",
            r.zone, r.to, r.fenced_ms
        ));
        tokio::time::sleep(opts.pause).await;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, shard: usize, chests: i64) -> ZoneSize {
        ZoneSize {
            zone: name.into(),
            shard,
            chests,
            unopened: chests,
            rate: Some(1.0),
        }
    }

    #[test]
    fn a_new_empty_shard_gets_zones_until_every_shard_is_near_the_mean() {
        let zones: Vec<ZoneSize> = (0..12)
            .map(|i| zone(&format!("z{i}"), i % 2, 100))
            .collect();
        let p = plan(&zones, 3, 0.1, &[]);
        assert_eq!(p.before, vec![600, 600, 0]);
        assert!(
            p.after.iter().all(|&c| (360..=440).contains(&c)),
            "{:?}",
            p.after
        );
        assert!(p.moves.iter().all(|m| m.to == 2));
    }

    #[test]
    fn a_zone_larger_than_the_gap_stays_and_a_drain_empties_its_shard() {
        let zones = vec![zone("huge", 0, 1000), zone("small", 1, 10)];
        let p = plan(&zones, 2, 0.1, &[]);
        assert!(p.moves.is_empty(), "{:?}", p.moves);
        let d = plan(&zones, 3, 0.1, &[0]);
        assert_eq!(d.after[0], 0);
        assert_eq!(d.moves.len(), 1);
        assert_ne!(d.moves[0].to, 0);
    }
}
