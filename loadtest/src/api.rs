//! The slice of Trove's HTTP API the load tool drives, as an external client would.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// How long one page of a ledger read-back may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

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

    async fn admin_json(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value> {
        let r = req
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .with_context(|| what.to_owned())?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{what}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// How many shards Trove serves (its `/readyz` lists them).
    pub async fn shard_count(&self) -> Result<usize> {
        let body: Value = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .context("GET /readyz")?
            .json()
            .await
            .context("GET /readyz")?;
        match body["shards"].as_array().map(Vec::len) {
            Some(n) if n > 0 => Ok(n),
            _ => bail!("/readyz lists no shards: {body}"),
        }
    }

    pub async fn put_loot_table(&self, name: &str) -> Result<()> {
        let body = json!({"entries": [
            {"item": "gold", "weight": 80, "min_qty": 1, "max_qty": 50, "rarity": "common"},
            {"item": "gem", "weight": 19, "min_qty": 1, "max_qty": 3, "rarity": "rare"},
            {"item": "crown", "weight": 1, "min_qty": 1, "max_qty": 1, "rarity": "legendary"}
        ]});
        let req = self
            .http
            .put(format!("{}/v1/loot-tables/{name}", self.base))
            .json(&body);
        self.admin_json("PUT loot table", req).await.map(drop)
    }

    /// Spawns `count` chests, in calls of at most a million.
    pub async fn spawn(&self, zone: &str, mut count: i64, table: &str) -> Result<()> {
        while count > 0 {
            let n = count.min(1_000_000);
            let req = self
                .http
                .post(format!("{}/v1/zones/{zone}/chests", self.base))
                .json(&json!({"count": n, "loot_table": table}));
            self.admin_json(&format!("spawn in {zone}"), req).await?;
            count -= n;
        }
        Ok(())
    }

    /// Claims any chest in `zone` for `player` (the admin token claims on a player's behalf).
    pub async fn claim(&self, zone: &str, player: &str, key: Option<&str>) -> Result<ClaimResult> {
        let mut req = self
            .http
            .post(format!("{}/v1/zones/{zone}/claims", self.base))
            .bearer_auth(&self.admin_token)
            .json(&json!({"player": player}));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok(ClaimResult {
            status,
            chest_id: body["chest_id"].as_i64(),
        })
    }

    /// A GET with the admin token; its status only (reads of the mixed scenario).
    pub async fn get_status(&self, path: &str) -> Result<u16> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
            .send()
            .await?;
        let status = r.status().as_u16();
        // Read the body: the connection goes back to the pool only once it is drained.
        let _ = r.bytes().await;
        Ok(status)
    }

    /// Every opened chest of a zone and who opened it, read back through the API (the
    /// fairness probe's reader).
    pub async fn opened_chests(&self, zone: &str) -> Result<BTreeMap<i64, String>> {
        let reader = trove::probe::Client::new(&self.base, &self.admin_token, READ_TIMEOUT)?;
        Ok(reader.opened_chests(zone).await?)
    }
}

/// `count` zone names for this run that the stable hash puts on `shard` (any shard if None).
pub fn zone_names(prefix: &str, count: usize, shard: Option<usize>, shards: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|z| shard.is_none_or(|s| trove::shards::shard_index(z, shards) == s))
        .take(count)
        .collect()
}

/// Creates the zones, eight spawns at a time.
pub async fn spawn_zones(api: &Api, zones: &[String], size: i64, table: &str) -> Result<()> {
    for chunk in zones.chunks(8) {
        let spawns = chunk.iter().map(|z| api.spawn(z, size, table));
        for r in futures_util::future::join_all(spawns).await {
            r?;
        }
    }
    Ok(())
}
