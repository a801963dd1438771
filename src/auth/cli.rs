//! `trove token` and the lifetimes it accepts.

use super::{JwtKeys, Role};
use crate::error::{Error, Result};

/// `trove token`: a bearer token for a player (or an admin).
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[arg(long)]
    player: String,
    /// Give the token the admin role.
    #[arg(long)]
    admin: bool,
    /// Lifetime: 30s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
}

impl TokenArgs {
    pub fn issue(&self, keys: &JwtKeys) -> Result<String> {
        let role = if self.admin {
            Role::Admin
        } else {
            Role::Player
        };
        keys.issue(&self.player, role, parse_ttl(&self.ttl)?)
    }
}

/// Parses `1h`, `30m`, `45s`, `7d` or a plain number of seconds.
pub fn parse_ttl(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| Error::invalid("invalid_ttl", format!("bad ttl {s:?}")))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(Error::invalid(
                "invalid_ttl",
                format!("bad ttl unit in {s:?}"),
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|t| (1..=MAX_TTL_SECS).contains(t))
        .ok_or_else(|| {
            Error::invalid(
                "invalid_ttl",
                format!("ttl {s:?} must be 1 second to 10 years"),
            )
        })
}

/// Longest token lifetime `trove token` issues: ten years.
pub const MAX_TTL_SECS: i64 = 10 * 366 * 86400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("1h").ok(), Some(3600));
        assert_eq!(parse_ttl("90").ok(), Some(90));
        assert_eq!(parse_ttl("2d").ok(), Some(172800));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("99999999999999d").is_err());
        assert!(parse_ttl("3660d").is_ok() && parse_ttl("3661d").is_err());
    }
}
