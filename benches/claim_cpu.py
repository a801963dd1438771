#!/usr/bin/env python3
"""CPU per claim of two Trove binaries, runs interleaved (A, B, A, B, ...).

Each run: a fresh pair of shard databases on one private durable PostgreSQL cluster, one
zone of 1,000,000 chests, then `wrk` with 64 connections posting admin claims on behalf of
5,000 players for DURATION seconds. CPU (user + system) is read from /proc for Trove and for
every process of the cluster before and after; claims are the zone's `opened` count.

Usage: benches/claim_cpu.py BIN_A BIN_B [--runs 3] [--duration 10] [--profile DIR]
--statements: also print, per run, the statements that took the cluster's time (from
pg_stat_statements: calls, rows, mean ms, share of the total).
--profile DIR: also record `perf` profiles of Trove and of the cluster during each measured
window (DIR/<binary><run>-trove.data, -postgres.data; read with `perf report -i`).
Needs: wrk, PostgreSQL's server binaries; run as root (the cluster runs as `postgres`).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
SECRET = "claim-cpu-bench-secret-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pg_bin():
    """A directory with the server binaries and createdb (Debian's, else the PATH's)."""
    if os.path.isdir("/usr/lib/postgresql"):
        versions = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v) if v.isdigit() else 0)
        for v in reversed(versions):
            d = f"/usr/lib/postgresql/{v}/bin"
            if os.path.exists(f"{d}/initdb") and os.path.exists(f"{d}/createdb"):
                return d
    return os.path.dirname(shutil.which("initdb") or "/usr/bin/initdb")


def as_pg(args):
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total


def cluster_pids(postmaster):
    out = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True)
    return [postmaster] + [int(p) for p in out.stdout.split()]


def http(method, url, token, body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def psql(pg, port, db, sql):
    return subprocess.run([f"{pg}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                           "-d", db, "-qAtc", sql], check=True, capture_output=True, text=True).stdout


def top_statements(pg, port):
    """The statements that took the time since the last reset, the costliest first."""
    return psql(pg, port, "postgres", """
        SELECT calls, rows, round(mean_exec_time::numeric, 3),
               round((100 * total_exec_time / sum(total_exec_time) OVER ())::numeric, 1),
               left(regexp_replace(query, '\s+', ' ', 'g'), 90)
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8""")


def claim_timings(base):
    """Trove's running totals of claim statements and their time, summed over shards (None
    for a build without them)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
        text = r.read().decode()
    totals = {}
    for name in ("statements_total", "statement_claims_total", "statement_seconds_total",
                 "wait_seconds_total"):
        values = re.findall(rf"^trove_claim_{name}{{[^}}]*}} (\S+)$", text, re.M)
        totals[name] = sum(float(v) for v in values) if values else None
    return totals


def where_the_time_goes(before, after):
    """Mean wall time of a claim statement (asking for a connection to the answer) and mean
    wait of a claim in its shard's queue, in ms, between two claim_timings."""
    d = {k: (after[k] - before[k]) if after[k] is not None else None for k in after}
    if d["statement_seconds_total"] is None or not d["statements_total"]:
        return None, None
    return (round(1000 * d["statement_seconds_total"] / d["statements_total"], 2),
            round(1000 * d["wait_seconds_total"] / max(d["statement_claims_total"], 1), 2))


def hs256(player, role, ttl=3600):
    """A Trove token signed with SECRET, made here (5,000 `trove token` runs would take long)."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": player, "role": role, "exp": int(time.time()) + ttl}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def admin_lua(admin):
    """A wrk script posting the admin's claims on behalf of 5,000 players to `meadow`."""
    return f"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {admin}"
wrk.headers["Content-Type"] = "application/json"
local requests = {{}}
for i = 1, 5000 do
  requests[i] = wrk.format(nil, "/v1/zones/meadow/claims", nil, '{{"player":"p' .. (i - 1) .. '"}}')
