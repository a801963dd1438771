//! The slice of Trove's public API the probe uses, spoken over HTTP and WebSocket exactly as
//! an external client would: the probe trusts nothing but what the API answers.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::checks::{Answer, Ledger};
use super::ProbeError;

/// The probe's loot table: one fixed version, re-put every round (an unchanged PUT makes no
/// new version).
pub const PROBE_TABLE: &str = "trove-probe";

/// A keep-alive HTTP client for one Trove with an admin token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Self, ProbeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ProbeError::http("building the HTTP client", e))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// Sends a request and returns the status and JSON body, or an error for non-2xx.
    async fn json(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), ProbeError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ProbeError::http(what, e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| ProbeError::http(what, e))?;
        if !(200..300).contains(&status) {
            return Err(ProbeError::Status {
                what: what.to_owned(),
                status,
                body,
            });
        }
        let value = serde_json::from_str(&body).map_err(|e| ProbeError::Status {
            what: what.to_owned(),
            status,
            body: format!("unreadable JSON ({e}): {body}"),
        })?;
        Ok((status, value))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many shards the instance serves (from `/readyz`, which lists them).
    pub async fn shard_count(&self) -> Result<usize, ProbeError> {
        let resp = self
            .http
            .get(self.url("/readyz"))
            .send()
            .await
            .map_err(|e| ProbeError::http("GET /readyz", e))?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ProbeError::http("GET /readyz", e))?;
        match body["shards"].as_array().map(Vec::len) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(ProbeError::Invalid(format!(
                "/readyz lists no shards: {body}"
            ))),
        }
    }

    pub async fn put_probe_table(&self) -> Result<(), ProbeError> {
        let body = json!({"entries": [
            {"item": "probe-coin", "weight": 90, "min_qty": 1, "max_qty": 10, "rarity": "common"},
            {"item": "probe-gem", "weight": 10, "min_qty": 1, "max_qty": 1, "rarity": "rare"}
        ]});
        let req = self
            .http
            .put(self.url(&format!("/v1/loot-tables/{PROBE_TABLE}")))
            .json(&body);
        self.json("PUT probe loot table", req).await.map(drop)
    }

    /// Spawns `count` synthetic chests (the zone is created synthetic, so it stays out of
    /// leaderboards and claim metrics).
    pub async fn spawn(&self, zone: &str, count: usize) -> Result<(), ProbeError> {
        let body = json!({"count": count, "loot_table": PROBE_TABLE, "synthetic": true});
        let req = self
            .http
            .post(self.url(&format!("/v1/zones/{zone}/chests")))
            .json(&body);
        self.json(&format!("spawn in {zone}"), req).await.map(drop)
    }

    /// One claim of any chest in `zone` on `player`'s behalf, with an idempotency key.
    pub async fn claim(&self, zone: &str, player: &str, key: &str) -> Answer {
        let sent = self
            .http
            .post(self.url(&format!("/v1/zones/{zone}/claims")))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(&json!({"player": player}))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Answer::Failed(e.to_string()),
        };
        let status = resp.status().as_u16();
        let replayed = resp
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let mut body: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return Answer::Failed(format!("HTTP {status} with an unreadable body: {e}")),
        };
        if (200..300).contains(&status) {
            // The claim as the ledger records it: its receipt is signed per answer (a replay
            // may come with another batch's), so the checks compare the claim itself.
            if let Some(fields) = body.as_object_mut() {
                fields.remove("receipt");
            }
            Answer::Claim {
                status,
                replayed,
                body,
            }
        } else {
            Answer::Refused {
                status,
                code: body["error"].as_str().unwrap_or("").to_owned(),
            }
        }
    }

    /// Every opened chest of a zone and who opened it (`GET …/chests?state=opened`, page by
    /// page). The load tool reads its ledger back with this too.
    pub async fn opened_chests(&self, zone: &str) -> Result<BTreeMap<i64, String>, ProbeError> {
        let mut opened_by = BTreeMap::new();
        let mut after = 0i64;
        loop {
            let path = format!("/v1/zones/{zone}/chests?state=opened&limit=1000&after={after}");
            let (_, page) = self
                .json(
                    &format!("GET opened chests of {zone}"),
                    self.http.get(self.url(&path)),
                )
                .await?;
            for c in page["chests"].as_array().into_iter().flatten() {
                if let (Some(id), Some(by)) = (c["chest_id"].as_i64(), c["opened_by"].as_str()) {
                    opened_by.insert(id, by.to_owned());
                }
            }
            match page["next"].as_i64() {
                Some(next) if next > after => after = next,
                _ => return Ok(opened_by),
            }
        }
    }

    /// The zone as the API reports it: totals, who opened which chest, and each given
    /// player's claims in the zone.
    pub async fn ledger(&self, zone: &str, players: &[String]) -> Result<Ledger, ProbeError> {
        let (_, z) = self
            .json(
                &format!("GET zone {zone}"),
                self.http.get(self.url(&format!("/v1/zones/{zone}"))),
            )
            .await?;
        let opened_by = self.opened_chests(zone).await?;
        let mut histories = std::collections::HashMap::new();
        // A few at a time: the probe must not become the load it measures.
        for chunk in players.chunks(16) {
            let reads = chunk.iter().map(|p| async move {
                let (_, h) = self
                    .json(
                        &format!("GET history of {p}"),
                        self.http
                            .get(self.url(&format!("/v1/players/{p}/claims?limit=100"))),
                    )
                    .await?;
                let mine: Vec<Value> = h["claims"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["zone"] == zone)
                    .cloned()
                    .collect();
                Ok::<_, ProbeError>((p.clone(), mine))
            });
            for r in futures_util::future::join_all(reads).await {
                let (p, mine) = r?;
                histories.insert(p, mine);
            }
        }
        Ok(Ledger {
            shard: z["shard"].as_u64().unwrap_or(u64::MAX) as usize,
            total: z["total"].as_i64().unwrap_or(-1),
            opened: z["opened"].as_i64().unwrap_or(-1),
            remaining: z["remaining"].as_i64().unwrap_or(-1),
            opened_by,
            histories,
        })
    }

    /// Deletes synthetic zones older than `older_than`; returns how many went.
    pub async fn cleanup(&self, older_than: Duration) -> Result<u64, ProbeError> {
        let req = self.http.delete(self.url(&format!(
            "/v1/synthetic-zones?older_than_secs={}",
            older_than.as_secs()
        )));
        let (_, body) = self.json("DELETE /v1/synthetic-zones", req).await?;
        Ok(body["deleted"].as_u64().unwrap_or(0))
    }

    /// Subscribes to `zone` over WebSocket and collects its `chest_opened` events.
    pub async fn watch(&self, zone: &str) -> Result<Watcher, ProbeError> {
        let url = format!(
            "{}/v1/ws?token={}",
            self.base.replacen("http", "ws", 1),
            self.token
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| ProbeError::WebSocket(format!("connecting: {e}")))?;
        let sub = json!({"op": "subscribe", "zones": [zone]}).to_string();
        ws.send(Message::text(sub))
            .await
            .map_err(|e| ProbeError::WebSocket(format!("subscribing: {e}")))?;
        // Claims start only once the subscription is in place.
        let subscribed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(msg) = ws.next().await {
                let msg = msg.map_err(|e| ProbeError::WebSocket(e.to_string()))?;
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("subscribed") => return Ok(()),
                        Some("error") => {
                            return Err(ProbeError::WebSocket(format!("subscribe refused: {v}")))
                        }
                        _ => {}
                    }
                }
            }
            Err(ProbeError::WebSocket("closed before subscribing".into()))
        })
        .await
        .map_err(|_| ProbeError::WebSocket("no `subscribed` within 10 s".into()))?;
        subscribed?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (count_tx, count) = watch::channel(0usize);
        let zone = zone.to_owned();
        let task = tokio::spawn(async move {
            let mut events = Vec::new();
            // The protocol may skip events with notice (lagged, resync) or end the stream (a
            // server shutting down): then this round cannot judge the events.
            let mut whole = true;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    msg = ws.next() => {
                        let Some(Ok(msg)) = msg else {
                            whole = false;
                            break;
                        };
                        let Message::Text(t) = msg else { continue };
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match v["type"].as_str() {
                            Some("chest_opened") if v["zone"] == zone.as_str() => {
                                events.push((
                                    v["chest_id"].as_i64().unwrap_or_default(),
                                    v["claim_id"].as_str().unwrap_or_default().to_owned(),
                                ));
                                let _ = count_tx.send(events.len());
                            }
                            Some("lagged" | "resync" | "error") => whole = false,
                            _ => {}
                        }
                    }
                }
            }
            let _ = ws.close(None).await;
            whole.then_some(events)
        });
        Ok(Watcher { stop, count, task })
    }
}

/// A WebSocket subscription collecting one zone's `chest_opened` events.
pub struct Watcher {
    stop: oneshot::Sender<()>,
    /// How many have arrived so far.
    count: watch::Receiver<usize>,
    task: JoinHandle<Option<Vec<(i64, String)>>>,
}

impl Watcher {
    /// Waits until `expected` events came, then `grace` longer so a duplicate would show,
    /// or until `deadline`; returns what arrived, or None when the stream had a gap.
    pub async fn finish(
        mut self,
        expected: usize,
        deadline: Duration,
        grace: Duration,
    ) -> Option<Vec<(i64, String)>> {
        let enough = self.count.wait_for(|n| *n >= expected);
        if tokio::time::timeout(deadline, enough).await.is_ok() {
            tokio::time::sleep(grace).await;
        }
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}
