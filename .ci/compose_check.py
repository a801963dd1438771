"""Keeps docker-compose.yml and deploy/ in step with what the trove binary actually reads.

Usage: python3 .ci/compose_check.py path/to/trove

Checks: every TROVE_* variable the stack sets is one the binary documents (`trove serve
--help`, `trove probe --help` for the probe); the shard, Redis and instance host names are
services of the file; the port TROVE_LISTEN binds is the one nginx, Prometheus, the health
checks and the Dockerfile use; stop_grace_period outlasts TROVE_SHUTDOWN_TIMEOUT_MS; every
bind-mounted file and build context exists.

Replicated shards (Patroni nodes, deploy/patroni/): TROVE_SHARDS is split as Trove splits it;
a shard URL lists exactly the nodes of one Patroni scope, at least three, on their PostgreSQL
port, with the superuser's credentials; every node is named after its service, advertises its
own addresses, has its own volume, names an etcd service it waits for, and its health check
asks its REST API; `migrate` waits for every node; deploy/patroni/patroni.yml carries the
settings of the formation the failover tests run (src/local/formation/).
"""

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from ruamel.yaml import YAML

root = Path(__file__).resolve().parent.parent
problems = []


def fail(msg):
    problems.append(msg)


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m)", str(duration))
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return n / 1000 if unit == "ms" else n * 60 if unit == "m" else n


def split_shard_list(text):
    """TROVE_SHARDS as Trove splits it (src/shards/hosts.rs): a new shard starts only where
    postgres:// or postgresql:// begins, so a URL's host list keeps its commas."""
    shards = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if shards and not part.startswith(("postgres://", "postgresql://")):
            shards[-1] += "," + part
        else:
            shards.append(part)
    return shards


def shard_hosts(url):
    """(user, password, [(host, port)]) of a shard URL, one or several hosts (libpq's form)."""
    rest = url.split("://", 1)[-1]
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    userinfo, _, hosts = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    found = []
    for h in hosts.split(","):
        u = urlparse("//" + h.strip())
        found.append((u.hostname, u.port or 5432))
    return user, password, found


def port_of(address):
    return int(str(address).rsplit(":", 1)[-1])


binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/trove"


