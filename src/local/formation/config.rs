//! A node's Patroni configuration.

use std::path::Path;

use super::Detection;

pub(super) struct PatroniConfig<'a> {
    pub(super) scope: &'a str,
    pub(super) name: &'a str,
    /// The node's address for its peers, where it listens, and etcd's.
    pub(super) host: &'a str,
    pub(super) listen: &'a str,
    pub(super) etcd: &'a str,
    pub(super) pg_port: u16,
    pub(super) api_port: u16,
    pub(super) data_dir: &'a Path,
    pub(super) bin_dir: &'a Path,
    pub(super) detection: Detection,
    pub(super) settings: &'a [(&'a str, &'a str)],
}

/// A node's Patroni configuration. Every node trusts connections from its own subnets
/// (`samenet`: the loopback, or a test's namespaces; like the local stack's clusters); the
/// superuser is `trove`, as in the local stack.
pub(super) fn patroni_config(c: PatroniConfig) -> String {
    let mut parameters = String::new();
    for (k, v) in c.settings {
        parameters.push_str(&format!("        {k}: \"{v}\"\n"));
    }
    format!(
        r#"scope: {scope}
name: {name}
restapi:
  listen: {listen}:{api}
  connect_address: {host}:{api}
etcd3:
  hosts: {etcd}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    # A standby is promoted only if it was synchronous, and commits wait for a standby
    # rather than ever going on without one: no acknowledged claim is on one server only.
    synchronous_mode: true
    synchronous_mode_strict: true
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
        max_connections: 200
        # A standby retries its primary every 0.5 s (not 5 s), so after a promotion the new
        # primary gets its synchronous standby, and with it its writes, back sooner.
        wal_retrieve_retry_interval: 500ms
{parameters}  initdb:
    - encoding: UTF8
    - locale: C
    - auth: trust
postgresql:
  listen: {listen}:{pg}
  connect_address: {host}:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {data}.pgpass
  authentication:
    superuser:
      username: trove
    replication:
      username: trove
  parameters:
    unix_socket_directories: ""
  pg_hba:
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
    - host all all samenet trust
    - host replication all samenet trust
"#,
        scope = c.scope,
        name = c.name,
        api = c.api_port,
        host = c.host,
        listen = c.listen,
        etcd = c.etcd,
        ttl = c.detection.ttl,
        loop_wait = c.detection.loop_wait,
        retry = c.detection.retry_timeout,
        pg = c.pg_port,
        data = c.data_dir.display(),
        bin = c.bin_dir.display(),
    )
}
