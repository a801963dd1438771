//! Bearer tokens: compact JWTs, checked by the `jsonwebtoken` crate (pure-Rust crypto) under
//! Trove's own rules. HS256 with Trove's secrets (several at once, so a secret rotates without
//! logging anyone out), and RS256/PS256, ES256 and EdDSA with an identity provider's keys from
//! a JWKS. Every token needs `exp`; `none` and unknown algorithms are refused, an HS256 token
//! is only ever checked against the secrets (never a public key: no algorithm confusion), and
//! an asymmetric one only against the JWKS key its `kid` names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::names::validate_player_id;

mod cache;
mod cli;
pub mod jwks;
use jwks::ASYMMETRIC;
mod rules;

pub use cli::{parse_ttl, TokenArgs, MAX_TTL_SECS};
pub use rules::Rules;

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
    /// Unix seconds after which the token is refused (its `exp` plus the leeway): a
    /// WebSocket opened with it is closed then.
    pub expires_at: i64,
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

/// Everything a `JwtKeys` is made from (`Config::jwt_keys` reads the settings).
pub struct Settings {
    /// The secret `trove token` signs with; also accepted.
    pub secret: Option<String>,
    /// Earlier secrets, still accepted during a rotation.
    pub previous_secrets: Vec<String>,
    pub jwks: Option<jwks::Source>,
    pub jwks_max_age: Duration,
    pub jwks_min_refresh: Duration,
    pub rules: Rules,
    /// Verified tokens remembered (0: none).
    pub cache_size: usize,
}

/// Signs and checks tokens.
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<Inner>,
}

struct Inner {
    signing: Option<EncodingKey>,
    secrets: Vec<DecodingKey>,
    jwks: Option<Arc<jwks::Jwks>>,
    /// How provider (JWKS) tokens are read.
    rules: Rules,
    /// How Trove's own HS256 tokens are read (`trove token`'s claims).
    own: Rules,
    hmac: Validation,
    /// One per algorithm: the library checks a key against every algorithm it is offered.
    asymmetric: Vec<(Algorithm, Validation)>,
    cache: cache::TokenCache,
    /// Tokens verified (valid or not), for `trove_token_verifications_total`: one per request
    /// that sent a token.
    verified: AtomicU64,
}

fn secret_key(secret: &str, name: &str) -> Result<DecodingKey> {
    if secret.len() < 16 {
        return Err(Error::invalid(
            "invalid_config",
            format!("{name} must be at least 16 bytes"),
        ));
    }
    Ok(DecodingKey::from_secret(secret.as_bytes()))
}

impl JwtKeys {
    /// HS256 with one secret and the default rules (tests, tools, the local stack).
    pub fn new(secret: &[u8]) -> Result<Self> {
        let secret = String::from_utf8(secret.to_vec())
            .map_err(|_| Error::invalid("invalid_config", "TROVE_JWT_SECRET must be UTF-8"))?;
        Self::from_settings(Settings {
            secret: Some(secret),
            previous_secrets: Vec::new(),
            jwks: None,
            jwks_max_age: Duration::from_secs(300),
            jwks_min_refresh: Duration::from_secs(10),
            rules: Rules::default(),
            cache_size: 10_000,
        })
    }