def settings(command):
    """The TROVE_* variables `trove <command> --help` documents."""
    text = subprocess.run(
        [binary, command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    found = set(re.findall(r"env: (TROVE_[A-Z0-9_]+)", text))
    if not found:
        sys.exit(f"{binary} {command} --help lists no TROVE_* variables")
    return found


known = settings("serve")
probe_known = settings("probe")

compose = YAML(typ="safe").load((root / "docker-compose.yml").read_text())
services = compose["services"]

# Trove services: the ones running our image (the probe is a client of them, checked below).
trove = {
    n: s
    for n, s in services.items()
    if s.get("image") == "trove:local" and (s.get("command") or [None])[0] != "probe"
}
probes = {
    n: s
    for n, s in services.items()
    if s.get("image") == "trove:local" and (s.get("command") or [None])[0] == "probe"
}
servers = {n: s for n, s in trove.items() if s.get("command") == ["serve"]}
if "migrate" not in trove or len(servers) < 2:
    fail("expected a `migrate` service and at least two `serve` instances of trove:local")

listen_ports = set()
for name, svc in trove.items():
    env = svc.get("environment") or {}
    for var in env:
        if var.startswith("TROVE_") and var not in known:
            fail(f"{name}: {var} is not a setting of the binary")
    for var in ("TROVE_SHARDS", "TROVE_JWT_SECRET", "TROVE_LISTEN"):
        if var not in env:
            fail(f"{name}: {var} is missing")
    for url in split_shard_list(env.get("TROVE_SHARDS", "")):
        for host, _ in shard_hosts(url)[2]:
            if host not in services:
                fail(f"{name}: shard host {host!r} is not a service")
    redis = env.get("TROVE_REDIS_URL")
    if redis and urlparse(redis).hostname not in services:
        fail(f"{name}: Redis host {urlparse(redis).hostname!r} is not a service")
    listen = str(env.get("TROVE_LISTEN", ""))
    if listen:
        listen_ports.add(listen.rsplit(":", 1)[-1])
    if name in servers:
        grace = seconds(svc.get("stop_grace_period", "10s"))
        bound = int(env.get("TROVE_SHUTDOWN_TIMEOUT_MS", 15000)) / 1000
        if grace is None or grace <= bound:
            fail(f"{name}: stop_grace_period must exceed TROVE_SHUTDOWN_TIMEOUT_MS ({bound}s)")
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        if listen and f":{listen.rsplit(':', 1)[-1]}/" not in test:
            fail(f"{name}: health check does not probe the TROVE_LISTEN port")
if len(listen_ports) != 1:
    fail(f"trove services listen on different ports: {sorted(listen_ports)}")
port = next(iter(listen_ports), "")

nginx = (root / "deploy/nginx.conf").read_text()
upstreams = set(re.findall(r"^\s*server\s+([\w.-]+):(\d+);", nginx, re.M))
if upstreams != {(n, port) for n in servers}:
    fail(f"nginx upstreams {sorted(upstreams)} != trove instances on port {port}")

prom = YAML(typ="safe").load((root / "deploy/prometheus.yml").read_text())
targets = {
    t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
}
probe_targets = set()
for name, svc in probes.items():
    env = svc.get("environment") or {}
    for var in env:
        if var.startswith("TROVE_") and var not in probe_known:
            fail(f"{name}: {var} is not a setting of `trove probe`")
    if env.get("TROVE_JWT_SECRET") != (trove.get("migrate", {}).get("environment") or {}).get(
        "TROVE_JWT_SECRET"
    ):
        fail(f"{name}: TROVE_JWT_SECRET differs from the instances' (its token would be refused)")
    url = urlparse(str(env.get("TROVE_PROBE_URL", "")))
    if url.hostname not in services or str(url.port) != port:
        fail(f"{name}: TROVE_PROBE_URL {url.geturl()!r} is not a service on port {port}")
    metrics = str(env.get("TROVE_PROBE_METRICS_LISTEN", "127.0.0.1:9465"))
    probe_targets.add(f"{name}:{metrics.rsplit(':', 1)[-1]}")
if targets != {f"{n}:{port}" for n in servers} | probe_targets:
    fail(
        f"Prometheus targets {sorted(targets)} != every trove instance on port {port}"
        f" and every probe's metrics port {sorted(probe_targets)}"
    )

dockerfile = (root / "Dockerfile").read_text()
if f"EXPOSE {port}" not in dockerfile or f"TROVE_LISTEN=0.0.0.0:{port}" not in dockerfile:
    fail(f"Dockerfile must EXPOSE {port} and default TROVE_LISTEN to it")

for name, svc in services.items():
    for volume in svc.get("volumes", []):
        source = str(volume).split(":", 1)[0]
        if source.startswith("./") and not (root / source).exists():
            fail(f"{name}: mounted {source} does not exist")
    build = svc.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    if context and not (root / context).is_dir():
        fail(f"{name}: build context {context} does not exist")

# Replicated shards: the Patroni nodes are the services built from deploy/patroni.
patroni_dir = root / "deploy/patroni"
nodes = {
    n: s
    for n, s in services.items()
    if str(s.get("build", "")).rstrip("/") in ("./deploy/patroni", "deploy/patroni")
}
patroni = YAML(typ="safe").load((patroni_dir / "patroni.yml").read_text())
pg_port = port_of(patroni["postgresql"]["listen"])
api_port = port_of(patroni["restapi"]["listen"])
etcds = {n for n, s in services.items() if str(s.get("image")).startswith("quay.io/coreos/etcd:")}
named_volumes = set(compose.get("volumes") or {})
data_dir = patroni["postgresql"]["data_dir"]
scopes = {}
volume_owner = {}
for name, svc in nodes.items():
    env = svc.setdefault("environment", {})
    if env.get("PATRONI_NAME") != name:
        fail(f"{name}: PATRONI_NAME {env.get('PATRONI_NAME')!r} is not the service's name")
    for var, own_port in (
        ("PATRONI_RESTAPI_CONNECT_ADDRESS", api_port),
        ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", pg_port),
    ):
        if env.get(var) != f"{name}:{own_port}":
            fail(f"{name}: {var} {env.get(var)!r} is not {name}:{own_port}, its own address")
    if not env.get("PATRONI_SCOPE"):
        fail(f"{name}: PATRONI_SCOPE (its shard) is missing")
    scopes.setdefault(env.get("PATRONI_SCOPE"), set()).add(name)
    stores = env.get("PATRONI_ETCD3_HOST") or env.get("PATRONI_ETCD3_HOSTS")
    if not stores:
        fail(f"{name}: PATRONI_ETCD3_HOST (Patroni's store) is missing")
    for store in str(stores or "").replace("'", "").split(","):
        host = store.strip().rsplit(":", 1)[0]
        if host not in etcds:
            fail(f"{name}: its etcd {host!r} is not an etcd service")
        elif f"--advertise-client-urls=http://{store.strip()}" not in services[host]["command"]:
            fail(f"{name}: {host} does not advertise {store.strip()}")
        elif (svc.get("depends_on") or {}).get(host, {}).get("condition") != "service_healthy":
            fail(f"{name}: does not wait for {host} to be healthy")
    test = " ".join(svc.get("healthcheck", {}).get("test", []))
    if f":{api_port}/" not in test:
        fail(f"{name}: health check does not ask Patroni's REST API (port {api_port})")
    mounts = [str(v).split(":") for v in svc.get("volumes", [])]
    own = [src for src, dst, *_ in mounts if data_dir.startswith(dst.rstrip("/") + "/")]
    if len(own) != 1 or own[0] not in named_volumes:
        fail(f"{name}: needs a named volume mounted above its data_dir {data_dir}")
    elif own[0] in volume_owner:
        fail(f"{name}: shares volume {own[0]} with {volume_owner[own[0]]}")
    else:
        volume_owner[own[0]] = name

migrate_env = trove.get("migrate", {}).get("environment") or {}
shard_urls = split_shard_list(migrate_env.get("TROVE_SHARDS", ""))
listed = set()
for i, url in enumerate(shard_urls):
    user, password, hosts = shard_hosts(url)
    names = {h for h, _ in hosts}
    members = sorted(names & set(nodes))
    if not members:
        continue  # a plain PostgreSQL shard
    listed |= names
    if len(members) != len(names):
        fail(f"shard {i}: mixes Patroni nodes with other hosts: {sorted(names)}")
    scope = {nodes[h]["environment"].get("PATRONI_SCOPE") for h in members}
    if len(scope) != 1:
        fail(f"shard {i}: its hosts are in different Patroni scopes {sorted(map(str, scope))}")
    elif scopes.get(next(iter(scope))) != names:
        # A node left out of the URL could be promoted where Trove never looks for it.
        scope = next(iter(scope))
        fail(f"shard {i} lists {sorted(names)}, scope {scope!r} is {sorted(scopes[scope])}")
    if len(names) < 3:
        fail(f"shard {i}: {len(names)} nodes; strict synchronous mode needs three to lose one")
    for host, host_port in hosts:
        if host_port != pg_port:
            fail(f"shard {i}: {host}:{host_port} is not the nodes' PostgreSQL port {pg_port}")
    superusers = {
        (env.get("PATRONI_SUPERUSER_USERNAME"), env.get("PATRONI_SUPERUSER_PASSWORD"))
        for env in (nodes[h]["environment"] for h in members)
    }
    if superusers != {(user, password)}:
        fail(f"shard {i}: the URL's user and password are not its nodes' superuser's")
for name in sorted(set(nodes) - listed):
    fail(f"{name}: a Patroni node in no TROVE_SHARDS URL")
waits = (trove.get("migrate", {}).get("depends_on")) or {}
for name in sorted(nodes):
    if (waits.get(name) or {}).get("condition") != "service_healthy":
        fail(f"migrate: does not wait for {name} to be healthy")

# The settings the failover tests prove (src/local/formation/: the detection in mod.rs, the
# Patroni YAML in config.rs) are the ones deployed.
formation = "".join(
    (root / "src/local/formation" / f).read_text() for f in ("mod.rs", "config.rs")
)
expected = {}
tuned = re.search(r"TUNED: Detection = Detection \{(.*?)\}", formation, re.S)
if tuned:
    expected.update(re.findall(r"(\w+): (\d+)", tuned.group(1)))
for key in (
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "use_pg_rewind",
    "wal_log_hints",
    "max_connections",
    "wal_retrieve_retry_interval",
):
    m = re.search(rf"^\s*{key}: (.+)$", formation, re.M)
    if m:
        expected[key] = m.group(1).strip().strip('"')
if len(expected) != 10:
    fail(f"src/local/formation/: found {sorted(expected)} of the formation's settings, not ten")


def leaves(tree):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value)
        else:
            yield key, str(value).lower() if isinstance(value, bool) else str(value)


deployed = dict(leaves(patroni["bootstrap"]["dcs"]))
for key, value in sorted(expected.items()):
    if deployed.get(key) != value:
        fail(f"deploy/patroni/patroni.yml: {key} is {deployed.get(key)!r}, the tests' {value!r}")

dockerfile = (patroni_dir / "Dockerfile").read_text()
config_at = re.search(r"^COPY patroni\.yml (\S+)$", dockerfile, re.M)
if not config_at or f'"{config_at.group(1)}"' not in dockerfile.split("ENTRYPOINT", 1)[-1]:
    fail("deploy/patroni/Dockerfile: ENTRYPOINT does not run the patroni.yml it copies")
major = re.search(r"^FROM postgres:(\d+)", dockerfile, re.M)
if not major or f"/postgresql/{major.group(1)}/bin" not in patroni["postgresql"].get("bin_dir", ""):
    fail("deploy/patroni: bin_dir is not the PostgreSQL of the image's FROM")

if problems:
    print("compose-check found problems:")
    for p in problems:
        print(f"  - {p}")
    sys.exit(1)
print(
    f"compose consistency: ok ({len(servers)} instances on port {port}, "
    f"{len(shard_urls)} shards, {len(nodes)} Patroni nodes, "
    f"{len(known)} TROVE_* settings known to the binary)"
)
