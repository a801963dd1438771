#!/usr/bin/env python3
"""PostgreSQL's CPU per claim for claim statements alone: pgbench, no Trove in the loop.

Each SQL file is a version of `sql/claim.sql` (e.g. this one and `git show REV:sql/claim.sql`);
its parameters are filled from a batch of BATCH claims of random players (of 5,000) built in
SQL, so pgbench runs exactly that statement, prepared, one batch per transaction. Files run in
turn (A, B, A, B, ...), each on a fresh 1,000,000-chest zone of one private durable cluster
set up by TROVE_BIN (`migrate`, a loot table, the chests). CPU is read from /proc for every
process of the cluster over the middle of each run; claims from the zone's counters.

Usage: benches/claim_sql.py TROVE_BIN SQL_FILE... [--batch 16] [--clients 8] [--seconds 12]
       [--rounds 3] [--nonces] [--callgrind [--keep DIR]]
--callgrind: instead of pgbench, count PostgreSQL's instructions per claim under valgrind
(one single-user backend prepares the statement with typed parameters, as Trove's driver does,
and runs it 20 and then 50 times on batches of players new to the zone; the difference
divided by the claims it opened leaves start-up out). Typed parameters matter: pgbench's
script above fills them from a CTE, and the plans the planner makes for that are not the
generic plan a shard runs (hashing joins where the generic plan loops, and the reverse), so
a change can look better or worse there than it is. The count does not move with the host's
load, so it shows steps of a few per cent that CPU time cannot. --keep DIR keeps each run's
callgrind output there (`callgrind_annotate DIR/<file>-40.out` shows where the instructions go).
--nonces fills the version-2 arguments (the player's next nonce read from the ledger, client
seed ""); without it they are NULL (a version-1 epoch's claims, which use no nonce). Every file
must run on TROVE_BIN's schema (63dd543's statement does; those of 0007-0008 need their
player_nonces columns, gone since 0009).
Needs: PostgreSQL's server binaries and pgbench; run as root (the cluster runs as `postgres`).
"""

import argparse
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import uuid

from claim_cpu import (SECRET, TICK, as_pg, cluster_pids, cpu_ticks, free_port, http, pg_bin,
                       pg_postmaster, psql, start_trove)

PLAYERS = 5000


def pgbench_script(sql, batch, nonces, clients):
    """The claim statement with its $n parameters taken from one batch built in SQL. Each
    client claims for players of its own (as Trove takes one claim of a player at a time),
    so no two clients race for one player's nonce, and a batch's players are distinct (a
    stride prime to the share from a random start), as the engine's batches are."""
    share = PLAYERS // clients
    sql = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    nonce = ("coalesce((SELECT c.nonce + 1 FROM claims c WHERE c.zone_id = 1 AND c.seed_epoch = 1"
             " AND c.player = p AND c.nonce IS NOT NULL ORDER BY c.nonce DESC LIMIT 1), 0)"
             if nonces else "NULL::bigint")
    args = f"""args AS MATERIALIZED (
      SELECT array_agg(1) a1, array_agg(1) a2, array_agg(p) a3, array_agg(NULL::text) a4,
             array_agg((random() * 9e18)::bigint) a5,
             array_agg('{{"1": [{{"item": "gold", "qty": 3, "rarity": "common"}}]}}'::jsonb) a6,
             array_agg(gen_random_uuid()) a7, array_agg(NULL::bigint) a8, array_agg({nonce}) a9,
             array_agg({"''::text" if nonces else "NULL::text"}) a10, array_agg('admin-bench'::text) a11
      FROM (SELECT ('p' || (:client_id * {share} + (o.start + g * 311) % {share}))::text AS p
            FROM (SELECT (random() * {share - 1})::int AS start) o,
                 generate_series(1, {batch}) g) g
    ),"""
    for i in range(max(int(n) for n in re.findall(r"\$(\d+)", sql)), 0, -1):
        sql = sql.replace(f"${i}", f"(SELECT a{i} FROM args)")
    sql = sql.replace("WITH req AS", "WITH " + args + "\nreq AS", 1)
    # pgbench reads `:name` as a variable: only `:client_id` is meant as one.
    return " ".join(sql.split()) + ";\n"


