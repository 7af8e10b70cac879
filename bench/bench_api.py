"""Benchmark the API: series latency and export throughput on a loaded database.

    python bench/bench_api.py                       # 100 devices x 1 year of 5-min data
    python bench/bench_api.py --interval-min 1      # the issue's 1-minute data (52 M rows)
    python bench/bench_api.py --no-write            # print only

1. Loads ``devices`` x one year of readings (server-side ``generate_series``) into a private
   PostgreSQL (or ``LUFTNETT_BENCH_DATABASE_URL``), then fills ``rollup_hourly`` for it in one
   set-based statement with the collector's definitions (what ``luftnett rollup refresh``
   leaves, without annotations), and ``rollup_daily`` (with its ``rollup_daily_means``) from
   it with the collector's statement; the API serves series from the rollups when they cover
   the range and from ``readings`` otherwise.
2. Starts ``luftnett api`` (uvicorn) in a subprocess and measures p50/p95 of a 30-day hourly
   series and of a year of daily means for one device (random device each call); targets
   p95 < 50 ms and < 100 ms. The same from raw ``readings`` (rollups hidden) for comparison.
3. Streams one year x ``export_devices`` devices as wide CSV, counts rows, and reads the
   server's peak RSS (VmHWM); targets >= 300,000 rows/s and < 300 MB. The first export runs
   right after the cold start (PostgreSQL restarted, OS page cache dropped).
4. With ``--calibrated-devices N``: installs the fleet defaults and fills calibrated values
   for the last N devices with the calibration job code (outside the timed parts; this
   WRITES to the database, so run it on a copy of a shared data directory), then exports
   them warm as wide CSV against the same number of uncalibrated devices.
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
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quiet import bench_database, exclusive, write_section

from luftnett.db.migrate import apply_migrations
from luftnett.db.schema import VALUE_COLUMNS
from luftnett.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
YEAR = 2025

_LOAD = """
INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, pm25_ugm3,
                      pm10_ugm3, no2_ppb, temperature_c, rh_pct, flags, schema_version)
SELECT 'bench-' || lpad(d::text, 3, '0'), i, %(t0)s::timestamptz + i * %(step)s::interval, %(w)s,
       60, 'sds011', 8 + 6 * sin(i / 97.0) + random() * 3, 14 + 9 * sin(i / 97.0) + random() * 5,
       12 + 8 * sin(i / 53.0) + random() * 4, 5 + 10 * sin(i / 5000.0), 60 + random() * 30,
       CASE WHEN random() < 0.01 THEN 8 ELSE 0 END, 1
FROM generate_series(%(d0)s::int, %(d1)s::int - 1) AS d, generate_series(0, %(n)s - 1) AS i
"""

_ROLLUP = """
INSERT INTO rollup_hourly (device_id, hour_start, window_s, n_expected, n_stored, n_valid, {cols})
SELECT device_id, date_trunc('hour', ts, 'UTC'), min(window_s),
       greatest(1, round(3600 / min(window_s)::numeric))::int, count(*),
       count(*) FILTER (WHERE flags & %(mask)s = 0), {stats}