    pub fn from_settings(s: Settings) -> Result<Self> {
        let mut secrets = Vec::new();
        if let Some(secret) = &s.secret {
            secrets.push(secret_key(secret, "TROVE_JWT_SECRET")?);
        }
        for old in &s.previous_secrets {
            secrets.push(secret_key(old, "each of TROVE_JWT_PREVIOUS_SECRETS")?);
        }
        if secrets.is_empty() && s.jwks.is_none() {
            return Err(Error::invalid(
                "invalid_config",
                "set TROVE_JWT_SECRET or TROVE_JWKS: nothing could verify a token",
            ));
        }
        let jwks = s
            .jwks
            .map(|src| jwks::Jwks::new(src, s.jwks_max_age, s.jwks_min_refresh))
            .transpose()
            .map_err(|e| Error::invalid("invalid_config", e))?;
        // `iss` and `aud` are the identity provider's: tokens signed with Trove's own
        // secrets (`trove token`) carry neither.
        let validation = |alg: Algorithm, provider: bool| {
            let mut v = Validation::new(alg);
            v.leeway = s.rules.leeway_secs;
            v.validate_nbf = true;
            v.validate_aud = false;
            let mut required = vec!["exp"];
            if provider && !s.rules.issuers.is_empty() {
                v.set_issuer(&s.rules.issuers);
                required.push("iss");
            }
            if provider && !s.rules.audiences.is_empty() {
                v.validate_aud = true;
                v.set_audience(&s.rules.audiences);
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            v
        };
        Ok(JwtKeys {
            inner: Arc::new(Inner {
                signing: s
                    .secret
                    .as_deref()
                    .map(|k| EncodingKey::from_secret(k.as_bytes())),
                secrets,
                jwks,
                hmac: validation(Algorithm::HS256, false),
                asymmetric: ASYMMETRIC
                    .iter()
                    .map(|&a| (a, validation(a, true)))
                    .collect(),
                rules: s.rules,
                own: Rules::default(),
                cache: cache::TokenCache::new(s.cache_size),
                verified: AtomicU64::new(0),
            }),
        })
    }

    /// Reads the JWKS once at start-up, so a wrong address shows in the log at once (the
    /// set is read again whenever a token needs it).
    pub async fn warm(&self) {
        if let Some(jwks) = &self.inner.jwks {
            match jwks.load().await {
                Ok(n) => tracing::info!(keys = n, "read the JWKS"),
                Err(e) => tracing::warn!(error = %e, "could not read the JWKS at start-up"),
            }
        }
    }

    /// A signed HS256 token for `player` valid for `ttl_secs`.
    pub fn issue(&self, player: &str, role: Role, ttl_secs: i64) -> Result<String> {
        validate_player_id(player)?;
        let key = self.inner.signing.as_ref().ok_or_else(|| {
            Error::invalid("invalid_config", "no TROVE_JWT_SECRET to sign tokens with")
        })?;
        let now = chrono::Utc::now().timestamp();
        let claims = TokenClaims {
            sub: player.to_owned(),
            role,
            exp: now.saturating_add(ttl_secs),
            iat: now,
        };
        jsonwebtoken::encode(&Header::default(), &claims, key)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Tokens verified so far (valid or not) with these keys and their clones.
    pub fn verifications(&self) -> u64 {
        self.inner.verified.load(Ordering::Relaxed)
    }

    /// Verifications answered from the cache of verified tokens.
    pub fn cache_hits(&self) -> u64 {
        self.inner.cache.hits()
    }

    /// Reads of the JWKS so far.
    pub fn jwks_reads(&self) -> u64 {
        self.inner.jwks.as_ref().map_or(0, |j| j.reads())
    }

    /// Verifies a token and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Caller> {
        match self.cached(token) {
            Some(caller) => Ok(caller),
            None => self.verify_fresh(token).await,
        }
    }

    /// The caller of a token verified before and not yet expired, without waiting: the
    /// request path tries this first and goes on at once. Counts as a verification.
    pub fn cached(&self, token: &str) -> Option<Caller> {
        let inner = &*self.inner;
        inner.verified.fetch_add(1, Ordering::Relaxed);
        let generation = inner.jwks.as_ref().map_or(0, |j| j.generation());
        inner
            .cache
            .get(token, chrono::Utc::now().timestamp(), generation)
    }

    /// Verifies a token [`JwtKeys::cached`] did not know (the signature, the claims, maybe a
    /// read of the JWKS), and caches the caller.
    pub async fn verify_fresh(&self, token: &str) -> Result<Caller> {
        let inner = &*self.inner;
        let generation = inner.jwks.as_ref().map_or(0, |j| j.generation());
        let now = chrono::Utc::now().timestamp();
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            bad("token header is malformed or names an algorithm Trove does not accept")
        })?;
        // Trove's own tokens say `sub` and `role`; the provider's are read by its rules.
        let (claims, rules) = match header.alg {
            Algorithm::HS256 => (self.check_hmac(token)?, &inner.own),
            alg if ASYMMETRIC.contains(&alg) => {
                let validation = inner
                    .asymmetric
                    .iter()
                    .find_map(|(a, v)| (*a == alg).then_some(v))
                    .ok_or_else(|| bad(format!("{alg:?} tokens are not accepted")))?;
                let jwks = inner.jwks.as_ref().ok_or_else(|| {
                    bad(format!(
                        "{alg:?} tokens need an identity provider's keys (TROVE_JWKS)"
                    ))
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| bad("an asymmetric token must name its key (kid)"))?;
                let key = jwks
                    .key(kid, alg)
                    .await
                    .map_err(|e| Error::unauthorized(e.code, e.message))?;
                (decode(token, &key.key, validation)?, &inner.rules)
            }
            alg => return Err(bad(format!("{alg:?} tokens are not accepted"))),
        };
        let mut caller = rules.caller(&claims)?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        let until = exp.saturating_add(inner.rules.leeway_secs as i64);
        caller.expires_at = until;
        inner.cache.put(token, caller.clone(), until, generation);
        Ok(caller)
    }