end
request = function()
  return requests[math.random(1, 5000)]
end
"""


def player_lua():
    """A wrk script posting claims to `meadow`, each with one of 5,000 players' own tokens."""
    tokens = ",\n".join(f'"{hs256(f"p{i}", "player")}"' for i in range(5000))
    return f"""
local tokens = {{ {tokens} }}
wrk.method = "POST"
local requests = {{}}
for i = 1, 5000 do
  requests[i] = wrk.format(nil, "/v1/zones/meadow/claims",
    {{["Authorization"] = "Bearer " .. tokens[i]}}, nil)
end
request = function()
  return requests[math.random(1, 5000)]
end
"""


def children_cpu():
    """CPU seconds of this script's waited-for children (wrk, once it has exited)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def start_trove(binary, env):
    """Migrates, starts `trove serve` and waits for it: (process, base URL, admin token)."""
    subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    admin = subprocess.run([binary, "token", "--player", "bench", "--admin"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    trove = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://{env['TROVE_LISTEN']}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return trove, base, admin


def run_once(binary, pg, port, run, duration, profile=None, statements=False, players=False,
             redis=None):
    """One storm. players: each request a player's own claim with their own token (rate
    limits apply when `redis` is set) instead of the admin claiming on their behalf."""
    dbs = [f"bench_{run}_{i}" for i in range(2)]
    for db in dbs:
        subprocess.run([f"{pg}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db], check=True)
    env = dict(os.environ)
    env.update({
        "TROVE_SHARDS": ",".join(f"postgres://postgres@127.0.0.1:{port}/{db}" for db in dbs),
        "TROVE_JWT_SECRET": SECRET,
        "TROVE_RECEIPT_KEY": "11" * 32,
        "RUST_LOG": "warn",
    })
    if redis:
        env["TROVE_REDIS_URL"] = redis
        env["TROVE_REDIS_PREFIX"] = f"bench{run}{os.getpid()}"
    listen = f"127.0.0.1:{free_port()}"
    env["TROVE_LISTEN"] = listen
    trove, base, admin = start_trove(binary, env)
    http("PUT", f"{base}/v1/loot-tables/starter", admin, {"entries": [
        {"item": "gold", "weight": 70, "min_qty": 1, "max_qty": 50, "rarity": "common"},
        {"item": "gem", "weight": 30, "min_qty": 1, "max_qty": 2, "rarity": "rare"}]})
    http("POST", f"{base}/v1/zones/meadow/chests", admin, {"count": 1000000, "loot_table": "starter"})
    if os.environ.get("CLAIM_CPU_SQL") and binary == os.environ.get("CLAIM_CPU_SQL_FOR"):
        # An experiment on one binary's schema (e.g. a version-1 epoch to leave nonces out).
        for db in dbs:
            subprocess.run([f"{pg}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                            "-d", db, "-qc", os.environ["CLAIM_CPU_SQL"]], check=True)
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    if players:
        lua.write(player_lua())
    else:
        lua.write(admin_lua(admin))
    lua.close()
    # Warm up (first claims of each player read their nonce rows), then measure.
    subprocess.run(["wrk", "-t2", "-c64", "-d3s", "-s", lua.name, base], capture_output=True)
    opened0 = http("GET", f"{base}/v1/zones/meadow", admin)["opened"]
    pids = cluster_pids(pg_postmaster(pg_data_dir))
    perfs = []
    if profile:
        for what, targets in (("trove", [trove.pid]), ("postgres", pids)):
            # Trove's stacks need DWARF unwinding (no frame pointers in the release build).
            graph = ["--call-graph", "dwarf,16384", "-F", "250"] if what == "trove" else ["-g"]
            perfs.append(subprocess.Popen(
                ["perf", "record", "-q", *graph, "-o", f"{profile}/{run}-{what}.data",
                 "-p", ",".join(map(str, targets)), "--", "sleep", str(duration)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    if statements:
        psql(pg, port, "postgres", "SELECT pg_stat_statements_reset()")
    timings0 = claim_timings(base)
    t0, c0, l0 = cpu_ticks([trove.pid]), cpu_ticks(pids), children_cpu()
    w = subprocess.run(["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", "-s", lua.name, base],
                       capture_output=True, text=True).stdout
    t1, c1 = cpu_ticks([trove.pid]), cpu_ticks(cluster_pids(pg_postmaster(pg_data_dir)))
    l1 = children_cpu()
    opened1 = http("GET", f"{base}/v1/zones/meadow", admin)["opened"]
    statement_ms, wait_ms = where_the_time_goes(timings0, claim_timings(base))
    for p in perfs:
        p.wait()
    top = top_statements(pg, port) if statements else ""
    batch = exec_ms = None
    for line in top.splitlines():
        calls, rows, mean_ms, _, query = line.split("|", 4)
        if query.startswith("-- Open chests"):
            batch = round(int(rows) / max(int(calls), 1), 1)
            exec_ms = float(mean_ms)
    trove.terminate()
    trove.wait()
    os.unlink(lua.name)
    claims = opened1 - opened0
    lat = {}
    for line in w.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            lat[parts[0]] = parts[1]
    us = lambda ticks: ticks / TICK * 1e6 / max(claims, 1)
    return {
        "claims_per_s": round(claims / duration),
        "trove_us": round(us(t1 - t0), 1),
        "postgres_us": round(us(c1 - c0), 1),
        "load_us": round((l1 - l0) * 1e6 / max(claims, 1), 1),
        "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", w)) else 0,
        "p50": lat.get("50%"),
        "p99": lat.get("99%"),
        "statements": top,
        "batch": batch,
        # A claim's wall time: its wait in the queue, then its statement (of which PostgreSQL's
        # executor took exec_ms; the rest is the commit, the round trip and waiting for CPU).
        "wait_ms": wait_ms,
        "statement_ms": statement_ms,
        "exec_ms": exec_ms,
    }


def pg_postmaster(data_dir):
    with open(f"{data_dir}/postmaster.pid") as f:
        return int(f.readline())


pg_data_dir = None


def main():
    global pg_data_dir
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--profile", help="record perf profiles into this directory")
    ap.add_argument("--statements", action="store_true", help="print pg_stat_statements' top")
    args = ap.parse_args()
    pg = pg_bin()
    root = tempfile.mkdtemp(prefix="trove-claim-cpu-")
    os.chmod(root, 0o777)
    pg_data_dir = f"{root}/pg"
    port = free_port()
    as_pg([f"{pg}/initdb", "-D", pg_data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
    as_pg([f"{pg}/pg_ctl", "start", "-D", pg_data_dir, "-l", f"{root}/pg.log", "-w",
           "-o", f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"
           + (" -c shared_preload_libraries=pg_stat_statements" if args.statements else "")])
    if args.statements:
        psql(pg, port, "postgres", "CREATE EXTENSION pg_stat_statements")
    try:
        print("binary | run | claims/s | Trove µs/claim | PostgreSQL µs/claim | p50 | p99"
              + (" | claims/statement" if args.statements else ""))
        for run in range(args.runs):
            for name, binary in (("A", args.a), ("B", args.b)):
                r = run_once(binary, pg, port, f"{name}{run}".lower(), args.duration, args.profile,
                             args.statements)
                print(f"{name} | {run} | {r['claims_per_s']} | {r['trove_us']} | {r['postgres_us']} | {r['p50']} | {r['p99']}"
                      + (f" | {r['batch']}" if args.statements else ""), flush=True)
                if r["statements"]:
                    print("  calls | rows | mean ms | % time | statement")
                    for line in r["statements"].splitlines():
                        print("  " + line.replace("|", " | "), flush=True)
    finally:
        as_pg([f"{pg}/pg_ctl", "stop", "-D", pg_data_dir, "-m", "fast"])
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
