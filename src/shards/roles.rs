//! Each server of a replicated shard: which is the primary and how far each standby is behind
//! it, for `trove shards` and `/readyz`.

use std::time::Duration;

use sqlx::{ConnectOptions, PgConnection};

use super::Shard;

/// One host of a shard's group, as it answers now.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HostRole {
    /// `host:port`.
    pub host: String,
    /// `primary`, `standby` or `down` (no answer within a second).
    pub role: &'static str,
    /// For a standby: WAL bytes it has yet to replay to be where the primary is.
    pub lag_bytes: Option<u64>,
    /// For the primary: whether its commits wait for a standby (false: the failover engine
    /// degraded it to asynchronous commit, and an acknowledged claim may be on it alone).
    pub synchronous: Option<bool>,
    pub error: Option<String>,
    /// Where its WAL is (written on the primary, replayed on a standby), for the watcher.
    #[serde(skip)]
    #[schema(ignore)]
    pub lsn: Option<u64>,
}

impl Shard {
    /// Every host's role and lag, asked at once (a second at most); empty for a plain shard.
    pub async fn host_roles(&self) -> Vec<HostRole> {
        let mut conns = Vec::new();
        let roles = self.host_roles_with(&mut conns).await;
        for conn in conns.into_iter().flatten() {
            let _ = sqlx::Connection::close(conn).await;
        }
        roles
    }

    /// The same over `conns`, a connection per host kept between calls (the watcher asks
    /// several times a second): one that failed is dropped and made again next time.
    pub(super) async fn host_roles_with(
        &self,
        conns: &mut Vec<Option<PgConnection>>,
    ) -> Vec<HostRole> {
        let hosts: Vec<_> = self.host_options().collect();
        if hosts.len() < 2 {
            return Vec::new();
        }
        conns.resize_with(hosts.len(), || None);
        let asks = hosts
            .iter()
            .zip(conns.iter_mut())
            .map(|((name, options), slot)| async move {
                let ask = async {
                    let mut conn = match slot.take() {
                        Some(conn) => conn,
                        None => options.connect().await?,
                    };
                    let row = sqlx::query_file!("sql/host_role.sql")
                        .fetch_one(&mut conn)
                        .await?;
                    *slot = Some(conn);
                    let lsn = row.lsn.as_deref().and_then(parse_lsn);
                    Ok::<_, sqlx::Error>((row.standby, lsn, row.synchronous))
                };
                let answer = match tokio::time::timeout(Duration::from_secs(1), ask).await {
                    Ok(Ok(row)) => Ok(row),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer within 1s".to_owned()),
                };
                (name.to_string(), answer)
            });
        let answers = futures_util::future::join_all(asks).await;
        let primary_lsn = answers.iter().find_map(|(_, a)| match a {
            Ok((false, lsn, _)) => *lsn,
            _ => None,
        });
        answers
            .into_iter()
            .map(|(host, answer)| match answer {
                Ok((standby, lsn, synchronous)) => HostRole {
                    host,
                    role: if standby { "standby" } else { "primary" },
                    lag_bytes: match (standby, primary_lsn, lsn) {
                        (true, Some(p), Some(s)) => Some(p.saturating_sub(s)),
                        _ => None,
                    },
                    synchronous: (!standby).then_some(synchronous),
                    error: None,
                    lsn,
                },
                Err(e) => HostRole {
                    host,
                    role: "down",
                    lag_bytes: None,
                    synchronous: None,
                    error: Some(e),
                    lsn: None,
                },
            })
            .collect()
    }
}

/// A WAL position (`16/B374D848`) as a byte offset.
fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) + u64::from_str_radix(lo, 16).ok()?)
}

/// `trove shards`' lines for a group's hosts.
pub fn host_lines(hosts: &[HostRole]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| match (h.role, h.lag_bytes, &h.error) {
            ("standby", Some(lag), _) => format!("  host {}: standby, {lag} bytes behind", h.host),
            ("primary", _, _) if h.synchronous == Some(false) => format!(
                "  host {}: primary, ASYNCHRONOUS (commits do not wait for a standby)",
                h.host
            ),
            (_, _, Some(e)) => format!("  host {}: {} ({e})", h.host, h.role),
            _ => format!("  host {}: {}", h.host, h.role),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_are_byte_offsets() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) + 0xB374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
