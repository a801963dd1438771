//! `trove probe`: its flags, and turning them into a running probe (or one round).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{summary, Probe, ProbeError, ProbeOptions};
use crate::auth::{parse_ttl, JwtKeys, Role};

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Trove's base URL [default: http:// and TROVE_LISTEN].
    #[arg(long, env = "TROVE_PROBE_URL")]
    url: Option<String>,
    /// An admin token [default: made from TROVE_JWT_SECRET, or the local stack's secret].
    #[arg(long, env = "TROVE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Run one round, print it, exit 1 on any violation.
    #[arg(long)]
    once: bool,
    /// Synthetic chests per shard per round (S).
    #[arg(long, default_value_t = 20)]
    chests: usize,
    /// Synthetic players claiming per shard per round (C, more than S).
    #[arg(long, default_value_t = 60)]
    claimers: usize,
    /// Players that send their claim twice at once with one idempotency key.
    #[arg(long, default_value_t = 10)]
    racing: usize,
    /// Players that drop their first response and retry with the same key.
    #[arg(long, default_value_t = 10)]
    dropped: usize,
    /// Do not watch the probe zones over WebSocket.
    #[arg(long)]
    no_websocket: bool,
    /// Pause between rounds.
    #[arg(long, default_value = "30s")]
    interval: String,
    /// Reporting window.
    #[arg(long, default_value = "15m")]
    window: String,
    /// Delete synthetic zones older than this.
    #[arg(long, default_value = "1h")]
    retention: String,
    /// Where the probe serves its own /metrics.
    #[arg(
        long,
        env = "TROVE_PROBE_METRICS_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    metrics_listen: SocketAddr,
}

/// The Trove the probe talks to, from the shared settings.
pub struct Target {
    /// `TROVE_LISTEN`, for the default URL.
    pub listen: SocketAddr,
    /// `TROVE_JWT_SECRET`, for the default admin token.
    pub jwt_secret: Option<String>,
    /// Without TROVE_SHARDS: the local stack's data dir, whose secret a local Trove uses.
    pub local_data_dir: Option<PathBuf>,
}

/// Runs the probe until `shutdown`, or one round with `--once` (printed; an error when it
/// found violations).
pub async fn run(
    args: ProbeArgs,
    target: Target,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProbeError> {
    let seconds = |s: &str, what: &str| -> Result<Duration, ProbeError> {
        let n = parse_ttl(s).map_err(|e| ProbeError::Invalid(format!("--{what}: {e}")))?;
        Ok(Duration::from_secs(n.unsigned_abs()))
    };
    let opts = ProbeOptions {
        chests: args.chests,
        claimers: args.claimers,
        racing: args.racing,
        dropped: args.dropped,
        websocket: !args.no_websocket,
        interval: seconds(&args.interval, "interval")?,
        window: seconds(&args.window, "window")?,
        retention: seconds(&args.retention, "retention")?,
    };
    let url = args.url.unwrap_or_else(|| {
        let mut addr = target.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let token = match args.admin_token {
        Some(t) => t,
        None => admin_token(&target)?,
    };
    let probe = Probe::new(&url, &token, opts)?;
    if !args.once {
        return probe.run(args.metrics_listen, shutdown).await;
    }
    let report = probe.round(1).await.map_err(|e| {
        ProbeError::Invalid(format!("the probe round against {url} could not run: {e}"))
    })?;
    for v in &report.violations {
        println!("VIOLATION {} in zone {}: {}", v.kind, v.zone, v.detail);
    }
    println!("{}", summary(&report));
    if report.is_clean() {
        Ok(())
    } else {
        Err(ProbeError::Invalid(format!(
            "the probe found {} violation(s)",
            report.violations.len()
        )))
    }
}

/// An admin token made with the server's secret: configured, or the local stack's (read,
/// never made).
fn admin_token(target: &Target) -> Result<String, ProbeError> {
    let secret = match (&target.jwt_secret, &target.local_data_dir) {
        (Some(s), _) => s.clone(),
        (None, Some(dir)) => crate::local::read_secret(dir).ok_or_else(|| {
            ProbeError::Invalid(format!(
                "no --admin-token, no TROVE_JWT_SECRET, and no local stack secret in {}",
                dir.display()
            ))
        })?,
        (None, None) => {
            return Err(ProbeError::Invalid(
                "--admin-token or TROVE_JWT_SECRET is required".into(),
            ))
        }
    };
    let invalid = |e: crate::error::Error| ProbeError::Invalid(e.to_string());
    JwtKeys::new(secret.as_bytes())
        .and_then(|k| k.issue("trove-probe", Role::Admin, 86400))
        .map_err(invalid)
}
