"""Benchmark the SensorThings facade: a page of 1,000 Observations of one Datastream.

    python bench/bench_sensorthings.py --pg-dir /tmp/luftnett-bench10b-pg --load-only
    python bench/bench_sensorthings.py --pg-dir /tmp/luftnett-bench10b-pg   # measure, write

1. Loads ``devices`` x one year of ``interval-min`` readings with bench/bench_api.py's
   ``load`` (imported, not copied: server-side ``generate_series``, index built after,
   ``rollup_hourly`` filled) into a private PostgreSQL (``--pg-dir`` keeps it for a later run).
2. Starts the API (bench_api's ``serve``) and measures p50/p95 over HTTP, in the same run, of
   - ``/sta/v1.1/Datastreams('<device>:pm25_ugm3:raw')/Observations`` with
     ``$filter=phenomenonTime ge T0 and phenomenonTime lt T1``, ``$top=1000`` (random device,
     random T0 in the year, T1 = T0 + 2 days, so the page is full);
   - the same rows from the plain API, ``/api/v1/devices/<device>/readings?start&end&limit=1000``;
   - a deep page: following the ``@iot.nextLink`` (keyset) 100 pages in, against ``$skip``.
   Target: p95 < 100 ms for the page of 1,000.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import load, serve
from quiet import bench_database, exclusive, write_section

from luftnett.db.migrate import apply_migrations
from luftnett.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
YEAR = 2025
STA = "/sta/v1.1"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _window(rng: random.Random) -> tuple[dt.datetime, dt.datetime]:
    t0 = dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(360 * 1440))
    return t0, t0 + dt.timedelta(days=2)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def measure(base: str, devices: int, reps: int) -> dict[str, tuple[float, float, int]]:
    """name -> (p50 ms, p95 ms, items in the last response)."""
    rng = random.Random(7)
    out: dict[str, tuple[float, float, int]] = {}
    with httpx.Client(base_url=base, timeout=300) as c:

        def sta(dev: str, t0: dt.datetime, t1: dt.datetime) -> httpx.Response:
            return c.get(
                f"{STA}/Datastreams('{dev}:pm25_ugm3:raw')/Observations",
                params={
                    "$filter": f"phenomenonTime ge {_iso(t0)} and phenomenonTime lt {_iso(t1)}",
                    "$top": "1000",
                },
            )

        def plain(dev: str, t0: dt.datetime, t1: dt.datetime) -> httpx.Response:
            return c.get(
                f"/api/v1/devices/{dev}/readings",
                params={"start": _iso(t0), "end": _iso(t1), "limit": "1000"},
            )

        def items(r: httpx.Response) -> int:
            body = r.raise_for_status().json()
            return len(body["value"]) if "value" in body else int(body["count"])

        cases = {
            "SensorThings: 1,000 Observations of one Datastream, $filter on phenomenonTime": sta,
            "plain API: /api/v1/devices/{id}/readings, limit 1000": plain,
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        last: dict[str, int] = {}
        for k in range(reps + 3):  # interleaved, so both see the same machine
            dev = f"bench-{rng.randrange(devices):03d}"
            t0, t1 = _window(rng)
            order = list(cases.items())
            if k % 2:  # who reads the window first reads it from disk: take turns
                order.reverse()
            for name, fn in order:
                t = time.perf_counter()
                r = fn(dev, t0, t1)  # the whole body received; decoded after the clock
                if k >= 3:  # warm-up
                    times[name].append((time.perf_counter() - t) * 1000)
                last[name] = items(r)
        for name in cases:
            out[name] = (statistics.median(times[name]), _pct(times[name], 95), last[name])

        # deep pages: the 101st page of 1,000 through nextLink (keyset) vs $skip
        deep_next: list[float] = []
        deep_skip: list[float] = []
        n_next = n_skip = 0
        for _ in range(max(5, reps // 12)):
            dev = f"bench-{rng.randrange(devices):03d}"
            url = f"{STA}/Datastreams('{dev}:pm25_ugm3:raw')/Observations?$top=1000"
            for _page in range(100):
                url = c.get(url).raise_for_status().json()["@iot.nextLink"]
            t = time.perf_counter()
            r = c.get(url)
            deep_next.append((time.perf_counter() - t) * 1000)
            n_next = items(r)
            t = time.perf_counter()
            r = c.get(
                f"{STA}/Datastreams('{dev}:pm25_ugm3:raw')/Observations",
                params={"$top": "1000", "$skip": "100000"},
            )
            deep_skip.append((time.perf_counter() - t) * 1000)
            n_skip = items(r)
        out["page 101 of 1,000 via @iot.nextLink (keyset)"] = (
            statistics.median(deep_next),
            _pct(deep_next, 95),
            n_next,
        )
        out["page 101 of 1,000 via $skip=100000 (OFFSET)"] = (
            statistics.median(deep_skip),
            _pct(deep_skip, 95),
            n_skip,
        )
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--interval-min", type=int, default=1)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--pg-dir", type=Path, help="keep the private PostgreSQL here, running")
    ap.add_argument("--load-only", action="store_true", help="load the data, measure nothing")
    ap.add_argument("--load-note", help="how reused data were loaded, for the report")
    a = ap.parse_args(argv)
    url, server, stop = bench_database(a.pg_dir, "luftnett-bench-sta-")
    pg = server if stop else None  # with --pg-dir it stays running for the next run
    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    t = time.perf_counter()
    n_rows, load_steps = load(url, a.devices, a.interval_min)
    load_s = time.perf_counter() - t
    print(f"loaded {n_rows:,} rows in {load_s:.0f} s {load_steps}", file=sys.stderr)
    if a.load_only:
        return 0
    port = free_port()
    api = serve(url, port)
    load_start = os.getloadavg()[0]
    try:
        with exclusive("sensorthings latency") as waited:
            load_timed = os.getloadavg()[0]
            res = measure(f"http://127.0.0.1:{port}", a.devices, a.reps)
            load_end = os.getloadavg()[0]
    finally:
        api.terminate()
        api.wait(10)
        if pg is not None:
            pg.stop()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    per_dev = 365 * 24 * 60 // a.interval_min
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in load_steps.items())
    names = list(res)
    lines = [
        "## SensorThings API (bench/bench_sensorthings.py)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, shared with other "
        f"sessions; timed part inside bench/quiet.py's exclusive() (waited {waited:.0f} s); "
        f"load average at start {load_start:.1f}, when timing began {load_timed:.1f}, at its "
        f"end {load_end:.1f}",
        f"- data: {a.devices} devices x 1 year of {a.interval_min}-minute readings = "
        f"{n_rows:,} rows ({per_dev:,} per device, i.e. per Datastream); PostgreSQL without "
        "TimescaleDB; "
        + (
            f"loaded by bench_api.load in {load_s:.0f} s ({steps})"
            if load_steps
            else (a.load_note or "reused from an earlier run of this script (--pg-dir)")
        ),
        f"- {a.reps} requests per case after 3 warm-up ones, random device and 2-day window "
        "(2,880 readings, so every page is full), the two first cases interleaved (taking turns "
        "to go first); time from "
        "sending the request to the whole body received (httpx, keep-alive), the client's JSON "
        "decoding left out",
        "",
        "| request | items | p50 ms | p95 ms | target p95 |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, name in enumerate(names):
        p50, p95, n = res[name]
        target = "< 100" if i == 0 else "–"
        lines.append(f"| {name} | {n:,} | {p50:.0f} | {p95:.0f} | {target} |")
    sta50, sta95, _ = res[names[0]]
    pl50, pl95, _ = res[names[1]]
    kn50 = res[names[2]][0]
    sk50 = res[names[3]][0]
    lines += [
        "",
        f"Same-run ratios: SensorThings / plain readings endpoint p50 {sta50 / pl50:.2f}x, "
        f"p95 {sta95 / pl95:.2f}x; deep page $skip / nextLink (keyset) p50 {sk50 / kn50:.1f}x. "
        f"Target p95 < 100 ms for a page of 1,000: **{'met' if sta95 < 100 else 'NOT met'}** "
        f"in this run ({sta95:.0f} ms).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.no_write:
        write_section("bench_sensorthings", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
