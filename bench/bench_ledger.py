"""The completeness ledger of a fleet: one query for every device and day, against the
per-device queries it replaced.

Fills a private PostgreSQL through the collector's ``Writer`` with ``--devices`` devices
reporting every minute for ``--days`` days (hour-long messages; about 1 % of seqs never sent,
one message in 50 delivered twice, one in 40 late), then times, best of ``--repeats``:

- the fleet's ledger of one day (``luftnett ledger``, ``GET /ledger`` without a device);
- one device's last 7 days (the dashboard's panel);
- one device's day.

``current`` is :func:`luftnett.collector.ledger.ledger`; ``per-device`` is the implementation
it replaced (commit 492f73f, loaded from git: two queries per device and day, the day's keys
summed up in Python). Both must give the same entries. Results are quoted in
docs/benchmarks.md ("Completeness ledger").
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from collector_procs import servers

from luftnett.collector import ledger as current
from luftnett.collector.rollups import DayConvention, day_bounds
from luftnett.collector.validate import validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as c

BASELINE_COMMIT = "492f73f"
ROOT = Path(__file__).resolve().parent.parent


def _baseline() -> Any:
    """The ledger module as of :data:`BASELINE_COMMIT`, loaded from git under another name."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BASELINE_COMMIT}:collector/ledger.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="ledger-baseline-")) / "ledger_baseline.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("ledger_baseline", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def fill(conn: psycopg.Connection[Any], devices: int, days: int, last: dt.date) -> int:
    """Minute readings of every device over the ``days`` Oslo days ending with ``last``."""
    rnd = random.Random(1)
    start, _ = day_bounds(last - dt.timedelta(days=days - 1), DayConvention.DISPLAY)
    w = Writer(conn, calibration="deferred", deferred=True)
    hours = 24 * days
    stored = 0
    t0 = time.perf_counter()
    for h in range(hours):
        items = []
        for d in range(devices):
            dev = f"dev-{d:04d}"
            readings = [
                c.Reading(
                    seq=h * 60 + m,
                    ts=start + dt.timedelta(hours=h, minutes=m),
                    window_s=60,
                    n_samples=60,
                    values={"pm25_ugm3": round(rnd.uniform(3, 30), 1)},
                )
                for m in range(60)
                if rnd.random() > 0.01
            ]
            payload = c.ReadingsPayload(
                device_id=dev,
                agent_version="bench",
                sensor=c.SensorInfo(model="sds011"),
                readings=readings,
            )
            item = validate_message("b", c.readings_topic("b", dev), c.encode(payload))
            items.append(item)
            if rnd.random() < 1 / 50:
                items.append(item)  # delivered twice
        stored += w.write(items).stored
        conn.commit()
        if (h + 1) % 6 == 0:
            rate = stored / (time.perf_counter() - t0)
            print(f"  filled {h + 1}/{hours} hours, {stored:,} readings ({rate:,.0f}/s)")
    conn.execute(  # one message in 40 received an hour and a half late
        "UPDATE readings SET received_at = ts + interval '90 minutes' "
        "WHERE (seq / 60 + hashtext(device_id)) % 40 = 0"
    )
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    return stored


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--days", type=int, default=2, help="days of minute readings stored")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--explain", action="store_true", help="print the fleet query's plan too")
    args = ap.parse_args(argv)
    old = _baseline()
    last = dt.date(2026, 11, 20)
    with servers(None) as env, psycopg.connect(env.fresh_db(), autocommit=True) as conn:
        conn.autocommit = False
        print(f"filling {args.devices} devices x {args.days} days of minute readings ...")
        stored = fill(conn, args.devices, args.days, last)
        one = "dev-0007"
        week = [last - dt.timedelta(days=i) for i in range(6, -1, -1)]
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            (
                f"fleet, one day ({args.devices} devices)",
                lambda: current.ledger(conn, last),
                lambda: old.ledger(conn, last),
            ),
            (
                "one device, 7 days",
                lambda: current.ledger(conn, last, one, days=7),
                lambda: [old.ledger_day(conn, one, d) for d in week],
            ),
            (
                "one device, one day",
                lambda: current.ledger(conn, last, one),
                lambda: [old.ledger_day(conn, one, last)],
            ),
        ]
        when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        print(f"\n{stored:,} readings stored; {platform.node()}, {when}")
        print("| ledger of | current (s) | per-device (s) | per-device / current |")
        print("|---|---:|---:|---:|")
        for name, new_fn, old_fn in cases:
            t_new, got = best(new_fn, args.repeats)
            t_old, want = best(old_fn, args.repeats)
            assert [e.as_dict() for e in got] == [e.as_dict() for e in want], name
            print(f"| {name} | {t_new:.3f} | {t_old:.3f} | {t_old / t_new:.1f} |")
        if args.explain:  # as ledger() runs it: JIT off
            params = current.ledger_params(
                last, last, None, DayConvention.DISPLAY, current.DEFAULT_LATE_AFTER
            )
            with conn.transaction():
                conn.execute("SET LOCAL jit = off")
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + current.LEDGER_SQL, params)
                for (line,) in plan.fetchall():
                    print(line)
        missing = sum(e.missing for e in got)
        print(
            f"\n(one device's day: {got[0].stored} stored, {missing} missing: the same both ways)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
