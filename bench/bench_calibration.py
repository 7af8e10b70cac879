"""Calibration benchmarks (issue 6, "Measured"):

1. fit + evaluate (chronological 70/30 split, multilinear PM + RH + T, GDE REU, EPA, CEN) on one
   year of hourly data for 100 sensors; target < 5 s in all;
2. reprocessing stored readings after an activation, readings per second; target >= 200,000/s
   on 10 million readings. The job path of ``luftnett calibrate activate``: plan the job,
   then one set-based ``INSERT … SELECT`` per part with the model computed in PostgreSQL
   (calibration/jobs.py), by 1 or 2 workers. For the ratio, the numpy path of session 1
   (read a chunk as bytea, ``apply``, binary COPY; ``apply_db.reprocess``) on a subset.

    python bench/bench_calibration.py [--rows 10000000] [--devices 100] [--numpy-rows 1000000]
                                      [--shared-buffers 1GB] [--no-write]

Readings are loaded with server-side ``generate_series`` outside the timed part; each timed
part holds /tmp/luftnett-bench.lock exclusively (bench/quiet.py). Part 2 starts a private
PostgreSQL (fsync off, as the tests') unless LUFTNETT_BENCH_DATABASE_URL names a database it
may write to. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from luftnett.calibration import jobs as jobs_mod
from luftnett.calibration.apply_db import reprocess
from luftnett.calibration.evaluate import evaluate_model
from luftnett.calibration.fit import fit_multilinear
from luftnett.calibration.jobs import enqueue, job_status, run_workers
from luftnett.calibration.model import ModelMeta
from luftnett.calibration.split import train_test_split
from luftnett.calibration.store import activate, insert_version
from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedPostgres

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quiet import exclusive

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
    rmse = []
    with exclusive("calibration fit"):
        t = time.perf_counter()
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


MODEL_NAME = "bench-pm"


def load(conn: psycopg.Connection[Any], rows: int, devices: int) -> float:
    """``devices`` devices of sensor model MODEL_NAME, ``rows`` readings in all, one a minute,
    made inside the server; returns seconds."""
    per = rows // devices
    t = time.perf_counter()
    conn.execute("INSERT INTO devices (device_id, sensor_model) SELECT 'bench-' || lpad(d::text, "
                 "4, '0'), %s FROM generate_series(1, %s) d", (MODEL_NAME, devices))  # fmt: skip
    for d in range(1, devices + 1):
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, rh_pct, temperature_c, schema_version) "
            "SELECT %(dev)s, i, %(t0)s + i * interval '1 minute', 60, 60, %(m)s, "
            "(2 + 30 * random())::real, (20 + 75 * random())::real, (-5 + 25 * random())::real, "
            "1 FROM generate_series(0, %(n)s - 1) i",
            {"dev": f"bench-{d:04d}", "t0": T0, "m": MODEL_NAME, "n": per},
        )
    conn.execute("VACUUM ANALYZE readings")
    return time.perf_counter() - t


def mlr_version(conn: psycopg.Connection[Any], slope: float) -> int:
    rng = np.random.default_rng(int(slope * 100))
    x = rng.gamma(2, 6, 2000)
    cov = {"rh_pct": rng.uniform(20, 95, 2000), "temperature_c": rng.normal(8, 6, 2000)}
    y = slope * x - 0.05 * cov["rh_pct"] + 2 + rng.normal(0, 1, 2000)
    model = fit_multilinear(x, y, cov, meta=ModelMeta("pm25_ugm3"))
    return insert_version(conn, model, pollutant="pm25", created_by="bench",
                          kind="fleet-default", sensor_model=MODEL_NAME)  # fmt: skip


# -- the previous approach, for same-run ratios --------------------------------------------------
_OLD_SPAN = """
SELECT count(*), min(ts), max(ts) FROM readings
WHERE device_id = %(d)s AND ts >= %(lo)s AND ts < %(hi)s
"""
_OLD_SEQ_RANGE = """
SELECT min(seq), max(seq) FROM readings
WHERE device_id = %(d)s AND ts >= %(lo)s AND ts < %(hi)s
"""
PK_NOW = "(device_id, seq, version_id)"  # migration 0031
PK_BEFORE = "(device_id, seq, pollutant, version_id)"  # migrations 0010-0030


Span = tuple[dt.datetime, dt.datetime, int]


def _old_parts_of(conn: psycopg.Connection[Any], device_id: str, lo: dt.datetime,
                  hi: dt.datetime, part_rows: int) -> Iterator[Span]:  # fmt: skip
    """Planning before commit 6f6c908: count every reading of the window."""
    row = conn.execute(_OLD_SPAN, {"d": device_id, "lo": lo, "hi": hi}).fetchone()
    if row is None or not row[0]:
        return
    count, first, last = int(row[0]), row[1], row[2]
    n = -(-count // part_rows)
    inner = [first + (last - first) * k / n for k in range(1, n)]
    edges = [lo, *sorted({t for t in inner if lo < t < hi}), hi]
    parts = len(edges) - 1
    for k in range(parts):
        yield edges[k], edges[k + 1], count // parts + (1 if k < count % parts else 0)


@contextmanager
def previous_approach(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The job path as it was before this session: planning by counting, a min/max scan of
    each part's readings before its insert, and the 4-column primary key (rebuilt here,
    outside the timed part, and rebuilt back afterwards)."""
    new_parts_of, new_write_part = jobs_mod._parts_of, jobs_mod.write_part

    def old_write_part(c: psycopg.Connection[Any], model: Any, params: dict[str, Any]) -> Any:
        c.execute(_OLD_SEQ_RANGE, params).fetchone()
        return new_write_part(c, model, params)

    set_primary_key(conn, PK_BEFORE)
    jobs_mod._parts_of, jobs_mod.write_part = _old_parts_of, old_write_part  # type: ignore[assignment]
    try:
        yield
    finally:
        jobs_mod._parts_of, jobs_mod.write_part = new_parts_of, new_write_part  # type: ignore[assignment]
        set_primary_key(conn, PK_NOW)


