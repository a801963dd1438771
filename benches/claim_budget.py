#!/usr/bin/env python3
"""The per-claim CPU budget of one Trove build, and what Trove adds above the SQL it sends.

Each round, on one private durable PostgreSQL cluster (two shard databases, a
1,000,000-chest zone, `wrk` with 64 connections for DURATION seconds):
1. the headline storm: admin claims on behalf of 5,000 players (HS256, Redis off) — Trove's,
   PostgreSQL's (every process of the cluster) and the load tool's CPU µs per claim, claims/s,
   p50/p99, and the mean claims per claim statement (pg_stat_statements);
2. pgbench running `sql/claim.sql` itself, prepared, with batches of that mean size and as
   many clients as Trove has claim connections on the zone's shard (TROVE_CLAIM_CONCURRENCY),
   on a zone of its own of the same size: claims/s and PostgreSQL µs per claim;
3. with --players: the same storm with each player's own token, Redis on (rate limits on).
The ratio Trove / pgbench is Trove's throughput over what its statements alone reach.

With several builds, each round runs them in turn (each its storm, then its pgbench), so
builds compare in the same minutes of a host whose speed drifts.

Usage: benches/claim_budget.py TROVE_BIN [TROVE_BIN ...] [--rounds 3] [--duration 10] [--players]
       [--redis redis://127.0.0.1:6379] [--profile DIR]
Needs: wrk, pgbench, PostgreSQL's server binaries; run as root (the cluster runs as postgres).
"""

import argparse
import os
import shutil
import tempfile

import claim_cpu
import claim_sql
from claim_cpu import as_pg, pg_bin, psql, free_port

# TROVE_CLAIM_CONCURRENCY's default: the claim connections Trove has on the shard that holds
# the storm's one zone (the other shard's pool sits idle), so pgbench gets the same cap.
CLAIM_CONNECTIONS = 2


def pgbench_round(trove, pg, port, data_dir, batch, duration, run):
    """pgbench with the claim statement at `batch` claims a statement, on a database of its
    own like each storm's: a ledger reused from an earlier round holds that round's dead rows
    and index entries, which made PostgreSQL's side ~25 % dearer there than in round 0 and
    flattered the ratio."""
    db = f"budget_sql_{run}"
    claim_sql.setup(trove, pg, port, db)
    root = os.path.dirname(data_dir)
    script = f"{root}/claim-{batch}.sql"
    with open(os.path.join(os.path.dirname(__file__), "..", "sql", "claim.sql")) as f, \
            open(script, "w") as out:
        out.write(claim_sql.pgbench_script(f.read(), batch, True, CLAIM_CONNECTIONS))
    os.chmod(script, 0o644)
    claim_sql.refill(pg, port, db)
    return claim_sql.run(pg, port, db, script, CLAIM_CONNECTIONS, duration + 4, data_dir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trove", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--players", action="store_true",
                    help="also a storm of players' own tokens, Redis on")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--profile", help="record perf profiles of the headline storms here")
    args = ap.parse_args()
    pg = pg_bin()
    root = tempfile.mkdtemp(prefix="trove-claim-budget-")
    os.chmod(root, 0o777)
    data_dir = f"{root}/pg"
    claim_cpu.pg_data_dir = data_dir
    port = free_port()
    as_pg([f"{pg}/initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
           "--locale=C"])
    as_pg([f"{pg}/pg_ctl", "start", "-D", data_dir, "-l", f"{root}/pg.log", "-w", "-o",
           f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
           "-c max_connections=200 -c shared_preload_libraries=pg_stat_statements"])
    psql(pg, port, "postgres", "CREATE EXTENSION pg_stat_statements")
    rows = []
    try:
        for r in range(args.rounds):
            for b, trove in enumerate(args.trove):
                storm = claim_cpu.run_once(trove, pg, port, f"h{r}b{b}", args.duration,
                                           args.profile, statements=True)
                batch = max(1, round(storm["batch"] or 1))
                sql = pgbench_round(trove, pg, port, data_dir, batch, args.duration, f"{r}b{b}")
                row = {"round": r if len(args.trove) == 1 else f"{r} {trove}", "storm": storm,
                       "sql": sql, "batch": batch}
                if args.players:
                    row["players"] = claim_cpu.run_once(trove, pg, port, f"p{r}b{b}",
                                                        args.duration, statements=True,
                                                        players=True, redis=args.redis)
                rows.append(row)
                print_row(row, flush=True)
        summary(rows)
    finally:
        as_pg([f"{pg}/pg_ctl", "stop", "-D", data_dir, "-m", "fast"])
        shutil.rmtree(root, ignore_errors=True)


def print_row(row, flush=False):
    s, q = row["storm"], row["sql"]
    ratio = s["claims_per_s"] / max(q["claims_per_s"], 1)
    print(f"round {row['round']}: admin storm {s['claims_per_s']} claims/s, p50 {s['p50']} p99 "
          f"{s['p99']}, {s['batch']} claims/statement, non-2xx {s['non2xx']}", flush=flush)
    print(f"  CPU µs/claim: Trove {s['trove_us']}, PostgreSQL {s['postgres_us']}, load tool "
          f"{s['load_us']}", flush=flush)
    print(f"  a claim's time: {s['wait_ms']} ms waiting for its statement, the statement "
          f"{s['statement_ms']} ms (PostgreSQL's executor {s['exec_ms']} ms of it)", flush=flush)
    print(f"  pgbench, batches of {row['batch']}, {CLAIM_CONNECTIONS} clients: "
          f"{q['claims_per_s']} claims/s ({pgbench_statement_ms(row)} ms a statement), "
          f"PostgreSQL {q['postgres_us']} µs/claim"
          f"{' (aborted)' if q['failed'] else ''}; Trove / pgbench = {ratio:.2f}x", flush=flush)
    if "players" in row:
        p = row["players"]
        print(f"  player tokens, Redis on: {p['claims_per_s']} claims/s, Trove {p['trove_us']}, "
              f"PostgreSQL {p['postgres_us']}, load tool {p['load_us']} µs/claim, p99 "
              f"{p['p99']}, {p['batch']} claims/statement, non-2xx {p['non2xx']}", flush=flush)


def summary(rows):
    print("\nper-claim CPU budget (µs; budget: Trove 25, PostgreSQL 45)")
    print("round | claims/s | Trove | PostgreSQL | load tool | claims/stmt | wait ms | "
          "statement ms | executor ms | p99 | pgbench claims/s | pgbench PG µs | "
          "pgbench statement ms | Trove/pgbench")
    for row in rows:
        s, q = row["storm"], row["sql"]
        print(f"{row['round']} | {s['claims_per_s']} | {s['trove_us']} | {s['postgres_us']} | "
              f"{s['load_us']} | {s['batch']} | {s['wait_ms']} | {s['statement_ms']} | "
              f"{s['exec_ms']} | {s['p99']} | {q['claims_per_s']} | "
              f"{q['postgres_us']} | {pgbench_statement_ms(row)} | "
              f"{s['claims_per_s'] / max(q['claims_per_s'], 1):.2f}x")


def pgbench_statement_ms(row):
    """How long one of pgbench's statements took, commit and round trip included: each of
    its clients runs one after another."""
    return round(1000 * CLAIM_CONNECTIONS * row["batch"] / max(row["sql"]["claims_per_s"], 1), 2)


if __name__ == "__main__":
    main()
