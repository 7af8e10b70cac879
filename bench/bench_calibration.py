"""Calibration benchmarks (issue 6, "Measured"):

1. fit + evaluate (chronological 70/30 split, multilinear PM + RH + T, GDE REU, EPA, CEN) on one
   year of hourly data for 100 sensors; target < 5 s in all;
2. reprocessing stored readings after an activation (database read, model, write of the
   calibrated values), readings per second; target >= 200,000/s.

    python bench/bench_calibration.py [--rows 1000000] [--no-write]

Part 2 starts a private PostgreSQL (fsync off, as the tests') unless LUFTNETT_BENCH_DATABASE_URL
names a database it may write to. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from luftnett.calibration.apply_db import reprocess
from luftnett.calibration.evaluate import evaluate_model
from luftnett.calibration.fit import fit_multilinear
from luftnett.calibration.model import ModelMeta
from luftnett.calibration.split import train_test_split
from luftnett.calibration.store import activate, insert_version
from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_calibration:start -->", "<!-- bench_calibration:end -->"
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def year_of_sensor(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    h = np.arange(8760)
    ref = np.clip(10 + 6 * np.sin(2 * np.pi * h / 24) + 4 * np.sin(2 * np.pi * h / 8760)
                  + rng.gamma(2, 2, h.size), 0.5, None)  # fmt: skip
    rh = np.clip(65 + 20 * np.sin(2 * np.pi * h / 24 + 1) + rng.normal(0, 6, h.size), 10, 99)
    temp = 6 + 10 * np.sin(2 * np.pi * (h - 2000) / 8760) + rng.normal(0, 2, h.size)
    x = (1.2 + 0.3 * rng.random()) * ref * (1 + 0.004 * np.maximum(rh - 60, 0)) + rng.normal(
        0, 1.5, h.size
    )
    return x, ref, {"rh_pct": rh, "temperature_c": temp}


def bench_fit(n_sensors: int = 100) -> dict[str, Any]:
    data = [year_of_sensor(i) for i in range(n_sensors)]
    t = time.perf_counter()
    rmse = []
    for x, ref, cov in data:
        train = train_test_split(x.size, 0.7)
        test = ~train
        model = fit_multilinear(x[train], ref[train], {k: v[train] for k, v in cov.items()})
        ev = evaluate_model(model, ref[test], x[test], {k: v[test] for k, v in cov.items()},
                            limit=30.0, pollutant="pm25")  # fmt: skip
        rmse.append(ev.calibrated.rmse)
    elapsed = time.perf_counter() - t
    return {"sensors": n_sensors, "hours": 8760, "seconds": elapsed,
            "median_rmse": float(np.median(rmse))}  # fmt: skip


def bench_reprocess(url: str, rows: int) -> dict[str, Any]:
    from luftnett.calibration.fit import fit_multilinear as fit

    dev = f"bench-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (dev,))
        rng = np.random.default_rng(0)
        pm = rng.gamma(2, 6, rows).round(2)
        rh = rng.uniform(20, 95, rows).round(1)
        temp = rng.normal(8, 6, rows).round(1)
        t = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY readings (device_id, seq, ts, window_s, n_samples, sensor_model, pm25_ugm3, "
                "rh_pct, temperature_c, schema_version) FROM STDIN"
            ) as copy,
        ):
            for i in range(rows):
                copy.write_row((dev, i, T0 + dt.timedelta(seconds=60 * i), 60.0, 60, "sds011",
                                pm[i], rh[i], temp[i], 1))  # fmt: skip
        t_load = time.perf_counter() - t
        conn.execute("ANALYZE readings")
        x = rng.gamma(2, 6, 500)
        cov = {"rh_pct": rng.uniform(20, 95, 500), "temperature_c": rng.normal(8, 6, 500)}
        model = fit(x * 1.5 + 2 + rng.normal(0, 1, 500), x, cov, meta=ModelMeta("pm25_ugm3"))
        v1 = insert_version(conn, model, pollutant="pm25", created_by="bench", device_id=dev)
        activate(conn, v1, T0, "bench")
        t = time.perf_counter()
        r1 = reprocess(conn, dev, ("pm25",))
        first = time.perf_counter() - t
        t = time.perf_counter()
        r2 = reprocess(conn, dev, ("pm25",))  # same version again: values replaced
        again = time.perf_counter() - t
        conn.execute("DELETE FROM calibrated_values WHERE device_id = %s", (dev,))
        conn.execute("DELETE FROM readings WHERE device_id = %s", (dev,))
    assert r1.values == r2.values == rows, (r1, r2, rows)
    return {"rows": rows, "load_s": t_load, "first_s": first, "again_s": again}


def machine() -> list[str]:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    dirty = " (with uncommitted changes)" if sh("git", "status", "--porcelain") else ""
    pg = sh("postgres", "--version") or sh("psql", "--version")
    return [
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- commit: {sh('git', 'rev-parse', '--short', 'HEAD')}{dirty}",
        f"- machine: `{sh('uname', '-a')}`",
        f"- CPU: {cpu}, {sh('nproc')} cores",
        f"- load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"psycopg {psycopg.__version__}, {pg or 'PostgreSQL'}",
    ]


def report(fit: dict[str, Any], rep: dict[str, Any]) -> str:
    n = rep["rows"]
    return "\n".join([
        START,
        "## Calibration (bench/bench_calibration.py)",
        "",
        *machine(),
        "",
        "| what | size | time s | rate | target |",
        "|---|---|---|---|---|",
        f"| fit + evaluate (MLR PM+RH+T, 70/30 chronological, REU, EPA, CEN) | "
        f"{fit['sensors']} sensors × {fit['hours']} h | {fit['seconds']:.2f} | "
        f"{fit['sensors'] / fit['seconds']:.0f} sensors/s | < 5 s in all |",
        f"| reprocess after an activation (read, apply, write values) | {n:,} readings | "
        f"{rep['first_s']:.2f} | {n / rep['first_s']:,.0f} readings/s | ≥ 200,000/s |",
        f"| reprocess again, same version (values replaced) | {n:,} readings | "
        f"{rep['again_s']:.2f} | {n / rep['again_s']:,.0f} readings/s | |",
        "",
        f"Median hold-out RMSE of the fits: {fit['median_rmse']:.2f} µg/m³ (synthetic data). "
        "Reprocessing runs in chunks of 200,000 readings, one transaction each: one query "
        "returns each input column as a `bytea` of 8-byte values (parsed by numpy), the "
        "model is applied in bulk, and a binary COPY writes `calibrated_values` (primary key "
        "maintained). PostgreSQL runs on the same 2-core machine with fsync off. Loading the "
        f"readings took {rep['load_s']:.1f} s and is not counted. The issue's 10 million "
        "readings were not run (disk and time of the shared machine); the work is per chunk, "
        "so the time grows linearly. **The 200,000 readings/s target is not met.** The "
        "machine was shared with other jobs (load average above, on 2 cores); no idle run "
        "was possible, so the idle rate is unknown. Most of the time is the server inserting "
        "into the primary key of `calibrated_values` and reading the chunk. Replacing values "
        "of the same version also deletes the old rows first. The next step would be to "
        "compute linear-family models inside PostgreSQL (`INSERT … SELECT`) and skip the "
        "round trip.",
        "",
        END,
    ]) + "\n"  # fmt: skip


def write_section(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        doc = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc, encoding="utf-8")


def main(argv: list[str]) -> int:
    rows = int(argv[argv.index("--rows") + 1]) if "--rows" in argv else 1_000_000
    fit = bench_fit()
    print(fit, file=sys.stderr)
    url = os.environ.get("LUFTNETT_BENCH_DATABASE_URL")
    base = None
    pg = None
    if url is None:
        base = Path(tempfile.mkdtemp(prefix="luftnett-bench-pg-"))
        base.chmod(0o755)
        pg = EmbeddedPostgres(base, fast=True)
        url = pg.start()
    try:
        rep = bench_reprocess(url, rows)
    finally:
        if pg is not None:
            pg.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    print(rep, file=sys.stderr)
    text = report(fit, rep)
    print(text)
    if "--no-write" not in argv:
        write_section(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
