#!/usr/bin/env python3
"""Trove's instructions per claim under callgrind: a figure that does not move with the host.

Trove runs under `valgrind --tool=callgrind` (instrumentation off until the load starts) on two fresh
shard databases of PostgreSQL at --pg (default the machine's 127.0.0.1:5432), with one
1,000,000-chest zone. `wrk` warms it up, then callgrind's counters are zeroed, `wrk` posts
admin claims for 5,000 players for --seconds with --connections connections (pinned: under
valgrind's slowdown the batch size follows the concurrency, so compare runs at the same
setting), the counters are dumped, and the instructions are divided by the claims opened
meanwhile (the zone's `opened`). Each build given is run in turn; --keep DIR keeps the dumps
(`callgrind_annotate --inclusive=yes DIR/<name>.out` shows where the instructions go).

Usage: benches/claim_callgrind.py TROVE_BIN [TROVE_BIN ...] [--connections 16] [--seconds 20]
       [--pg postgres://postgres@127.0.0.1:5432] [--keep DIR] [--players [--redis URL]]
--players: each claim with its player's own token and Redis on (rate limits, leaderboards).
Needs: valgrind, wrk.
"""

import argparse
import glob
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from claim_cpu import SECRET, admin_lua, free_port, hs256, http, player_lua


def psql(url, sql):
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


def statements(base):
    """Claim statements sent so far and the claims they carried (Trove's /metrics)."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=30).read().decode()
    sent = {"trove_claim_statements_total": 0, "trove_claim_statement_claims_total": 0}
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in sent:
            sent[name] += float(line.rsplit(" ", 1)[1])
    return sent["trove_claim_statements_total"], sent["trove_claim_statement_claims_total"]


def one(binary, args, name, workdir):
    dbs = [f"trove_cg_{os.getpid()}_{name.split('-')[0]}_{i}" for i in range(2)]
    for db in dbs:
        psql(f"{args.pg}/postgres", f"CREATE DATABASE {db}")
    env = dict(os.environ, TROVE_SHARDS=",".join(f"{args.pg}/{db}" for db in dbs),
               TROVE_JWT_SECRET=SECRET, TROVE_RECEIPT_KEY="11" * 32, RUST_LOG="error",
               TROVE_LISTEN=f"127.0.0.1:{free_port()}", TROVE_REQUEST_TIMEOUT_MS="60000",
               TROVE_DB_ACQUIRE_TIMEOUT_MS="30000", TROVE_DB_STATEMENT_TIMEOUT_MS="60000")
    if args.players:
        env.update(TROVE_REDIS_URL=args.redis, TROVE_REDIS_PREFIX=f"cg{os.getpid()}{name[0]}",
                   TROVE_REDIS_TIMEOUT_MS="2000")
    subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    out = f"{workdir}/{name}.out"
    trove = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              "--instr-atstart=no", binary, "serve"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://{env['TROVE_LISTEN']}"
    admin = hs256("bench", "admin")
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        http("PUT", f"{base}/v1/loot-tables/starter", admin, {"entries": [
            {"item": "gold", "weight": 70, "min_qty": 1, "max_qty": 50, "rarity": "common"},
            {"item": "gem", "weight": 30, "min_qty": 1, "max_qty": 2, "rarity": "rare"}]})
        http("POST", f"{base}/v1/zones/meadow/chests", admin,
             {"count": 1000000, "loot_table": "starter"})
        lua = f"{workdir}/claims.lua"
        with open(lua, "w") as f:
            f.write(player_lua() if args.players else admin_lua(admin))
        wrk = ["wrk", "-t1", f"-c{args.connections}", "--timeout", "30s", "-s", lua]
        subprocess.run(wrk + ["-d5s", base], capture_output=True)
        opened0 = http("GET", f"{base}/v1/zones/meadow", admin)["opened"]
        sent0 = statements(base)
        subprocess.run(["callgrind_control", "-z", str(trove.pid)], check=True,
                       capture_output=True)
        subprocess.run(["callgrind_control", "-i", "on", str(trove.pid)], check=True,
                       capture_output=True)
        subprocess.run(wrk + [f"-d{args.seconds}s", base], capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(trove.pid)], check=True,
                       capture_output=True)
        subprocess.run(["callgrind_control", "-i", "off", str(trove.pid)], check=True,
                       capture_output=True)
        opened1 = http("GET", f"{base}/v1/zones/meadow", admin)["opened"]
        sent1 = statements(base)
    finally:
        trove.terminate()
        trove.wait()
        for db in dbs:
            psql(f"{args.pg}/postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    dumps = sorted(glob.glob(f"{out}.*"), key=os.path.getmtime)
    total = 0
    with open(dumps[0]) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                break
    claims = opened1 - opened0
    batch = (sent1[1] - sent0[1]) / max(sent1[0] - sent0[0], 1)
    return total, claims, batch, dumps[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trove", nargs="+")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--keep")
    ap.add_argument("--players", action="store_true",
                    help="players' own tokens, Redis on (rate limits and leaderboards)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="trove-callgrind-")
    try:
        print(f"{args.connections} connections, {args.seconds} s under callgrind")
        # The batch follows valgrind's slowdown (a few claims a statement, against ~30 in a
        # native storm), and a statement's costs (one receipt signature, ~236,000
        # instructions; one round trip) are shared by its claims: compare at equal batches.
        print("binary | claims | claims/statement | instructions/claim")
        for i, binary in enumerate(args.trove):
            name = f"{i}-{os.path.basename(binary)}"
            total, claims, batch, dump = one(binary, args, name, workdir)
            print(f"{binary} | {claims} | {batch:.1f} | {total // max(claims, 1):,}", flush=True)
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                shutil.copy(dump, f"{args.keep}/{name}.out")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
