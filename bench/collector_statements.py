"""Where the writer's server time goes, statement by statement (issue 5's bound).

Runs the collector's ``Writer`` in a direct loop (no broker: validated 100-reading messages of
100 devices, as ``bench_collector.py`` makes them, ``--batch`` messages a transaction, rollups
deferred and calibration owed, as the collector runs under load) against a private
PostgreSQL with ``pg_stat_statements`` loaded, and prints per round the client's CPU and wall
time per reading and each statement's execution time per reading (the COPY's includes the time
the client takes to stream it). docs/benchmarks.md, "Session 18", quotes a run.

    python bench/collector_statements.py [--readings 200000] [--rounds 3] [--batch 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from collector_procs import workload

from luftnett.collector.validate import validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts.mqtt import readings_topic
from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedPostgres


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=500, help="messages per transaction")
    ap.add_argument("--top", type=int, default=12, help="statements to print per round")
    args = ap.parse_args()

    w = workload("batch100", args.readings, 100)
    t = time.process_time()
    items = [
        validate_message("bench", readings_topic("bench", d), p.encode()) for d, p in w.messages
    ]
    print(f"validation: {1e6 * (time.process_time() - t) / w.readings:.2f} µs CPU per reading")
    base = Path(tempfile.mkdtemp(prefix="luftnett-stmts-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    pg = EmbeddedPostgres(base)
    pg.init()
    with (pg.datadir / "postgresql.conf").open("a") as f:
        f.write("shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n")
    pg.start()
    try:
        with psycopg.connect(pg.url) as conn:
            apply_migrations(conn)
        admin = pg.url.rsplit("/", 1)[0] + "/postgres"
        run_url = pg.url.rsplit("/", 1)[0] + "/run"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for rnd in range(args.rounds):
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute("DROP DATABASE IF EXISTS run WITH (FORCE)")
                c.execute("CREATE DATABASE run TEMPLATE luftnett")
                c.execute("SELECT pg_stat_statements_reset()")
            with psycopg.connect(run_url) as conn:
                writer = Writer(conn, deferred=True, calibration="deferred")
                cpu, wall = time.process_time(), time.time()
                for i in range(0, len(items), args.batch):
                    writer.write(items[i : i + args.batch])
                cpu, wall = time.process_time() - cpu, time.time() - wall
            print(
                f"round {rnd + 1}: client {1e6 * cpu / w.readings:.2f} µs CPU, wall "
                f"{1e6 * wall / w.readings:.2f} µs per reading"
            )
            with psycopg.connect(admin, autocommit=True) as c:
                rows = c.execute(
                    "SELECT total_exec_time, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), "
                    "90) FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%' "
                    "ORDER BY 1 DESC LIMIT %s",
                    (args.top,),
                ).fetchall()
            for ms, calls, q in rows:
                print(f"  {1e3 * ms / w.readings:6.3f} µs/reading {calls:6d} calls  {q}")
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