FROM readings WHERE device_id = %(d)s GROUP BY 1, 2
"""

HOURLY = "30-day hourly series (PM2.5)"
DAILY = "1 year of daily means (PM2.5)"

_INDEX = "CREATE INDEX readings_device_ts_idx ON readings (device_id, ts DESC)"


def load(url: str, devices: int, interval_min: int) -> tuple[int, dict[str, float]]:
    """Fill ``readings`` and ``rollup_hourly``; return (rows, seconds per step).

    Fast path for a benchmark: the table is UNLOGGED and its index dropped while
    ``generate_series`` fills it in a few set-based statements, then the index is built once
    and the table made LOGGED again (one sequential rewrite), so the measured database is an
    ordinary one.
    """
    from luftnett.contracts.units import INVALIDATING_FLAGS

    n = 365 * 24 * 60 // interval_min
    steps: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        (have,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
        if have == devices * n:
            print(f"reusing {have} readings", file=sys.stderr)
            (days,) = conn.execute("SELECT count(*) FROM rollup_daily").fetchone() or (0,)
            if not days:  # data loaded before this script filled the daily rollups
                t = time.perf_counter()
                fill_daily(conn, devices)
                steps["rollup_daily"] = time.perf_counter() - t
            return int(have), steps
        conn.execute("TRUNCATE readings, rollup_hourly, deployments, devices, sites CASCADE")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET jit = off")
        with conn.transaction():
            for i in range(devices):
                d = f"bench-{i:03d}"
                conn.execute(
                    "INSERT INTO sites (site_id, name, site_type, lat, lon) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (f"s-{i:03d}", f"Site {i}", "traffic", 59.7 + i * 1e-3, 10.2 + i * 1e-3),
                )
                conn.execute(
                    "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (d,)
                )
                conn.execute(
                    "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
                    (f"s-{i:03d}", d, dt.datetime(YEAR - 1, 1, 1, tzinfo=dt.UTC)),
                )
        conn.execute("DROP INDEX IF EXISTS readings_device_ts_idx")
        conn.execute("ALTER TABLE readings SET UNLOGGED")
        t = time.perf_counter()
        for d0 in range(0, devices, 10):
            conn.execute(
                _LOAD,
                {
                    "d0": d0,
                    "d1": min(devices, d0 + 10),
                    "t0": dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC),
                    "n": n,
                    "step": f"{interval_min} minutes",
                    "w": interval_min * 60.0,
                },
            )
            print(f"loaded devices {d0}..{min(devices, d0 + 10) - 1}", file=sys.stderr)
        steps["insert"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(_INDEX)
        steps["index"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute("ALTER TABLE readings SET LOGGED")
        steps["set logged"] = time.perf_counter() - t
        t = time.perf_counter()
        cols = ", ".join(f"{q}_{s}" for q in VALUE_COLUMNS for s in ("n", "sum", "min", "max"))
        ok = "FILTER (WHERE flags & %(mask)s = 0)"
        stats = ", ".join(
            f"count({q}) {ok}, sum({q}::numeric) {ok}, min({q}) {ok}, max({q}) {ok}"
            for q in VALUE_COLUMNS
        )
        for i in range(devices):
            conn.execute(
                _ROLLUP.format(cols=cols, stats=stats),
                {"mask": int(INVALIDATING_FLAGS), "d": f"bench-{i:03d}"},
            )
        steps["rollup_hourly"] = time.perf_counter() - t
        t = time.perf_counter()
        fill_daily(conn, devices)
        steps["rollup_daily"] = time.perf_counter() - t
        print(f"rollups done {steps}", file=sys.stderr)
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        steps["vacuum analyze"] = time.perf_counter() - t
    return devices * n, steps


def fill_daily(conn: psycopg.Connection[Any], devices: int) -> None:
    """rollup_daily (and with it rollup_daily_means, kept by its triggers) from rollup_hourly,
    with the collector's own statement, both day conventions."""
    from luftnett.collector.rollups import DayConvention, day_of, refresh_days

    for i in range(devices):
        d = f"bench-{i:03d}"
        hours = conn.execute(
            "SELECT hour_start FROM rollup_hourly WHERE device_id = %s", (d,)
        ).fetchall()
        with conn.transaction():
            refresh_days(conn, {(d, day_of(h, c), c) for (h,) in hours for c in DayConvention})
        if i % 10 == 9:
            print(f"rollup_daily: {i + 1} devices", file=sys.stderr)


