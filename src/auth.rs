//! Bearer tokens: compact JWTs signed with HS256 (`TROVE_JWT_SECRET`). Only HS256 is accepted
//! (never `none`), the signature is compared in constant time, and `exp` is required.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::names::{valid_player_id, validate_player_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Player,
    Admin,
}

/// The claims Trove reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The player id.
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub player: String,
    pub role: Role,
}

impl Caller {
    pub fn require_admin(&self) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Player => Err(Error::Forbidden(
                "this endpoint needs an admin token".into(),
            )),
        }
    }

    /// Players act only as themselves; admins may act for anyone.
    pub fn require_self_or_admin(&self, player: &str) -> Result<()> {
        if self.role == Role::Admin || self.player == player {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "player {:?} cannot act as {player:?}",
                self.player
            )))
        }
    }
}

/// Signs and checks tokens with one shared secret.
#[derive(Clone)]
pub struct JwtKeys {
    secret: Vec<u8>,
    /// Tokens verified with these keys (and their clones), for
    /// `trove_token_verifications_total`: one per request that sent a token.
    verified: Arc<AtomicU64>,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: i64 = 5;

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Result<Self> {
        if secret.len() < 16 {
            return Err(Error::invalid(
                "invalid_config",
                "TROVE_JWT_SECRET must be at least 16 bytes",
            ));
        }
        Ok(JwtKeys {
            secret: secret.to_vec(),
            verified: Arc::new(AtomicU64::new(0)),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// A signed token for `player` valid for `ttl_secs`.
    pub fn issue(&self, player: &str, role: Role, ttl_secs: i64) -> Result<String> {
        validate_player_id(player)?;
        let now = chrono::Utc::now().timestamp();
        let claims = TokenClaims {
            sub: player.to_owned(),
            role,
            exp: now.saturating_add(ttl_secs),
            iat: now,
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| Error::Internal(e.to_string()))?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(format!("{signing_input}.{sig}"))
    }

    /// Tokens verified so far (valid or not) with these keys and their clones.
    pub fn verifications(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Verifies a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller> {
        self.verified.fetch_add(1, Ordering::Relaxed);
        let bad = |why: &str| Error::unauthorized("invalid_token", why.to_owned());
        let (signing_input, sig) = token
            .rsplit_once('.')
            .ok_or_else(|| bad("token is not a compact JWT"))?;
        let Some((header, payload)) = signing_input
            .split_once('.')
            .filter(|(_, p)| !p.contains('.'))
        else {
            return Err(bad("token is not a compact JWT"));
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| bad("token header is malformed"))?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(bad("only HS256 tokens are accepted"));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| bad("token signature is malformed"))?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| bad("token signature does not match"))?;
        let claims: TokenClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| bad("token claims are malformed (need sub, role, exp)"))?;
        if claims.exp.saturating_add(LEEWAY_SECS) < chrono::Utc::now().timestamp() {
            return Err(Error::unauthorized("token_expired", "token has expired"));
        }
        if !valid_player_id(&claims.sub) {
            return Err(bad("token sub is not a valid player id"));
        }
        Ok(Caller {
            player: claims.sub,
            role: claims.role,
        })
    }
}

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

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef").expect("keys")
    }

    #[test]
    fn round_trip_and_rejections() {
        let k = keys();
        let t = k.issue("alice", Role::Player, 60).expect("issue");
        let c = k.verify(&t).expect("verify");
        assert_eq!((c.player.as_str(), c.role), ("alice", Role::Player));

        // Forged: signed with another secret.
        let other = JwtKeys::new(b"another-secret-of-32-bytes-long!").expect("keys");
        let forged = other.issue("alice", Role::Admin, 60).expect("issue");
        assert!(k.verify(&forged).is_err());

        // Tampered payload: role flipped to admin keeps the old signature.
        let parts: Vec<&str> = t.split('.').collect();
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("b64");
        let tampered = String::from_utf8(payload)
            .expect("utf8")
            .replace("player", "admin");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(tampered),
            parts[2]
        );
        assert!(k.verify(&tampered).is_err());

        // alg=none is refused.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(k.verify(&none).is_err());

        // Expired.
        let expired = k.issue("alice", Role::Player, -60).expect("issue");
        match k.verify(&expired) {
            Err(Error::Unauthorized { code, .. }) => assert_eq!(code, "token_expired"),
            other => panic!("expected expiry, got {other:?}"),
        }
        assert!(k.verify("garbage").is_err());
    }

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
