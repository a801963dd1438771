//! Who may call: Trove's HS256 secrets and a studio identity provider's keys (src/auth/).

use std::time::Duration;

use crate::auth::jwks::Source;
use crate::auth::Rules;

/// Token settings beyond `TROVE_JWT_SECRET`, flattened into `Config`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Earlier HS256 secrets (comma-separated), still accepted while tokens they signed are
    /// alive: rotate by making the new secret TROVE_JWT_SECRET and the old one this.
    #[arg(
        long,
        env = "TROVE_JWT_PREVIOUS_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub jwt_previous_secrets: Vec<String>,

    /// An identity provider's public keys: a JWKS file, or its https URL. Tokens signed
    /// RS256/PS256, ES256 or EdDSA by a key there (named by `kid`) are accepted.
    #[arg(long, env = "TROVE_JWKS", global = true)]
    pub jwks: Option<Source>,

    /// Read the JWKS again after this many seconds (sooner if its Cache-Control says so).
    #[arg(long, env = "TROVE_JWKS_MAX_AGE_SECS", default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub jwks_max_age_secs: u64,

    /// A token naming a `kid` the JWKS lacks makes Trove read it again, at most once per
    /// this many ms.
    #[arg(long, env = "TROVE_JWKS_MIN_REFRESH_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000), global = true)]
    pub jwks_min_refresh_ms: u64,

    /// Accepted `iss` values (comma-separated); unset: not checked.
    #[arg(long, env = "TROVE_JWT_ISSUERS", value_delimiter = ',', global = true)]
    pub jwt_issuers: Vec<String>,

    /// Accepted `aud` values (comma-separated); unset: not checked. Set it when the
    /// identity provider issues tokens for other services too.
    #[arg(
        long,
        env = "TROVE_JWT_AUDIENCES",
        value_delimiter = ',',
        global = true
    )]
    pub jwt_audiences: Vec<String>,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "TROVE_JWT_LEEWAY_SECS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=600), global = true)]
    pub jwt_leeway_secs: u64,

    /// The claim that holds the player id (dotted paths reach into objects). Its value must
    /// be a player id (1-64 of [A-Za-z0-9_-]), else the token is refused.
    #[arg(
        long,
        env = "TROVE_JWT_PLAYER_CLAIM",
        default_value = "sub",
        global = true
    )]
    pub jwt_player_claim: String,

    /// The claim that holds the role: a string or a list (`realm_access.roles`).
    #[arg(
        long,
        env = "TROVE_JWT_ROLE_CLAIM",
        default_value = "role",
        global = true
    )]
    pub jwt_role_claim: String,

    /// Role values that make a caller an admin (comma-separated); any other is a player.
    #[arg(
        long,
        env = "TROVE_JWT_ADMIN_ROLES",
        value_delimiter = ',',
        default_value = "admin",
        global = true
    )]
    pub jwt_admin_roles: Vec<String>,

    /// Verified tokens remembered until they expire (0: verify every request).
    #[arg(long, env = "TROVE_TOKEN_CACHE_SIZE", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=10_000_000), global = true)]
    pub token_cache_size: u64,
}

impl AuthArgs {
    /// The token settings, with `secret` (`TROVE_JWT_SECRET`) signing.
    pub fn settings(&self, secret: Option<String>) -> crate::auth::Settings {
        crate::auth::Settings {
            secret,
            previous_secrets: self.jwt_previous_secrets.clone(),
            jwks: self.jwks.clone(),
            jwks_max_age: Duration::from_secs(self.jwks_max_age_secs),
            jwks_min_refresh: Duration::from_millis(self.jwks_min_refresh_ms),
            rules: Rules {
                issuers: self.jwt_issuers.clone(),
                audiences: self.jwt_audiences.clone(),
                leeway_secs: self.jwt_leeway_secs,
                player_claim: self.jwt_player_claim.clone(),
                role_claim: self.jwt_role_claim.clone(),
                admin_roles: self.jwt_admin_roles.clone(),
            },
            cache_size: usize::try_from(self.token_cache_size).unwrap_or(usize::MAX),
        }
    }
}