    /// An HS256 token against each secret in turn (a rotation holds two or three).
    fn check_hmac(&self, token: &str) -> Result<Map<String, Value>> {
        let inner = &*self.inner;
        for key in &inner.secrets {
            match decode(token, key, &inner.hmac) {
                Err(Error::Unauthorized {
                    code: "invalid_token",
                    message,
                }) if message == SIGNATURE_MISMATCH => {}
                other => return other,
            }
        }
        Err(bad(SIGNATURE_MISMATCH))
    }
}

const SIGNATURE_MISMATCH: &str = "token signature does not match";

fn bad(why: impl Into<String>) -> Error {
    Error::unauthorized("invalid_token", why.into())
}

/// The library's check, its refusals as Trove's 401 codes.
fn decode(token: &str, key: &DecodingKey, v: &Validation) -> Result<Map<String, Value>> {
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, v).map_err(|e| {
        let (code, message) = match e.kind() {
            ErrorKind::ExpiredSignature => ("token_expired", "token has expired".into()),
            ErrorKind::ImmatureSignature => {
                ("token_not_yet_valid", "token is not valid yet (nbf)".into())
            }
            ErrorKind::InvalidIssuer => (
                "wrong_issuer",
                "token's iss is not an accepted issuer".into(),
            ),
            ErrorKind::InvalidAudience => (
                "wrong_audience",
                "token's aud is not an accepted audience".into(),
            ),
            ErrorKind::MissingRequiredClaim(c) => ("missing_claim", format!("token has no {c}")),
            ErrorKind::InvalidSignature => ("invalid_token", SIGNATURE_MISMATCH.into()),
            ErrorKind::InvalidAlgorithm => {
                ("invalid_token", "token's alg does not match its key".into())
            }
            ErrorKind::InvalidClaimFormat(c) => {
                ("invalid_token", format!("token's {c} is malformed"))
            }
            _ => ("invalid_token", "token is malformed".into()),
        };
        Error::unauthorized(code, message)
    })?;
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef").expect("keys")
    }

    fn code(r: Result<Caller>) -> &'static str {
        match r {
            Err(Error::Unauthorized { code, .. }) => code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn round_trip_and_rejections() {
        let k = keys();
        let t = k.issue("alice", Role::Player, 60).expect("issue");
        let c = k.verify(&t).await.expect("verify");
        assert_eq!((c.player.as_str(), c.role), ("alice", Role::Player));
        // Again: from the cache, the same caller.
        assert_eq!(k.verify(&t).await.expect("cached").player, "alice");
        assert_eq!(k.cache_hits(), 1);

        // Forged: signed with another secret.
        let other = JwtKeys::new(b"another-secret-of-32-bytes-long!").expect("keys");
        let forged = other.issue("alice", Role::Admin, 60).expect("issue");
        assert_eq!(code(k.verify(&forged).await), "invalid_token");

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
        assert_eq!(code(k.verify(&tampered).await), "invalid_token");

        // alg=none is refused.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(code(k.verify(&none).await), "invalid_token");

        let expired = k.issue("alice", Role::Player, -120).expect("issue");
        assert_eq!(code(k.verify(&expired).await), "token_expired");
        assert_eq!(code(k.verify("garbage").await), "invalid_token");
    }

    #[tokio::test]
    async fn a_cached_token_still_expires() {
        let k = keys();
        // Inside the leeway now, past it in two seconds.
        let t = k.issue("brief", Role::Player, -28).expect("issue");
        assert!(k.verify(&t).await.is_ok());
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(code(k.verify(&t).await), "token_expired");
    }
}
