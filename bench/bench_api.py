"""Benchmark the API: series latency and export throughput on a loaded database.

    python bench/bench_api.py                       # 100 devices x 1 year of 5-min data
    python bench/bench_api.py --interval-min 1      # the issue's 1-minute data (52 M rows)
    python bench/bench_api.py --no-write            # print only

1. Loads ``devices`` x one year of readings (server-side ``generate_series``) into a private
   PostgreSQL (or ``LUFTNETT_BENCH_DATABASE_URL``), then fills ``rollup_hourly`` for it in one
   set-based statement with the collector's definitions (what ``luftnett rollup refresh``
   leaves, without annotations; the API serves series from the rollups when they cover the
   range and from ``readings`` otherwise).
2. Starts ``luftnett api`` (uvicorn) in a subprocess and measures p50/p95 of a 30-day hourly
   series and of a year of daily means for one device (random device each call); targets
   p95 < 50 ms and < 100 ms. The same from raw ``readings`` (rollups hidden) for comparison.
3. Streams one year x ``export_devices`` devices as wide CSV, counts rows, and reads the
   server's peak RSS (VmHWM); targets >= 300,000 rows/s and < 300 MB.
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

import httpx
import psycopg

from luftnett.db.migrate import apply_migrations
from luftnett.db.schema import VALUE_COLUMNS
from luftnett.servers import EmbeddedPostgres, free_port

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_api:start -->", "<!-- bench_api:end -->"
YEAR = 2025

_LOAD = """
INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, pm25_ugm3,
                      pm10_ugm3, no2_ppb, temperature_c, rh_pct, flags, schema_version)
SELECT %(d)s, i, %(t0)s::timestamptz + i * %(step)s::interval, %(w)s, 60, 'sds011',
       8 + 6 * sin(i / 97.0) + random() * 3, 14 + 9 * sin(i / 97.0) + random() * 5,
       12 + 8 * sin(i / 53.0) + random() * 4, 5 + 10 * sin(i / 5000.0), 60 + random() * 30,
       CASE WHEN random() < 0.01 THEN 8 ELSE 0 END, 1
FROM generate_series(0, %(n)s - 1) AS i
"""

_ROLLUP = """
INSERT INTO rollup_hourly (device_id, hour_start, window_s, n_expected, n_stored, n_valid, {cols})
SELECT device_id, date_trunc('hour', ts, 'UTC'), min(window_s),
       greatest(1, round(3600 / min(window_s)::numeric))::int, count(*),
       count(*) FILTER (WHERE flags & %(mask)s = 0), {stats}
