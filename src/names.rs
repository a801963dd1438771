//! The names Trove accepts from clients, each checked in one place: zones, loot tables,
//! items, players, idempotency keys and client seeds. A name that passes is safe in a Redis key, a log
//! line and a draw's HMAC message (none holds a NUL, a space or a `/`).

use crate::error::{Error, Result};

/// `Ok` when `valid`, else the bad-input error `code`.
fn check(valid: bool, code: &'static str, message: &'static str) -> Result<()> {
    valid
        .then_some(())
        .ok_or_else(|| Error::invalid(code, message))
}

/// Zone names: `^[a-z0-9][a-z0-9_.:-]{0,63}$`.
pub fn validate_zone_name(zone: &str) -> Result<()> {
    let message = "zone names match ^[a-z0-9][a-z0-9_.:-]{0,63}$";
    check(valid_zone_name(zone), "invalid_zone", message)
}

fn valid_zone_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// Loot table names: the same alphabet as zone names.
pub fn validate_table_name(name: &str) -> Result<()> {
    let message = "loot table names match ^[a-z0-9][a-z0-9_.:-]{0,63}$";
    check(valid_zone_name(name), "invalid_loot_table_name", message)
}

/// Item names: 1-64 of `[A-Za-z0-9_.:-]`.
pub fn valid_item_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Player ids: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_player_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `valid_player_id` as the engine's error.
pub fn validate_player_id(player: &str) -> Result<()> {
    let message = "player ids are 1-64 of [A-Za-z0-9_-]";
    check(valid_player_id(player), "invalid_player", message)
}

/// Idempotency keys: 1-255 printable ASCII characters, unique per player and zone.
pub fn validate_idempotency_key(key: &str) -> Result<()> {
    let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let message = "Idempotency-Key must be 1-255 printable ASCII characters";
    check(valid, "invalid_idempotency_key", message)
}

/// Client seeds: 0-64 printable ASCII characters (empty: none set), so the draw's message
/// stays unambiguous (no NUL) and any client can type one.
pub fn validate_client_seed(seed: &str) -> Result<()> {
    let valid = seed.len() <= 64 && seed.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let message = "client seeds are 0-64 printable ASCII characters without spaces";
    check(valid, "invalid_client_seed", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names() {
        for ok in ["a", "meadow", "town:square", "0-zone_1.b", &"z".repeat(64)] {
            assert!(validate_zone_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Meadow",
            "-x",
            "_x",
            "a b",
            "zöne",
            &"z".repeat(65),
            "a/b",
        ] {
            assert!(validate_zone_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key("retry-1").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }

    #[test]
    fn players_and_items() {
        assert!(valid_player_id("alice_01-x") && !valid_player_id("a.b") && !valid_player_id(""));
        assert!(valid_item_name("gold.coin:1") && !valid_item_name("no spaces"));
        assert!(validate_table_name("starter").is_ok() && validate_table_name("Bad").is_err());
    }

    #[test]
    fn client_seeds() {
        for ok in ["", "lucky-7", &"x".repeat(64), "!~"] {
            assert!(validate_client_seed(ok).is_ok(), "{ok}");
        }
        for bad in ["a b", "tab\t", "nul\0", "é", &"x".repeat(65)] {
            assert!(validate_client_seed(bad).is_err(), "{bad}");
        }
    }
}
