//! `trove migrate` and `trove shards [add URL]`: what they do and print.

use super::{report, ShardSet};
use crate::error::Result;

/// `trove shards` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ShardCommand {
    /// Migrate the database at URL and register it as the next shard (moves nothing).
    Add { url: String },
    /// Move every zone off shard N (online) so it can be retired; it takes no new zones.
    Drain {
        shard: usize,
        /// Carry the moves out; without it, only show the plan.
        #[arg(long)]
        apply: bool,
    },
}

/// Runs `trove shards [add URL]`: the text to print, and whether every shard is ready.
pub async fn shards(set: &ShardSet, command: Option<ShardCommand>) -> Result<(String, bool)> {
    match command {
        Some(ShardCommand::Drain { .. }) => Err(crate::error::Error::Internal(
            "drains are planned by `rebalance::shards`".into(),
        )),
        Some(ShardCommand::Add { url }) => {
            let id = set.add(&url).await?;
            let text = format!(
                "shard {} is registered as {}: append its URL to TROVE_SHARDS and restart every instance\n",
                id.ordinal, id.shard_id
            );
            Ok((text, true))
        }
        None => {
            let (lines, down) = report(&set.status().await);
            let mut text = lines.join("\n") + "\n";
            for m in set.moves_in_progress().await.unwrap_or_default() {
                text.push_str(&format!(
                    "move in progress: {} from shard {} to shard {} ({}, since {})\n",
                    m.zone, m.from, m.to, m.phase, m.updated_at
                ));
            }
            if down > 0 {
                text.push_str(&format!("{down} shard(s) not ready\n"));
            }
            Ok((text, down == 0))
        }
    }
}

/// Runs `trove migrate`: one line per shard.
pub async fn migrate(set: &ShardSet) -> Result<String> {
    let lines: Vec<String> = set
        .migrate()
        .await?
        .into_iter()
        .map(|s| {
            let version = s.migration_version.unwrap_or(0);
            format!(
                "shard {} {}: migrated to version {version}\n",
                s.shard, s.url
            )
        })
        .collect();
    Ok(lines.concat())
}
