//! Trove's reading of a verified token's claims: who the player is and whether they are an
//! admin, from claims a studio's identity provider names.

use serde_json::{Map, Value};

use super::{Caller, Role};
use crate::error::{Error, Result};
use crate::names::valid_player_id;

/// How tokens are read: which issuers and audiences count, the clock-skew leeway, and which
/// claims carry the player id and the role.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Accepted `iss` values; empty: `iss` is not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty: `aud` is not checked.
    pub audiences: Vec<String>,
    pub leeway_secs: u64,
    /// The claim holding the player id (a dotted path reaches into objects).
    pub player_claim: String,
    /// The claim holding the role: a string or a list of strings.
    pub role_claim: String,
    /// Role values that make the caller an admin; anything else (or no role) is a player.
    pub admin_roles: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway_secs: 30,
            player_claim: "sub".into(),
            role_claim: "role".into(),
            admin_roles: vec!["admin".into()],
        }
    }
}

impl Rules {
    /// The caller a verified token's claims name.
    pub(super) fn caller(&self, claims: &Map<String, Value>) -> Result<Caller> {
        let claim = &self.player_claim;
        let player = match lookup(claims, claim) {
            Some(Value::String(p)) => p,
            _ => {
                return Err(Error::unauthorized(
                    "invalid_player_claim",
                    format!("token has no string claim {claim:?} to take the player id from"),
                ))
            }
        };
        if !valid_player_id(player) {
            let shown: String = player.chars().take(64).collect();
            return Err(Error::unauthorized(
                "invalid_player_claim",
                format!(
                    "token's {claim} {shown:?} is not a player id (1-64 of [A-Za-z0-9_-]); point \
                     TROVE_JWT_PLAYER_CLAIM at a claim that holds one"
                ),
            ));
        }
        let is_admin = |v: &Value| {
            v.as_str()
                .is_some_and(|r| self.admin_roles.iter().any(|a| a == r))
        };
        let role = match lookup(claims, &self.role_claim) {
            Some(Value::Array(roles)) if roles.iter().any(is_admin) => Role::Admin,
            Some(v) if is_admin(v) => Role::Admin,
            _ => Role::Player,
        };
        Ok(Caller {
            player: player.clone(),
            role,
            // Set from `exp` by the verifier.
            expires_at: i64::MAX,
        })
    }
}

/// A claim by dotted path (`realm_access.roles`); a claim whose own name has a dot is found
/// first.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let (first, rest) = path.split_once('.')?;
    lookup(claims.get(first)?.as_object()?, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn players_and_roles_come_from_the_configured_claims() {
        let keycloak = Rules {
            player_claim: "preferred_username".into(),
            role_claim: "realm_access.roles".into(),
            admin_roles: vec!["trove-admin".into()],
            ..Rules::default()
        };
        let c = keycloak
            .caller(&claims(json!({
                "sub": "f81d4fae-7dec", "preferred_username": "hana",
                "realm_access": {"roles": ["offline", "trove-admin"]}
            })))
            .expect("caller");
        assert_eq!((c.player.as_str(), c.role), ("hana", Role::Admin));
        let c = keycloak
            .caller(&claims(
                json!({"preferred_username": "ivo", "realm_access": {"roles": ["x"]}}),
            ))
            .expect("caller");
        assert_eq!(c.role, Role::Player);

        let default = Rules::default();
        assert_eq!(
            default
                .caller(&claims(json!({"sub": "a", "role": "admin"})))
                .map(|c| c.role)
                .ok(),
            Some(Role::Admin)
        );
        assert_eq!(
            default
                .caller(&claims(json!({"sub": "a"})))
                .map(|c| c.role)
                .ok(),
            Some(Role::Player),
            "no role: a player"
        );
        for bad in [json!({"sub": "auth0|abc"}), json!({"sub": 7}), json!({})] {
            match default.caller(&claims(bad.clone())) {
                Err(Error::Unauthorized { code, .. }) => assert_eq!(code, "invalid_player_claim"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