def fill_calibrated(url: str, devices: list[str]) -> float:
    """Calibrated values for ``devices`` with the calibration job code: the fleet defaults
    installed and activated (sds011: PM2.5 and PM10), then each device's history reprocessed
    (``reprocess``, what ``luftnett calibrate jobs run`` does per part). Devices that already
    have calibrated values are skipped; returns the seconds spent."""
    from luftnett.calibration.apply_db import ensure_fleet_defaults, reprocess

    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        with conn.transaction():
            ensure_fleet_defaults(conn)
        for d in devices:
            have = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM calibrated_values WHERE device_id = %s)", (d,)
            ).fetchone()
            conn.commit()
            if have and have[0]:
                continue
            res = reprocess(conn, d)
            print(f"calibrated {d}: {res.values:,} values", file=sys.stderr)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE calibrated_values")
    return time.perf_counter() - t


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def latency(
    base: str, devices: int, reps: int, warmup: int = 3, seed: int = 1
) -> dict[str, tuple[float, float, str, float]]:
    """(p50, p95, computed_from, max) in ms of each series over ``reps`` requests, each for a
    random device, after ``warmup`` requests that are not counted (0: every request counts,
    the first ones after a cold start included)."""
    rng = random.Random(seed)
    out = {}
    with httpx.Client(base_url=base, timeout=300) as c:
        cases = {
            HOURLY: ("hourly", f"{YEAR}-06-01", f"{YEAR}-06-30"),
            DAILY: ("daily", f"{YEAR}-01-01", f"{YEAR}-12-31"),
        }
        for name, (period, a, b) in cases.items():
            times = []
            src = ""
            for k in range(reps + warmup):
                d = f"bench-{rng.randrange(devices):03d}"
                t = time.perf_counter()
                r = c.get(
                    f"/api/v1/devices/{d}/aggregates/{period}",
                    params={"quantity": "pm25_ugm3", "start": a, "end": b},
                )
                r.raise_for_status()
                if k >= warmup:
                    times.append((time.perf_counter() - t) * 1000)
                src = r.json()["computed_from"]
            out[name] = (statistics.median(times), _pct(times, 95), src, max(times))
    return out


def drop_caches() -> bool:
    """Empty the OS page cache (root only); False when this machine does not allow it."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export(base: str, n_devices: int, fmt: str = "csv", first: int = 0) -> tuple[int, float, int]:
    """(rows, seconds, bytes) of one year x ``n_devices`` (from bench-``first`` on) as wide CSV
    (rows counted by line) or Parquet (rows read back from the file's footer)."""
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("device", f"bench-{i:03d}") for i in range(first, first + n_devices)
    ]
    params += [("start", f"{YEAR}-01-01T00:00:00Z"), ("end", f"{YEAR + 1}-01-01T00:00:00Z")]
    rows = nbytes = 0
    t = time.perf_counter()
    with (
        tempfile.TemporaryFile() as fh,
        httpx.stream(
            "GET", f"{base}/api/v1/downloads/readings.{fmt}", params=params, timeout=None
        ) as r,
    ):
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 20):
            nbytes += len(chunk)
            if fmt == "csv":
                rows += chunk.count(b"\n")
            else:
                fh.write(chunk)
        secs = time.perf_counter() - t
        if fmt == "csv":
            rows -= 1  # header
        else:
            import pyarrow.parquet as pq  # type: ignore[import-untyped]

            fh.seek(0)
            rows = pq.ParquetFile(fh).metadata.num_rows
    return rows, secs, nbytes


def pg_copy_rate(url: str, n_devices: int) -> tuple[int, float]:
    """Rows/s of PostgreSQL alone: the wide CSV's COPY of ``n_devices`` to /dev/null on the
    server (no client, no API) - the ceiling the API's export is compared with."""
    from luftnett.api import export as ex

    cols = ex.columns("wide", False, 1.9125)
    query = ex.select("wide", cols, False, False, False)
    rows = 0
    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET DateStyle = 'ISO, YMD'")
        conn.execute("SET TIME ZONE 'UTC'")
        cur = psycopg.ClientCursor(conn)
        for i in range(n_devices):
            params = {
                "device": f"bench-{i:03d}",
                "site": f"s-{i:03d}",
                "start": dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC),
                "end": dt.datetime(YEAR + 1, 1, 1, tzinfo=dt.UTC),
                "ann": 0,
            }
            cur.execute(
                psycopg.sql.SQL("COPY ({}) TO '/dev/null' WITH (FORMAT csv)").format(query),
                params,
            )
            rows += cur.rowcount
    return rows, time.perf_counter() - t