def setup(trove, pg, port, db):
    """A migrated shard with zone 1 (chests come from `refill`) and a ledger's statistics."""
    env = dict(os.environ, TROVE_SHARDS=f"postgres://postgres@127.0.0.1:{port}/{db}",
               TROVE_JWT_SECRET=SECRET, TROVE_RECEIPT_KEY="11" * 32, RUST_LOG="warn",
               TROVE_LISTEN=f"127.0.0.1:{free_port()}")
    subprocess.run([f"{pg}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db], check=True)
    server, base, admin = start_trove(trove, env)
    try:
        http("PUT", f"{base}/v1/loot-tables/starter", admin, {"entries": [
            {"item": "gold", "weight": 70, "min_qty": 1, "max_qty": 50, "rarity": "common"}]})
        http("POST", f"{base}/v1/zones/meadow/chests", admin, {"count": 1, "loot_table": "starter"})
    finally:
        server.terminate()
        server.wait()
    # Statistics of a ledger in use (kept when `refill` empties it), so the generic plans
    # pgbench's prepared statements settle on are the ones of a busy shard, not an empty one.
    psql(pg, port, db, f"""INSERT INTO claims (zone_id, chest_id, claim_id, player, seed_epoch,
                                               loot_table_id, loot, nonce)
        SELECT 2, g, gen_random_uuid(), 'q' || (g % {PLAYERS}), 1, 1, '[]', g / {PLAYERS}
        FROM generate_series(1, 300000) g""")
    psql(pg, port, db, "ANALYZE claims")


def refill(pg, port, db):
    """Zone 1 back to 1,000,000 unopened chests and no claims."""
    psql(pg, port, db, """
        DELETE FROM claims; DELETE FROM chests;
        INSERT INTO chests (zone_id, chest_id, loot_table_id)
            SELECT 1, g, 1 FROM generate_series(1, 1000000) g;
        UPDATE zone_counters SET opened = 0;
        UPDATE zones SET chest_count = 1000000 WHERE id = 1""")
    psql(pg, port, db, "VACUUM ANALYZE chests")


def opened(pg, port, db):
    return int(psql(pg, port, db, "SELECT sum(opened) FROM zone_counters WHERE zone_id = 1").strip())


def run(pg, port, db, script, clients, seconds, data_dir):
    bench = subprocess.Popen(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n",
                              "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
                              "-f", script, db], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    time.sleep(2)  # connected and past the first (custom) plans
    window = seconds - 4
    pids = cluster_pids(pg_postmaster(data_dir))
    c0, t0 = opened(pg, port, db), cpu_ticks(pids)
    time.sleep(window)
    t1, c1 = cpu_ticks(pids), opened(pg, port, db)
    out = bench.communicate()[0]
    tps = re.search(r"tps = ([0-9.]+)", out)
    claims = c1 - c0
    return {"claims_per_s": round(claims / window),
            "postgres_us": round((t1 - t0) / TICK * 1e6 / max(claims, 1), 1),
            "statements_per_s": round(float(tps.group(1))) if tps else None,
            "failed": "aborted" in out}


# The claim statement's parameter types, in order (`sql/claim.sql`; older versions take fewer).
TYPES = ["integer[]", "integer[]", "text[]", "text[]", "bigint[]", "jsonb[]", "uuid[]", "bigint[]",
         "bigint[]", "text[]", "text[]"]


def execute(params, batch, first):
    """One EXECUTE of the prepared claim statement: a batch of players new to the zone (so
    each draws with nonce 0 and client seed ""), as literal arrays."""
    cols = [["1"] * batch, ["1"] * batch, [f"'x{first + i}'" for i in range(batch)],
            ["NULL"] * batch, [str(random.randrange(2 ** 62)) for _ in range(batch)],
            ["'{\"1\": [{\"item\": \"gold\", \"qty\": 3, \"rarity\": \"common\"}]}'"] * batch,
            [f"'{uuid.uuid4()}'" for _ in range(batch)], ["NULL"] * batch, ["0"] * batch,
            ["''"] * batch, ["'admin:bench'"] * batch]
    arrays = [f"ARRAY[{','.join(c)}]::{t}" for c, t in zip(cols, TYPES)][:params]
    return f"EXECUTE claim({', '.join(arrays)});\n"


def instructions(pg, port, db, sql, batch, data_dir, keep=None, name="claim"):
    """Instructions per opened claim of one statement version, by callgrind (see --callgrind).
    The statement is prepared with typed parameters, as Trove's driver prepares it, so after
    its first runs it executes the generic plan a shard runs under load."""
    sql = " ".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    params = max(int(n) for n in re.findall(r"\$(\d+)", sql))
    counts = []
    for n in (10, 40):
        refill(pg, port, db)
        before = opened(pg, port, db)
        as_pg([f"{pg}/pg_ctl", "stop", "-D", data_dir, "-m", "fast"])
        out = f"{data_dir}/../callgrind.out"
        random.seed(1)
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
            f.write(f"PREPARE claim({', '.join(TYPES[:params])}) AS {' '.join(sql.split())};\n")
            # Ten runs first: past the custom plans of the first five.
            f.write("".join(execute(params, batch, e * batch) for e in range(10 + n)))
            f.flush()
            os.chmod(f.name, 0o644)
            with open(f.name) as stdin:
                subprocess.run(["runuser", "-u", "postgres", "--", "valgrind", "--tool=callgrind",
                                f"--callgrind-out-file={out}", f"{pg}/postgres", "--single",
                                "-D", data_dir, db], stdin=stdin, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start(pg, port, data_dir)
        if keep:
            shutil.copy(out, f"{keep}/{name}-{n}.out")
        with open(out) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
        counts.append((total, opened(pg, port, db) - before))
    (ir0, c0), (ir1, c1) = counts
    return round((ir1 - ir0) / max(c1 - c0, 1))


def start(pg, port, data_dir):
    as_pg([f"{pg}/pg_ctl", "start", "-D", data_dir, "-l", f"{data_dir}/../pg.log", "-w", "-o",
           f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trove")
    ap.add_argument("sql", nargs="+")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nonces", action="store_true")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--keep", help="with --callgrind: a directory to keep its outputs in")
    args = ap.parse_args()
    pg = pg_bin()
    root = tempfile.mkdtemp(prefix="trove-claim-sql-")
    os.chmod(root, 0o777)
    data_dir, port, db = f"{root}/pg", free_port(), "claims"
    as_pg([f"{pg}/initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
    start(pg, port, data_dir)
    try:
        setup(args.trove, pg, port, db)
        if args.callgrind:
            print(f"batch {args.batch}, one single-user backend under callgrind")
            print("statement | PostgreSQL instructions/claim")
            for path in args.sql:
                with open(path) as f:
                    name = os.path.splitext(os.path.basename(path))[0]
                    count = instructions(pg, port, db, f.read(), args.batch, data_dir, args.keep, name)
                    print(f"{path} | {count}", flush=True)
            return
        scripts = []
        for i, path in enumerate(args.sql):
            script = f"{root}/claim{i}.sql"
            with open(path) as f, open(script, "w") as out:
                out.write(pgbench_script(f.read(), args.batch, args.nonces, args.clients))
            scripts.append((path, script))
        print(f"batch {args.batch}, {args.clients} clients, nonces {'on' if args.nonces else 'off'}")
        print("statement | round | claims/s | statements/s | PostgreSQL µs/claim")
        for r in range(args.rounds):
            for path, script in scripts:
                refill(pg, port, db)
                res = run(pg, port, db, script, args.clients, args.seconds, data_dir)
                note = " (pgbench aborted)" if res["failed"] else ""
                print(f"{path} | {r} | {res['claims_per_s']} | {res['statements_per_s']} | "
                      f"{res['postgres_us']}{note}", flush=True)
    finally:
        as_pg([f"{pg}/pg_ctl", "stop", "-D", data_dir, "-m", "fast"])
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