FROM readings GROUP BY 1, 2
"""


def load(url: str, devices: int, interval_min: int) -> int:
    from luftnett.contracts.units import INVALIDATING_FLAGS

    n = 365 * 24 * 60 // interval_min
    with psycopg.connect(url, autocommit=True) as conn:
        (have,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
        if have == devices * n:
            print(f"reusing {have} readings", file=sys.stderr)
            return int(have)
        conn.execute("TRUNCATE readings, rollup_hourly, deployments, devices, sites CASCADE")
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
            conn.execute(
                _LOAD,
                {
                    "d": d,
                    "t0": dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC),
                    "n": n,
                    "step": f"{interval_min} minutes",
                    "w": interval_min * 60.0,
                },
            )
            print(f"loaded {d}", file=sys.stderr)
        cols = ", ".join(f"{q}_{s}" for q in VALUE_COLUMNS for s in ("n", "sum", "min", "max"))
        ok = "FILTER (WHERE flags & %(mask)s = 0)"
        stats = ", ".join(
            f"count({q}) {ok}, sum({q}::numeric) {ok}, min({q}) {ok}, max({q}) {ok}"
            for q in VALUE_COLUMNS
        )
        conn.execute("SET jit = off")
        conn.execute(_ROLLUP.format(cols=cols, stats=stats), {"mask": int(INVALIDATING_FLAGS)})
        conn.execute("VACUUM ANALYZE")
    return devices * n


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def latency(base: str, devices: int, reps: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(1)
    out = {}
    with httpx.Client(base_url=base, timeout=300) as c:
        cases = {
            "30-day hourly series (PM2.5)": ("hourly", f"{YEAR}-06-01", f"{YEAR}-06-30"),
            "1 year of daily means (PM2.5)": ("daily", f"{YEAR}-01-01", f"{YEAR}-12-31"),
        }
        for name, (period, a, b) in cases.items():
            times = []
            for k in range(reps + 3):
                d = f"bench-{rng.randrange(devices):03d}"
                t = time.perf_counter()
                r = c.get(
                    f"/api/v1/devices/{d}/aggregates/{period}",
                    params={"quantity": "pm25_ugm3", "start": a, "end": b},
                )
                r.raise_for_status()
                if k >= 3:  # warm-up
                    times.append((time.perf_counter() - t) * 1000)
            out[name] = (statistics.median(times), _pct(times, 95))
            out[name + " computed_from"] = r.json()["computed_from"]  # type: ignore[assignment]
    return out


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export(base: str, n_devices: int) -> tuple[int, float, int]:
    params = [("device", f"bench-{i:03d}") for i in range(n_devices)]
    params += [("start", f"{YEAR}-01-01T00:00:00Z"), ("end", f"{YEAR + 1}-01-01T00:00:00Z")]
    rows = nbytes = 0
    t = time.perf_counter()
    with httpx.stream(
        "GET", f"{base}/api/v1/downloads/readings.csv", params=params, timeout=None
    ) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            rows += chunk.count(b"\n")
            nbytes += len(chunk)
    return rows - 1, time.perf_counter() - t, nbytes


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


def write_section(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        doc = head + START + "\n" + text.rstrip("\n") + "\n" + END + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + START + "\n" + text.rstrip("\n") + "\n" + END + "\n"
    DOC.write_text(doc, encoding="utf-8")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--interval-min", type=int, default=5)
    ap.add_argument("--export-devices", type=int, default=50)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    pg = None
    url = os.environ.get("LUFTNETT_BENCH_DATABASE_URL")
    if url is None:
        base = Path(tempfile.mkdtemp(prefix="luftnett-bench-api-"))
        base.chmod(0o755)
        pg = EmbeddedPostgres(base, fast=True)
        url = pg.start()
    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    t = time.perf_counter()
    n_rows = load(url, a.devices, a.interval_min)
    load_s = time.perf_counter() - t
    port = free_port()
    server = serve(url, port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        lat = latency(base_url, a.devices, a.reps)
        with psycopg.connect(url, autocommit=True) as conn:  # hide the rollups: raw path
            conn.execute("ALTER TABLE rollup_hourly RENAME TO rollup_hourly_hidden")
        try:
            raw = latency(base_url, a.devices, max(5, a.reps // 4))
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ALTER TABLE rollup_hourly_hidden RENAME TO rollup_hourly")
        rss_before = vm_hwm_mb(server.pid)
        rows, secs, nbytes = export(base_url, a.export_devices)
        rss = vm_hwm_mb(server.pid)
    finally:
        server.terminate()
        server.wait(10)
        if pg is not None:
            pg.stop()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    per_dev = 365 * 24 * 60 // a.interval_min
    lines = [
        "## API (bench/bench_api.py)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, shared with other work "
        f"(load average at start {os.getloadavg()[0]:.1f})",
        f"- data: {a.devices} devices x 1 year of {a.interval_min}-minute readings = "
        f"{n_rows:,} rows ({per_dev:,} per device), loaded in {load_s:.0f} s; PostgreSQL "
        "without TimescaleDB; rollup_hourly filled in bulk",
        "",
        "| request (one device, random) | served from | p50 ms | p95 ms | target p95 |",
        "|---|---|---:|---:|---:|",
    ]
    for name, target in (
        ("30-day hourly series (PM2.5)", 50),
        ("1 year of daily means (PM2.5)", 100),
    ):
        p50, p95 = lat[name]
        lines.append(
            f"| {name} | {lat[name + ' computed_from']} | {p50:.0f} | {p95:.0f} | < {target} |"
        )
        p50, p95 = raw[name]
        lines.append(f"| {name} | readings (rollups hidden) | {p50:.0f} | {p95:.0f} | – |")
    lines += [
        "",
        f"Export: 1 year x {a.export_devices} devices as wide CSV: {rows:,} rows, "
        f"{nbytes / 1e6:.0f} MB in {secs:.1f} s = **{rows / secs:,.0f} rows/s** "
        "(target >= 300,000); API server peak RSS (VmHWM) "
        f"**{rss:.0f} MB** (before the export {rss_before:.0f} MB; target < 300 MB).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