def in_process(url: str, devices: int, reps: int) -> dict[str, tuple[float, float, str]]:
    """p50/p95 of the same series computed in-process by ``aggregate_json`` (SQL and the
    little Python around it, no HTTP, no FastAPI), and the daily series once more without
    the daily rollup (from rollup_hourly, as before migration 0040)."""
    import asyncio

    from psycopg.rows import dict_row

    from luftnett.api.queries import Scope, aggregate_json

    async def run() -> dict[str, tuple[float, float, str]]:
        rng = random.Random(2)
        out = {}
        async with await psycopg.AsyncConnection.connect(
            url, autocommit=True, row_factory=dict_row
        ) as conn:
            await conn.execute("SET TIME ZONE 'UTC'")
            await conn.execute("SET jit = off")
            cases: dict[str, tuple[Any, Any, Any, bool]] = {
                HOURLY: (
                    "hour",
                    dt.datetime(YEAR, 6, 1, tzinfo=dt.UTC),
                    dt.datetime(YEAR, 6, 30, 23, tzinfo=dt.UTC),
                    True,
                ),
                DAILY: ("day", dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31), True),
                DAILY + " without the daily rollup": (
                    "day",
                    dt.date(YEAR, 1, 1),
                    dt.date(YEAR, 12, 31),
                    False,
                ),
            }
            for name, (period, a, b, daily) in cases.items():
                times = []
                src = ""
                for k in range(reps + 3):
                    scope = Scope(devices=(f"bench-{rng.randrange(devices):03d}",))
                    t = time.perf_counter()
                    agg = await aggregate_json(
                        conn, scope, ["pm25_ugm3"], period, "Europe/Oslo", a, b, daily_rollup=daily
                    )
                    if k >= 3:
                        times.append((time.perf_counter() - t) * 1000)
                    src = agg.computed_from
                out[name] = (statistics.median(times), _pct(times, 95), src)
        return out

    return asyncio.run(run())


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys, uvicorn\n"
        "from luftnett.api.app import create_app\n"
        "from luftnett.settings import Settings\n"
        "u = sys.argv[1]\n"
        "uvicorn.run(create_app(Settings(database_url=u), u), host='127.0.0.1', "
        "port=int(sys.argv[2]), log_level='warning')\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, url, str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).raise_for_status()
            return p
        except httpx.HTTPError:
            time.sleep(0.2)
    p.kill()
    raise SystemExit("API did not start")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--interval-min", type=int, default=5)
    ap.add_argument("--export-devices", type=int, default=50)
    ap.add_argument(
        "--pg-devices", type=int, default=5, help="devices of the PostgreSQL-alone COPY"
    )
    ap.add_argument(
        "--parquet-devices",
        type=int,
        nargs="+",
        default=[10, 50],
        help="Parquet downloads, one after the other in the same server (peak RSS after each)",
    )
    ap.add_argument(
        "--calibrated-devices",
        type=int,
        default=0,
        help="calibrate the last N devices (writes to the database: use a copy of shared "
        "data) and compare their export with N uncalibrated ones (default 0: skipped)",
    )
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--pg-dir",
        type=Path,
        help="keep the private PostgreSQL in this directory and leave it running, so a later "
        "run reuses the loaded data (default: a temporary one, stopped at the end)",
    )
    ap.add_argument("--load-only", action="store_true", help="load the data, measure nothing")
    ap.add_argument("--load-note", help="how the reused data were loaded, for the report")
    ap.add_argument(
        "--no-cold",
        action="store_true",
        help="skip the cold start (PostgreSQL restarted, OS page cache dropped, API started)",
    )
    a = ap.parse_args(argv)
    url, pg_handle, stop = bench_database(a.pg_dir, "luftnett-bench-api-")
    pg = pg_handle if stop else None  # with --pg-dir it stays running for the next run
    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    t = time.perf_counter()
    n_rows, load_steps = load(url, a.devices, a.interval_min)
    load_s = time.perf_counter() - t
    print(f"loaded {n_rows:,} rows in {load_s:.0f} s {load_steps}", file=sys.stderr)
    if a.load_only:
        return 0
    n_cal = a.calibrated_devices
    cal_fill = (
        fill_calibrated(url, [f"bench-{i:03d}" for i in range(a.devices - n_cal, a.devices)])
        if n_cal
        else 0.0
    )
    port = free_port()
    load_start = os.getloadavg()[0]
    waited = 0.0
    cold: dict[str, tuple[float, float, str, float]] = {}
    cold_note = "none (--no-cold, or a database given by LUFTNETT_BENCH_DATABASE_URL)"
    server = None
    try:
        if not a.no_cold and pg_handle is not None:
            with exclusive("api cold start") as w:
                waited += w
                pg_handle.stop()
                dropped = drop_caches()
                pg_handle.start()
                t = time.perf_counter()
                server = serve(url, port)
                up = time.perf_counter() - t
                load_cold = os.getloadavg()[0]
                cold = latency(base_url := f"http://127.0.0.1:{port}", a.devices, a.reps, 0, 7)
            cold_note = (
                f"PostgreSQL restarted, OS page cache "
                f"{'dropped' if dropped else 'NOT dropped (not permitted)'}, API started "
                f"({up:.1f} s to healthy; it asks pg_prewarm for the rollups in the background) "
                f"and measured at once, every request counted (no warm-up); load {load_cold:.1f}"
            )
        if server is None:
            server = serve(url, port)
        base_url = f"http://127.0.0.1:{port}"
        rss_before = vm_hwm_mb(server.pid)
        with exclusive("api export, CSV") as w:
            waited += w
            load_export = os.getloadavg()[0]
            rows, secs, nbytes = export(base_url, a.export_devices)
            rss = vm_hwm_mb(server.pid)
        with exclusive("api latency") as w:
            waited += w
            load_timed = os.getloadavg()[0]
            lat = latency(base_url, a.devices, a.reps)
            inproc = in_process(url, a.devices, a.reps)
        with exclusive("api export, CSV again") as w:
            waited += w
            rows2, secs2, _ = export(base_url, a.export_devices)
        with psycopg.connect(url, autocommit=True) as conn:  # hide the rollups: raw path
            conn.execute("ALTER TABLE rollup_hourly RENAME TO rollup_hourly_hidden")
            conn.execute("ALTER TABLE rollup_daily_means RENAME TO rollup_daily_means_hidden")
        try:
            with exclusive("api latency, raw path") as w:
                waited += w
                raw = latency(base_url, a.devices, max(5, a.reps // 8))
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ALTER TABLE rollup_hourly_hidden RENAME TO rollup_hourly")
                conn.execute("ALTER TABLE rollup_daily_means_hidden RENAME TO rollup_daily_means")
        with exclusive("PostgreSQL alone") as w:
            waited += w
            pg_rows, pg_secs = pg_copy_rate(url, a.pg_devices)
        cal_rates: dict[str, tuple[int, float]] = {}
        if n_cal:
            first = {"calibrated": a.devices - n_cal, "uncalibrated": a.devices - 2 * n_cal}
            for f in first.values():
                export(base_url, n_cal, first=f)  # page cache warm: outside the timed part
            with exclusive("api export, calibrated") as w:
                waited += w
                for what, f in first.items():
                    cal_rows, cal_secs, _ = export(base_url, n_cal, first=f)
                    cal_rates[what] = (cal_rows, cal_secs)
        parquet = []
        for n_pq in a.parquet_devices:
            with exclusive(f"api export, Parquet {n_pq}") as w:
                waited += w
                pq_rows, pq_secs, pq_bytes = export(base_url, n_pq, "parquet")
                parquet.append((n_pq, pq_rows, pq_secs, pq_bytes, vm_hwm_mb(server.pid)))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        if pg is not None:
            pg.stop()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    per_dev = 365 * 24 * 60 // a.interval_min
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in load_steps.items())
    lines = [
        "## API (bench/bench_api.py)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, shared with other sessions' "
        f"jobs; timed parts inside bench/quiet.py's exclusive() (waited {waited:.0f} s for it); "
        f"load average at start {load_start:.1f}, when the CSV export began {load_export:.1f}, "
        f"when the warm latency part began {load_timed:.1f}",
        f"- data: {a.devices} devices x 1 year of {a.interval_min}-minute readings = "
        f"{n_rows:,} rows ({per_dev:,} per device); PostgreSQL without TimescaleDB; "
        + (
            f"loaded in {load_s:.0f} s ({steps}): generate_series into an UNLOGGED table "
            "without its index, index built after, table set LOGGED again; rollup_hourly "
            "filled in bulk, rollup_daily (and by its triggers rollup_daily_means) with the "
            "collector's statement"
            if "insert" in load_steps
            else (a.load_note or "reused from an earlier run of this script (--pg-dir)")
            + (
                f"; rollup_daily filled now in {load_steps['rollup_daily']:.0f} s"
                if "rollup_daily" in load_steps
                else ""
            )
        ),
        f"- cold: {cold_note}",
        "",
        "| request (one device, random) | served from | p50 ms | p95 ms | max ms | target p95 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, target in ((HOURLY, 50), (DAILY, 100)):
        if name in cold:
            c50, c95, csrc, cmax = cold[name]
            lines.append(
                f"| {name}, HTTP, **cold** ({a.reps} requests) | {csrc} | {c50:.0f} | {c95:.0f} "
                f"| {cmax:.0f} | < {target} |"
            )
        p50, p95, src, pmax = lat[name]
        lines.append(
            f"| {name}, HTTP, warm | {src} | {p50:.0f} | {p95:.0f} | {pmax:.0f} | < {target} |"
        )
        q50, q95, qsrc = inproc[name]
        lines.append(
            f"| {name}, in-process aggregate_json (no HTTP) | {qsrc} | {q50:.0f} | {q95:.0f} "
            "| – | – |"
        )
        if name == DAILY:
            n50, n95, nsrc = inproc[DAILY + " without the daily rollup"]
            lines.append(
                f"| {name}, in-process, daily rollup not used | {nsrc} | {n50:.0f} | {n95:.0f} "
                "| – | – |"
            )
        r50, r95, rsrc, rmax = raw[name]
        lines.append(
            f"| {name}, HTTP | {rsrc} (rollups hidden) | {r50:.0f} | {r95:.0f} | {rmax:.0f} | – |"
        )
    ratio = {n: raw[n][0] / lat[n][0] for n in (HOURLY, DAILY)}
    lines += [
        "",
        "Same-run ratios (p50): raw readings / rollups "
        + ", ".join(f"{k.split(' (')[0]} {v:.1f}x" for k, v in ratio.items())
        + "; HTTP / in-process "
        + ", ".join(f"{k.split(' (')[0]} {lat[k][0] / inproc[k][0]:.2f}x" for k in ratio)
        + "; daily series in-process from rollup_hourly / from rollup_daily_means "
        + f"{inproc[DAILY + ' without the daily rollup'][0] / inproc[DAILY][0]:.1f}x"
        + (
            "; cold / warm (HTTP p95) "
            + ", ".join(f"{k.split(' (')[0]} {cold[k][1] / lat[k][1]:.2f}x" for k in ratio)
            if cold
            else ""
        )
        + ".",
        "",
        f"Export: 1 year x {a.export_devices} devices as wide CSV"
        + (" (first request after the cold start's latency part)" if cold else "")
        + f": {rows:,} rows, {nbytes / 1e6:.0f} MB in {secs:.1f} s = **{rows / secs:,.0f} "
        "rows/s** (target >= 300,000); API server peak RSS (VmHWM) "
        f"**{rss:.0f} MB** (before the export {rss_before:.0f} MB; target < 300 MB). "
        f"PostgreSQL alone (the same COPY to /dev/null on the server, {a.pg_devices} devices, "
        f"warm): {pg_rows / pg_secs:,.0f} rows/s; API / PostgreSQL alone = "
        f"{(rows / secs) / (pg_rows / pg_secs):.2f}. The same export again (page cache warm "
        f"from the first): {rows2:,} rows in {secs2:.1f} s = **{rows2 / secs2:,.0f} rows/s** "
        f"(API / PostgreSQL alone = {(rows2 / secs2) / (pg_rows / pg_secs):.2f}).",
    ]
    if cal_rates:
        (cr, cs), (ur, us) = cal_rates["calibrated"], cal_rates["uncalibrated"]
        lines.append(
            f"Calibrated devices, warm: {n_cal} devices x 1 year with calibrated PM2.5 and PM10 "
            f"(fleet defaults; {cr * 2:,} calibrated values filled by the calibration job code "
            f"in {cal_fill:.0f} s before, untimed): {cr:,} rows in {cs:.1f} s = "
            f"**{cr / cs:,.0f} rows/s**; {n_cal} uncalibrated devices in the same run "
            f"{ur / us:,.0f} rows/s; calibrated / uncalibrated = {(cr / cs) / (ur / us):.2f}."
        )
    for n_pq, pq_rows, pq_secs, pq_bytes, hwm in parquet:
        lines.append(
            f"Parquet, {n_pq} devices (same server, after the above): {pq_rows:,} rows, "
            f"{pq_bytes / 1e6:.0f} MB in {pq_secs:.1f} s = {pq_rows / pq_secs:,.0f} rows/s; "
            f"server peak RSS after it **{hwm:.0f} MB**."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.no_write:
        write_section("bench_api", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
