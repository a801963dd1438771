//! A shard may be a replicated group of servers, written in libpq's multi-host URL form
//! (`postgres://trove@h1:5432,h2:5432/trove`). sqlx connects to one host only, so the group is
//! split into one URL per host here and the shard itself finds which of them is the primary.

/// TROVE_SHARDS split into shards: a new shard starts only where `postgres://` or
/// `postgresql://` begins, so the commas of a URL's host list do not split it. Empty parts
/// (a trailing comma) are dropped.
pub fn split_shard_list(list: &str) -> Vec<String> {
    let mut shards: Vec<String> = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match shards.last_mut() {
            Some(last) if !starts_a_url(part) => {
                last.push(',');
                last.push_str(part);
            }
            _ => shards.push(part.to_owned()),
        }
    }
    shards
}

fn starts_a_url(part: &str) -> bool {
    part.starts_with("postgres://") || part.starts_with("postgresql://")
}

/// One URL per host of a shard URL, each with the URL's user, password, database and
/// parameters: `postgres://u@h1:1,h2:2/db?x=y` is `postgres://u@h1:1/db?x=y` and
/// `postgres://u@h2:2/db?x=y`. A single-host URL comes back as it is.
pub fn host_urls(url: &str) -> Result<Vec<String>, String> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| "not a postgres:// URL".to_owned())?
        + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err("a host in the URL's host list is empty".to_owned());
    }
    Ok(hosts
        .iter()
        .map(|host| format!("{}{userinfo}{host}{tail}", &url[..scheme_end]))
        .collect())
}

/// The `host:port` part of a single-host URL, to name a server in logs, metrics and
/// `trove shards` without its credentials.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Removes the password from a connection URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_where_a_url_begins() {
        assert_eq!(
            split_shard_list(
                "postgres://a:1,b:2/trove, postgresql://c/trove,postgres://u:p@d:4,e/x?sslmode=disable,"
            ),
            vec![
                "postgres://a:1,b:2/trove",
                "postgresql://c/trove",
                "postgres://u:p@d:4,e/x?sslmode=disable",
            ]
        );
        assert!(split_shard_list(" , ").is_empty());
    }

    #[test]
    fn a_host_list_becomes_one_url_per_host() {
        assert_eq!(
            host_urls("postgres://u:p@h1:5432,h2:5433/trove?application_name=t").unwrap(),
            vec![
                "postgres://u:p@h1:5432/trove?application_name=t",
                "postgres://u:p@h2:5433/trove?application_name=t",
            ]
        );
        assert_eq!(
            host_urls("postgres://h1/trove").unwrap(),
            vec!["postgres://h1/trove"]
        );
        assert_eq!(
            host_urls("postgres://[::1]:5432,h2").unwrap(),
            vec!["postgres://[::1]:5432", "postgres://h2"]
        );
        assert!(host_urls("postgres://h1,,h2/trove").is_err());
        assert!(host_urls("h1,h2").is_err());
        assert_eq!(host_of("postgres://u:p@h1:5432/trove?x=y"), "h1:5432");
        assert_eq!(host_of("postgres://h2"), "h2");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://trove:s3cret@db:5432/trove"),
            "postgres://trove:***@db:5432/trove"
        );
        assert_eq!(
            redact("postgres://trove@db/trove"),
            "postgres://trove@db/trove"
        );
    }
}
