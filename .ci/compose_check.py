"""Keeps docker-compose.yml and deploy/ in step with what the trove binary actually reads.

Usage: python3 .ci/compose_check.py path/to/trove

Checks: every TROVE_* variable the stack sets is one the binary documents (`trove serve
--help`, `trove probe --help` for the probe); the shard, Redis and instance host names are services of the file; the port
TROVE_LISTEN binds is the one nginx, Prometheus, the health checks and the Dockerfile use;
stop_grace_period outlasts TROVE_SHUTDOWN_TIMEOUT_MS; every bind-mounted file exists.
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
    for url in str(env.get("TROVE_SHARDS", "")).split(","):
        host = urlparse(url.strip()).hostname
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

if problems:
    print("compose-check found problems:")
    for p in problems:
        print(f"  - {p}")
    sys.exit(1)
print(
    f"compose consistency: ok ({len(servers)} instances on port {port}, "
    f"{len(known)} TROVE_* settings known to the binary)"
)
