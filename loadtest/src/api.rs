//! The slice of Trove's HTTP API the load tool drives, as an external client would.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A keep-alive HTTP client bound to one Trove with an admin token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub admin_token: String,
    pub http: reqwest::Client,
}

/// The outcome of one claim request.
pub struct ClaimResult {
    pub status: u16,
    pub chest_id: Option<i64>,
}

impl Api {
    pub fn new(base: &str, admin_token: &str, connections: usize) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .build()?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            admin_token: admin_token.to_owned(),
            http,
        })
    }

    /// The WebSocket URL with the admin token (subscribers only read).
    pub fn ws_url(&self) -> String {
        format!(
            "{}/v1/ws?token={}",
            self.base.replacen("http", "ws", 1),
            self.admin_token
        )
    }

    pub async fn put_loot_table(&self, name: &str) -> Result<()> {
        let body = json!({"entries": [
            {"item": "gold", "weight": 80, "min_qty": 1, "max_qty": 50, "rarity": "common"},
            {"item": "gem", "weight": 19, "min_qty": 1, "max_qty": 3, "rarity": "rare"},
            {"item": "crown", "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "legendary"}
        ]});
        let r = self
            .http
            .put(format!("{}/v1/loot-tables/{name}", self.base))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .context("PUT loot table")?;
        if !r.status().is_success() {
            bail!(
                "PUT loot table: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Spawns `count` chests, in calls of at most a million.
    pub async fn spawn(&self, zone: &str, mut count: i64, table: &str) -> Result<()> {
        while count > 0 {
            let n = count.min(1_000_000);
            let r = self
                .http
                .post(format!("{}/v1/zones/{zone}/chests", self.base))
                .bearer_auth(&self.admin_token)
                .json(&json!({"count": n, "loot_table": table}))
                .send()
                .await
                .context("spawn")?;
            if r.status().as_u16() != 201 {
                bail!(
                    "spawn {zone}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            count -= n;
        }
        Ok(())
    }

    /// Claims any chest in `zone` for `player` (the admin token claims on a player's behalf).
    pub async fn claim(&self, zone: &str, player: &str) -> Result<ClaimResult> {
        let r = self
            .http
            .post(format!("{}/v1/zones/{zone}/claims", self.base))
            .bearer_auth(&self.admin_token)
            .json(&json!({"player": player}))
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok(ClaimResult {
            status,
            chest_id: body["chest_id"].as_i64(),
        })
    }
}
