//! One error type for the engine, mapped to one JSON shape at the HTTP boundary
//! (`{"error": "snake_code", "message": "..."}`, see `api::error`).

use std::time::Duration;

/// Everything a Trove operation can fail with. Variants carry what the caller can act on;
/// database details stay in the log, never in a response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: the request changes nothing. `code` is the snake_case error code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("zone {0:?} does not exist")]
    ZoneNotFound(String),
    #[error("loot table {0:?} does not exist")]
    LootTableNotFound(String),
    #[error("chest {chest_id} does not exist in zone {zone:?}")]
    ChestNotFound { zone: String, chest_id: i64 },
    #[error("zone {zone:?} has no seed epoch {epoch}")]
    EpochNotFound { zone: String, epoch: i32 },
    #[error(
        "epoch {epoch} of zone {zone:?} is not revealed yet: its transcript comes with the reveal"
    )]
    EpochNotRevealed { zone: String, epoch: i32 },
    #[error("{0:?} has no entry on this board")]
    PlayerNotRanked(String),
    #[error("no unopened chest is left in zone {0:?}")]
    ZoneExhausted(String),
    #[error("chest {chest_id} in zone {zone:?} was already opened")]
    ChestAlreadyOpened { zone: String, chest_id: i64 },
    #[error("idempotency key was already used for a different request: {0}")]
    IdempotencyKeyReused(String),
    #[error("{0}")]
    Conflict(String),
    /// Another leaderboard rebuild holds the lock; this one changed nothing.
    #[error("a leaderboard rebuild is already running")]
    RebuildRunning,
    /// The rebuild's lock expired or was taken before its swap, so it swapped nothing in:
    /// followers may have moved the boards meanwhile, and its result could count claims twice.
    #[error(
        "the leaderboard rebuild lost its lock before the swap; the boards were left as they were"
    )]
    RebuildLockLost,
    /// The zone's shard cannot be reached; other shards keep working.
    #[error("shard {shard} is unavailable")]
    ShardUnavailable { shard: usize, retry_after: Duration },
    /// Over a rate limit; retry after this many seconds.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A bounded resource of this instance is taken (one zone verification at a time).
    #[error("{message}")]
    Busy { code: &'static str, message: String },
    /// A dependency that may be lost (Redis) cannot serve this request.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Error::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// The zone is being moved to another shard: retry in a moment.
    pub fn zone_moving(zone: &str) -> Self {
        Error::Unavailable {
            code: "zone_moving",
            message: format!("zone {zone:?} is moving to another shard; retry in a moment"),
        }
    }

    /// The same failure for each claim of a batch that failed as one statement: a down shard
    /// stays a 503 for every one of them, anything else becomes an internal error.
    pub fn copy_for_batch(&self) -> Error {
        match self {
            Error::ShardUnavailable { shard, retry_after } => Error::ShardUnavailable {
                shard: *shard,
                retry_after: *retry_after,
            },
            other => Error::Internal(other.to_string()),
        }
    }

    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } | Error::Unauthorized { code, .. } => code,
            Error::Forbidden(_) => "forbidden",
            Error::ZoneNotFound(_) => "zone_not_found",
            Error::LootTableNotFound(_) => "loot_table_not_found",
            Error::ChestNotFound { .. } => "chest_not_found",
            Error::PlayerNotRanked(_) => "player_not_ranked",
            Error::EpochNotFound { .. } => "epoch_not_found",
            Error::EpochNotRevealed { .. } => "epoch_not_revealed",
            Error::ZoneExhausted(_) => "zone_exhausted",
            Error::ChestAlreadyOpened { .. } => "chest_already_opened",
            Error::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Error::Conflict(_) => "conflict",
            Error::RebuildRunning => "rebuild_running",
            Error::RebuildLockLost => "rebuild_lock_lost",
            Error::ShardUnavailable { .. } => "shard_unavailable",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable { code, .. } | Error::Busy { code, .. } => code,
            Error::Database(_) | Error::Internal(_) => "internal_error",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
