//! The WebSocket protocol (JSON text frames), as types decoded and encoded in one place.
//!
//! - client: `{"op":"subscribe","zones":[…],"since":POSITION?}`, `{"op":"unsubscribe","zones":[…]}`,
//!   `{"op":"ping"}`;
//! - server: `subscribed`, `unsubscribed`, `chest_opened`, `chests_spawned`, `lagged`, `resync`
//!   (a shard's tail started over: fresh snapshots of its zones), `pong`, `error`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::hub::{Event, EventKind};
use crate::ledger::Position;
use crate::loot::Rarity;

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe {
        zones: Vec<String>,
        #[serde(default)]
        since: Option<String>,
    },
    Unsubscribe {
        zones: Vec<String>,
    },
    Ping,
}

/// A zone's totals as of a position (in `subscribed`, `lagged` and `resync`).
#[derive(Debug, Clone, Serialize)]
pub struct ZoneTotals {
    pub zone: String,
    pub total: i64,
    pub opened: i64,
    pub remaining: i64,
}

/// Everything the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Subscribed {
        zones: &'a [ZoneTotals],
        position: String,
        /// Present when the client sent `since`: true if every missed event was replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        resumed: Option<bool>,
    },
    Unsubscribed {
        zones: &'a [&'a str],
    },
    ChestOpened {
        zone: &'a str,
        chest_id: i64,
        player: &'a str,
        rarity: Option<Rarity>,
        opened_at: DateTime<Utc>,
        claim_id: Uuid,
        position: String,
    },
    ChestsSpawned {
        zone: &'a str,
        count: i64,
        total: i64,
        remaining: i64,
        position: String,
    },
    Lagged {
        message: &'static str,
        zones: &'a [ZoneTotals],
        position: String,
    },
    Resync {
        message: &'static str,
        zones: &'a [ZoneTotals],
        position: String,
    },
    Pong,
    Error {
        error: &'a str,
        message: &'a str,
    },
}

pub const LAGGED: &str =
    "events were skipped because this connection read too slowly; resume with since to replay them";
pub const MOVED: &str = "this zone moved to another shard; here is a fresh snapshot as of position";
pub const RESYNC: &str = "the ledger tail of these zones' shard started over; events before position may be missing, so here is a fresh snapshot";

impl ServerMessage<'_> {
    /// The message as JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            // Unreachable for these types (string keys, finite numbers); still a valid frame.
            tracing::error!(error = %e, "a WebSocket message did not serialise");
            r#"{"type":"error","error":"internal_error","message":"internal error; it has been logged"}"#.to_owned()
        })
    }

    /// The event's message as of `position` (`chest_opened` or `chests_spawned`).
    pub fn event(event: &Event, position: &Position) -> String {
        let position = position.encode();
        let zone = &*event.zone;
        let msg = match &event.kind {
            EventKind::Opened {
                chest_id,
                player,
                rarity,
                opened_at,
                claim_id,
            } => ServerMessage::ChestOpened {
                zone,
                chest_id: *chest_id,
                player,
                rarity: *rarity,
                opened_at: *opened_at,
                claim_id: *claim_id,
                position,
            },
            // Never sent as such: the hub turns it into a snapshot per subscriber.
            EventKind::Arrived => ServerMessage::Pong,
            EventKind::Spawned {
                count,
                total,
                remaining,
            } => ServerMessage::ChestsSpawned {
                zone,
                count: *count,
                total: *total,
                remaining: *remaining,
                position,
            },
        };
        msg.to_text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_their_wire_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&ServerMessage::Pong.to_text()).expect("json");
        assert_eq!(v, serde_json::json!({"type": "pong"}));
        let zones = [ZoneTotals {
            zone: "a".into(),
            total: 3,
            opened: 1,
            remaining: 2,
        }];
        let msg = ServerMessage::Subscribed {
            zones: &zones,
            position: "1.0_0_0".into(),
            resumed: None,
        };
        let v: serde_json::Value = serde_json::from_str(&msg.to_text()).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type": "subscribed", "position": "1.0_0_0",
                "zones": [{"zone": "a", "total": 3, "opened": 1, "remaining": 2}]})
        );
        let parsed: ClientMessage =
            serde_json::from_str(r#"{"op":"subscribe","zones":["a"]}"#).expect("subscribe");
        assert!(matches!(
            parsed,
            ClientMessage::Subscribe { since: None, .. }
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"op":"shout"}"#).is_err());
    }
}