def set_primary_key(conn: psycopg.Connection[Any], columns: str) -> None:
    t = time.perf_counter()
    conn.execute("ALTER TABLE calibrated_values DROP CONSTRAINT calibrated_values_pkey")
    conn.execute(f"ALTER TABLE calibrated_values ADD PRIMARY KEY {columns}")
    print(f"primary key {columns} built in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def timed_job(url: str, conn: psycopg.Connection[Any], version: int, workers: int,
              what: str) -> dict[str, Any]:  # fmt: skip
    """activate + enqueue (as `calibrate activate`) and work the job to the end. Before it,
    outside the timed part, VACUUM calibrated_values: between two activations autovacuum
    has long caught up with the previous job's inserts in a running system."""
    conn.execute("VACUUM (ANALYZE) calibrated_values")
    av0 = _autovacuums(conn)
    with exclusive(what):
        t = time.perf_counter()
        job = enqueue(conn, version, "bench", activate(conn, version, T0, "bench"))
        stats = run_workers(url, workers, poll_s=0.05)
        elapsed = time.perf_counter() - t
    st = job_status(conn, job)
    assert st.state == "done", st
    (n,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
    assert st.readings_total == n, (st.readings_total, n)  # the estimate is exact here
    paths = conn.execute("SELECT path, count(*) FROM calibration_job_parts WHERE job_id = %s "
                         "GROUP BY 1", (job,)).fetchall()  # fmt: skip
    row = conn.execute("SELECT extract(epoch FROM planned_at - created_at) FROM "
                       "calibration_jobs WHERE job_id = %s", (job,)).fetchone()  # fmt: skip
    plan_s = row[0] if row else 0
    print(what, st, stats, f"{elapsed:.1f} s", file=sys.stderr)
    return {"what": what, "workers": workers, "readings": st.readings_total, "seconds": elapsed,
            "values": stats.values, "parts": st.parts_total, "plan_s": float(plan_s),
            "paths": dict(paths), "autovacuums": _autovacuums(conn) - av0,
            "load": os.getloadavg()[0]}  # fmt: skip


def _autovacuums(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT autovacuum_count FROM pg_stat_user_tables "
                       "WHERE relname = 'calibrated_values'").fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def bench_reprocess(url: str, rows: int, devices: int, numpy_rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "devices": devices}
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        out["load_s"] = load(conn, rows, devices)
        print(f"loaded {rows:,} readings in {out['load_s']:.0f} s", file=sys.stderr)
        va, vb, vc = (mlr_version(conn, s) for s in (0.7, 0.6, 0.65))
        vp = mlr_version(conn, 0.68)
        runs = [timed_job(url, conn, va, 2, "first activation, no values yet (2 workers)")]
        # the previous approach first, with fewer old values in the table than the new one
        # gets after it: the ratio errs against this session's changes
        with previous_approach(conn):
            out["previous"] = timed_job(
                url, conn, vp, 2, "previous approach: new version, old values kept (2 workers)"
            )
        runs += [
            timed_job(url, conn, vb, 2, "new version, old values kept (2 workers)"),
            timed_job(url, conn, vc, 1, "new version, old values kept (1 worker)"),
            timed_job(url, conn, vb, 2, "same version again: values present (2 workers)"),
        ]
        out["runs"] = runs
        # the numpy + COPY path of session 1 on a subset, explicit version (no activation)
        n_dev = max(1, numpy_rows * devices // rows)
        vd = mlr_version(conn, 0.75)
        with exclusive("calibration numpy reprocess"):
            t = time.perf_counter()
            done = 0
            for d in range(1, n_dev + 1):
                done += reprocess(conn, f"bench-{d:04d}", ("pm25",), version_id=vd).readings
            out["numpy"] = {"readings": done, "seconds": time.perf_counter() - t}
        print("numpy", out["numpy"], file=sys.stderr)
        (size,) = conn.execute(
            "SELECT pg_total_relation_size('calibrated_values')").fetchone() or (0,)  # fmt: skip
        out["cv_bytes"] = int(size)
    return out


def machine(load: tuple[float, float, float] | None = None) -> list[str]:
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
        f"- load average at the end: {' '.join(f'{x:.1f}' for x in (load or os.getloadavg()))}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"psycopg {psycopg.__version__}, {pg or 'PostgreSQL'}",
    ]


NOTES = (
    "Each time runs from `activate` + queueing the job to the last part committed, "
    "planning included. A part is one device's readings where the version is in force, "
    "one transaction: one set-based insert computes value and uncertainty in SQL and "
    "writes `calibrated_values` with its primary key (no round trip), and marks the part "
    "done. *Previous approach* is the job path as it was before: planning by counting "
    "every reading in scope, a min/max scan of each part's readings before its insert, "
    "and the 4-column primary key (device_id, seq, pollutant, version_id), rebuilt for "
    "that run outside the timed part; it ran with fewer old values in the table (1 "
    "version) than the new path's run after it (2), so the ratio errs against the new "
    "path. Before each timed job `calibrated_values` is vacuumed, outside the timed part "
    "(between two activations autovacuum has caught up in a running system); "
)


def report(fit: dict[str, Any], rep: dict[str, Any]) -> str:
    runs = rep["runs"]
    head = runs[1]  # the case: an activation when values of older versions exist
    prev = rep["previous"]
    rate = {r["what"]: r["readings"] / r["seconds"] for r in [*runs, prev]}
    npy = rep["numpy"]
    npy_rate = npy["readings"] / npy["seconds"]
    one = next(r for r in runs if r["workers"] == 1)
    met = rate[head["what"]] >= 200_000
    lines = [
        START,
        "## Calibration (bench/bench_calibration.py)",
        "",
        *machine(rep["load_end"]),
        "",
        "| what | size | time s | rate | load (1 min) | target |",
        "|---|---|---|---|---|---|",
        f"| fit + evaluate (MLR PM+RH+T, 70/30 chronological, REU, EPA, CEN) | "
        f"{fit['sensors']} sensors × {fit['hours']} h | {fit['seconds']:.2f} | "
        f"{fit['sensors'] / fit['seconds']:.0f} sensors/s | | < 5 s in all |",
    ]
    for r in [runs[0], prev, *runs[1:]]:
        lines.append(
            f"| reprocess job: {r['what']} | {r['readings']:,} readings, {rep['devices']} "
            f"devices, {r['parts']} parts | {r['seconds']:.1f} | "
            f"{r['readings'] / r['seconds']:,.0f} readings/s | {r['load']:.1f} | "
            f"{'≥ 200,000/s' if r is head else ''} |"
        )
    lines += [
        f"| numpy path of session 1 (bytea read, `apply`, binary COPY), same run | "
        f"{npy['readings']:,} readings | {npy['seconds']:.1f} | {npy_rate:,.0f} readings/s | | |",
        "",
        f"Same-run ratios: this job path / the previous approach = "
        f"{rate[head['what']] / rate[prev['what']]:.2f}× (new version, old values kept, 2 "
        f"workers; planning {head['plan_s']:.1f} s against {prev['plan_s']:.1f} s); job path "
        f"(2 workers) / numpy+COPY path = {rate[head['what']] / npy_rate:.1f}×; 2 workers / "
        f"1 worker = {rate[head['what']] / rate[one['what']]:.2f}×. "
        f"**The 200,000 readings/s target is {'met' if met else 'not met'}** "
        f"({rate[head['what']]:,.0f}/s on {head['readings']:,} readings).",
        "",
        NOTES + "autovacuum runs started during the timed jobs: "
        f"{', '.join(str(r['autovacuums']) for r in [runs[0], prev, *runs[1:]])}. Readings: "
        f"{rep['rows']:,} ({rep['devices']} devices × {rep['rows'] // rep['devices']:,} "
        "one-minute readings), loaded with server-side `generate_series` in "
        f"{rep['load_s']:.0f} s, not counted. `calibrated_values` ends at "
        f"{rep['cv_bytes'] / 2**30:.1f} GiB. Median hold-out RMSE of the fits: "
        f"{fit['median_rmse']:.2f} µg/m³ (synthetic data). PostgreSQL (shared_buffers "
        f"{rep['shared_buffers']}, other settings default, fsync off as in the tests) shares "
        "the 2 cores with the workers and with the other helpers' processes; each timed "
        "part held the bench lock, so no other benchmark or test suite ran meanwhile, but "
        "the machine was not idle (load column: the 1-minute load average at the end of "
        "each job).",
        "",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        doc = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc, encoding="utf-8")


def _opt(argv: list[str], name: str, default: int) -> int:
    return int(argv[argv.index(name) + 1]) if name in argv else default


def main(argv: list[str]) -> int:
    rows = _opt(argv, "--rows", 10_000_000)
    devices = _opt(argv, "--devices", 100)
    numpy_rows = _opt(argv, "--numpy-rows", 1_000_000)
    # e.g. 1GB; the default is the server's (128 MB in a fresh cluster)
    shared_buffers = argv[argv.index("--shared-buffers") + 1] if "--shared-buffers" in argv else ""
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
        if shared_buffers:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(
                    sql.Literal(shared_buffers)))  # fmt: skip
            pg.restart()
    try:
        rep = bench_reprocess(url, rows, devices, numpy_rows)
    finally:
        if pg is not None:
            pg.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    rep["load_end"] = os.getloadavg()
    rep["shared_buffers"] = shared_buffers or "128MB (default)"
    print(json.dumps({"fit": fit, "reprocess": rep}), file=sys.stderr)
    text = report(fit, rep)
    print(text)
    if "--no-write" not in argv:
        write_section(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
