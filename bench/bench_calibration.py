"""Calibration benchmarks (issue 6, "Measured"):

1. fit + evaluate (chronological 70/30 split, multilinear PM + RH + T, GDE REU, EPA, CEN) on one
   year of hourly data for 100 sensors; target < 5 s in all;
2. reprocessing stored readings after an activation, readings per second; target >= 200,000/s
   on 10 million readings. The job path of ``luftnett calibrate activate``: plan the job,
   then one set-based ``INSERT … SELECT`` per part with the model computed in PostgreSQL
   (calibration/jobs.py), by 1 or 2 workers. For the ratio, the numpy path of session 1
   (read a chunk as bytea, ``apply``, binary COPY; ``apply_db.reprocess``) on a subset.

    python bench/bench_calibration.py [--rows 10000000] [--devices 100] [--numpy-rows 1000000]
                                      [--shared-buffers 1GB] [--read-timeout 120] [--no-write]

Readings are loaded with server-side ``generate_series`` outside the timed part; each timed
part holds /tmp/luftnett-bench.lock exclusively (bench/quiet.py). Part 2 starts a private
PostgreSQL (fsync off, as the tests') unless LUFTNETT_BENCH_DATABASE_URL names a database it
may write to. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

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


# -- the previous layout, for same-run ratios ---------------------------------------------------
# the key of migration 0031 (kept by 0050), and the alternative measured against it
PK_BEFORE = "(device_id, seq, version_id)"
PK_NOW = "(device_id, version_id, seq)"  # a version's values together per device
# calibrated_current before migration 0050 (0011): the version resolved per value
VIEW_BEFORE = """
CREATE VIEW calibrated_current AS
SELECT c.* FROM calibrated_values c
WHERE c.version_id = luftnett_active_version(c.device_id, c.pollutant, c.ts)
"""
# calibrated_current of migration 0050 (the statement after its DROP VIEW)
VIEW_NOW = (
    (ROOT / "src/luftnett/db/migrations/0050_calibration_spans.sql")
    .read_text(encoding="utf-8")
    .split("DROP VIEW calibrated_current;", 1)[1]
)


def set_layout(conn: psycopg.Connection[Any], before: bool) -> None:
    """calibrated_current of migration 0050 with the version-first key (PK_NOW), or the view
    before 0050 with the key of 0031 (rebuilt here, outside any timed part)."""
    t = time.perf_counter()
    (view,) = conn.execute(
        "SELECT pg_get_viewdef('calibrated_current'::regclass)").fetchone() or ("",)  # fmt: skip
    if ("calibration_spans" in view) == before:
        conn.execute("DROP VIEW calibrated_current")
        conn.execute(VIEW_BEFORE if before else VIEW_NOW)
    columns = PK_BEFORE if before else PK_NOW
    (key,) = conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indisprimary "
        "AND indrelid = 'calibrated_values'::regclass").fetchone() or ("",)  # fmt: skip
    if columns not in key:
        conn.execute("ALTER TABLE calibrated_values DROP CONSTRAINT calibrated_values_pkey")
        conn.execute(f"ALTER TABLE calibrated_values ADD PRIMARY KEY {columns}")
        conn.execute("VACUUM (ANALYZE) calibrated_values")
    print(f"layout {'before' if before else 'now'}: key {columns} "
          f"in {time.perf_counter() - t:.0f} s", file=sys.stderr)  # fmt: skip


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


# -- readers and ingest under each layout -------------------------------------------------------
DAY = T0 + dt.timedelta(days=40)  # a day inside every device's readings (100,000 minutes)


def _readers(devices: int) -> dict[str, tuple[sql.Composable, dict[str, Any]]]:
    """Each reader of calibrated values with its own SQL (imported, not copied), on one day."""
    from luftnett.api.calibration import cal_columns, cal_joins
    from luftnett.api.export import _HAS_CALIBRATED
    from luftnett.api.quality import INVALID_MASK
    from luftnett.api.sensorthings.observations import _cal_join
    from luftnett.calibration.colocation import MIN_COVERAGE, PAIR_FLAG_MASK
    from luftnett.calibration.drift_db import _HOURLY
    from luftnett.contracts.units import ReadingFlag
    from luftnett.mapping.queries import CALIBRATED_HOURLY, INVALID_FLAGS
    from luftnett.publish.source import _HOURLY_CAL

    day = {"start": DAY, "end": DAY + dt.timedelta(days=1)}
    one = {**day, "device": f"bench-{min(devices, 7):04d}"}
    api = sql.SQL("SELECT r.ts, {} FROM readings r{} WHERE r.device_id = %(device)s "
                  "AND r.ts >= %(start)s AND r.ts < %(end)s ORDER BY r.ts").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(n))
                           for n, e in cal_columns(True)), cal_joins(True))  # fmt: skip
    sta = sql.SQL("SELECT r.ts, c.value FROM readings r{} WHERE r.device_id = %(device)s "
                  "AND r.ts >= %(start)s AND r.ts < %(end)s ORDER BY r.ts").format(
        _cal_join("pm25_ugm3", "c"))  # fmt: skip
    week = {"start": DAY, "end": DAY + dt.timedelta(days=7)}
    return {
        "api: readings of one device-day, LEFT JOIN calibrated_current per quantity":
            (api, one),
        "SensorThings: observations of one device-day (calibrated join)": (sta, one),
        "drift: hourly means of 10 devices over a week": (
            _HOURLY.format(col=sql.Identifier("pm25_ugm3")),
            {**week, "devices": [f"bench-{d:04d}" for d in range(1, min(devices, 10) + 1)],
             "pollutant": "pm25",
             "mask": PAIR_FLAG_MASK, "cov": MIN_COVERAGE}),
        f"mapping: calibrated hourly site means, {devices} devices, one day": (
            CALIBRATED_HOURLY, {**day, "invalid": INVALID_FLAGS, "pollutant": "pm25"}),
        f"publish: calibrated hourly means, {devices} devices, one day": (
            _HOURLY_CAL.format(ann=sql.Literal(int(ReadingFlag.ANNOTATED_INVALID)),
                               mask=sql.Literal(INVALID_MASK)), day),
        "export: EXISTS probe of one device": (sql.SQL(_HAS_CALIBRATED), one),
    }  # fmt: skip


READ_TIMEOUT_S = 120  # a reader's EXPLAIN ANALYZE longer than this is reported as such


def _plan_nodes(plan: dict[str, Any]) -> list[str]:
    """Scans of calibrated_values / calibration_spans in a JSON plan, with their loops."""
    out = []
    rel = plan.get("Relation Name", "")
    if rel in ("calibrated_values", "calibration_spans"):
        loops = f" ×{plan['Actual Loops']}" if "Actual Loops" in plan else ""
        out.append(f"{plan['Node Type']} on {rel}{loops}")
    for child in plan.get("Plans", []):
        out += _plan_nodes(child)
    return out


def bench_reads(conn: psycopg.Connection[Any], devices: int, what: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of every reader, and the API's lookup of one device-day timed on 20
    devices (first and second pass)."""
    from luftnett.api.calibration import cal_columns, cal_joins

    api = sql.SQL("SELECT r.ts, {} FROM readings r{} WHERE r.device_id = %(device)s "
                  "AND r.ts >= %(start)s AND r.ts < %(end)s ORDER BY r.ts").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(n))
                           for n, e in cal_columns(True)), cal_joins(True))  # fmt: skip
    out: dict[str, Any] = {"plans": {}}
    with exclusive(f"calibration reads ({what})"):
        for p in (1, 2):
            times, n = [], 0
            for d in range(1, 21):  # 20 devices (or all, if fewer), days 21..40 of each
                params = {"device": f"bench-{(d - 1) % devices + 1:04d}",
                          "start": T0 + dt.timedelta(days=20 + d),
                          "end": T0 + dt.timedelta(days=21 + d)}  # fmt: skip
                t = time.perf_counter()
                rows = conn.execute(api, params).fetchall()
                times.append(time.perf_counter() - t)
                n += sum(1 for r in rows if r[1] is not None)
            out[f"api_pass{p}"] = float(np.median(times))
            out[f"api_pass{p}_max"] = max(times)
            out["api_calibrated"] = n
        conn.execute(f"SET statement_timeout = '{READ_TIMEOUT_S}s'")
        for name, (q, params) in _readers(devices).items():
            plan: list[dict[str, Any]] = [{"Plan": {}}]
            try:
                row = conn.execute(
                    sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + q, params
                ).fetchone()
            except psycopg.errors.QueryCanceled:
                row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + q, params).fetchone()
                if row:
                    row[0][0]["Execution Time"] = None
            plan = row[0] if row else plan
            top: dict[str, Any] = plan[0]
            out["plans"][name] = {"ms": top["Execution Time"],
                                  "rows": top["Plan"].get("Actual Rows"),
                                  "nodes": sorted(set(_plan_nodes(top["Plan"])))}  # fmt: skip
        conn.execute("RESET statement_timeout")
    print(what, json.dumps(out, indent=1), file=sys.stderr)
    return out


def bench_ingest(conn: psycopg.Connection[Any], devices: int, version: int, seq0: int,
                 batches: int = 50, per_device: int = 10) -> dict[str, Any]:  # fmt: skip
    """The collector's binary COPY of calibrated values (collector/calibrate.py's records):
    ``batches`` transactions of ``per_device`` new readings' values for every device."""
    from luftnett.collector.calibrate import _COPY, _HEADER, _TRAILER, _records

    dev = np.repeat(np.array([f"bench-{d:04d}" for d in range(1, devices + 1)], dtype="S10"),
                    per_device)  # fmt: skip
    bodies = []
    for b in range(batches):
        seq = np.tile(np.arange(per_device, dtype=np.int64), devices) + seq0 + b * per_device
        ts = (int((T0 - dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).total_seconds()) + seq * 60) * 10**6
        val = np.full(seq.size, 12.5)
        bodies.append(_HEADER + _records(dev, b"pm25", seq, version, ts, val, val / 10) + _TRAILER)
    with exclusive("calibration ingest COPY"):
        t = time.perf_counter()
        for body in bodies:
            with conn.transaction(), conn.cursor().copy(_COPY) as cp:
                cp.write(body)
        elapsed = time.perf_counter() - t
    return {"values": batches * devices * per_device, "batches": batches, "seconds": elapsed}


def bench_reprocess(url: str, rows: int, devices: int, numpy_rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "devices": devices}
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        out["load_s"] = load(conn, rows, devices)
        print(f"loaded {rows:,} readings in {out['load_s']:.0f} s", file=sys.stderr)
        conn.execute("INSERT INTO sites (site_id, name, lat, lon) VALUES ('bench', 'bench', 59.9, "
                     "10.7)")  # fmt: skip
        conn.execute("INSERT INTO deployments (site_id, device_id, valid_from) "
                     "SELECT 'bench', device_id, %s FROM devices", (T0,))  # fmt: skip
        va, v1, v2, v3, v4 = (mlr_version(conn, s) for s in (0.7, 0.6, 0.65, 0.62, 0.68))
        runs = [timed_job(url, conn, va, 2, "first activation, no values yet")]
        runs[0]["key"] = PK_BEFORE  # as migrated
        # alternating layouts; each job adds a version of old values for the next one, so the
        # new key runs always with one more old version than the old key's run before it
        for v, before in ((v1, True), (v2, False), (v3, True), (v4, False)):
            set_layout(conn, before)
            if (before and v == v3) or (not before and v == v4):
                key = "before" if before else "now"
                out[f"reads_{key}"] = bench_reads(conn, devices, key)
                out[f"ingest_{key}"] = bench_ingest(
                    conn, devices, v2 if before else v3, rows // devices + (0 if before else 10**6)
                )
            r = timed_job(url, conn, v, 2, "new version, old values kept")
            r["key"] = PK_BEFORE if before else PK_NOW
            runs.append(r)
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
        out["cv_rows"] = int((conn.execute("SELECT count(*) FROM calibrated_values")
                              .fetchone() or (0,))[0])  # fmt: skip
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
    "Each job time runs from `activate` + queueing the job to the last part committed, "
    "planning included, 2 workers. A part is one device's readings where the version is in "
    "force, one transaction: one set-based insert computes value and uncertainty in SQL and "
    "writes `calibrated_values` with its primary key, and marks the part done. The layouts "
    "alternate in one run: *key (device_id, seq, version_id)* is the table as it was before "
    "migration 0050 (that key, `calibrated_current` resolving the version per value), rebuilt "
    "outside the timed parts; *key (device_id, version_id, seq)* is the alternative key, with "
    "0050's `calibrated_current` (`calibration_spans`). Each job leaves one more version of "
    "old values for the next, so each new-key job runs with one more old version in the "
    "table than the old-key job before it (the ratio errs against the new key). Before each "
    "job `calibrated_values` is vacuumed outside the timed part (between two activations "
    "autovacuum has caught up in a running system); "
)


def _ms(ms: float | None) -> str:
    return (
        f"> {READ_TIMEOUT_S * 1000:,} (cancelled; planned scans shown)"
        if ms is None
        else f"{ms:,.1f}"
    )


def _rate(rs: list[dict[str, Any]]) -> float:
    return float(sum(r["readings"] for r in rs) / sum(r["seconds"] for r in rs))


def report(fit: dict[str, Any], rep: dict[str, Any]) -> str:
    runs = rep["runs"]
    old = [r for r in runs[1:] if r["key"] == PK_BEFORE]
    new = [r for r in runs[1:] if r["key"] == PK_NOW]
    npy = rep["numpy"]
    npy_rate = npy["readings"] / npy["seconds"]
    best = max(r["readings"] / r["seconds"] for r in new)
    met = _rate(new) >= 200_000
    lines = [
        START,
        "## Calibration (bench/bench_calibration.py)",
        "",
        *machine(rep["load_end"]),
        "",
        "| what | key of calibrated_values | size | time s | rate | load (1 min) | target |",
        "|---|---|---|---|---|---|---|",
        f"| fit + evaluate (MLR PM+RH+T, 70/30 chronological, REU, EPA, CEN) | | "
        f"{fit['sensors']} sensors × {fit['hours']} h | {fit['seconds']:.2f} | "
        f"{fit['sensors'] / fit['seconds']:.0f} sensors/s | | < 5 s in all |",
    ]
    for i, r in enumerate(runs):
        lines.append(
            f"| reprocess job {i + 1}: {r['what']} | {r['key']} | {r['readings']:,} readings, "
            f"{rep['devices']} devices, {r['parts']} parts | {r['seconds']:.1f} | "
            f"{r['readings'] / r['seconds']:,.0f} readings/s | {r['load']:.1f} | "
            f"{'≥ 200,000/s' if i else ''} |"
        )
    lines += [
        f"| numpy path of session 1 (bytea read, `apply`, binary COPY), same run | "
        f"{PK_NOW} | {npy['readings']:,} readings | {npy['seconds']:.1f} | "
        f"{npy_rate:,.0f} readings/s | | |",
    ]
    for k, pk in (("before", PK_BEFORE), ("now", PK_NOW)):
        g = rep[f"ingest_{k}"]
        lines.append(
            f"| collector's binary COPY of calibrated values at ingest | {pk} | {g['batches']} "
            f"batches × {g['values'] // g['batches']:,} values | {g['seconds']:.2f} | "
            f"{g['values'] / g['seconds']:,.0f} values/s | | |"
        )
    ib, inow = rep["ingest_before"], rep["ingest_now"]
    lines += [
        "",
        f"Same-run ratios: new key / old key = {_rate(new) / _rate(old):.2f}× for the "
        f"reprocessing jobs (all readings over all seconds of each key's jobs: "
        f"{_rate(new):,.0f} against {_rate(old):,.0f} readings/s; pairwise "
        + ", ".join(
            f"{n['readings'] / n['seconds'] / (o['readings'] / o['seconds']):.2f}×"
            for o, n in zip(old, new, strict=True)
        )
        + f"); ingest COPY new / old = "
        f"{(inow['values'] / inow['seconds']) / (ib['values'] / ib['seconds']):.2f}×; job "
        f"path (new key) / numpy+COPY path = {_rate(new) / npy_rate:.1f}×. "
        f"**The 200,000 readings/s target is {'met' if met else 'not met'}** "
        f"({_rate(new):,.0f}/s over the new key's jobs, best job {best:,.0f}/s, on "
        f"{new[0]['readings']:,} readings each).",
        "",
        "Readers, same run (each reader's own SQL, EXPLAIN ANALYZE once, after the jobs "
        "that wrote the versions before it; ms as reported by PostgreSQL):",
        "",
        "| reader | old key: ms | scans | new key: ms | scans |",
        "|---|---|---|---|---|",
    ]
    rb, rn = rep["reads_before"], rep["reads_now"]
    for name, pb in rb["plans"].items():
        pn = rn["plans"][name]
        lines.append(f"| {name} | {_ms(pb['ms'])} | {'; '.join(pb['nodes'])} | {_ms(pn['ms'])} | "
                     f"{'; '.join(pn['nodes'])} |")  # fmt: skip
    lines += [
        "",
        f"The API's lookup of one device-day (1,440 readings, three calibrated quantities, 20 "
        f"devices, median): old key {rb['api_pass1'] * 1000:.0f} ms first pass / "
        f"{rb['api_pass2'] * 1000:.0f} ms second; new key {rn['api_pass1'] * 1000:.0f} ms / "
        f"{rn['api_pass2'] * 1000:.0f} ms (max {rb['api_pass1_max'] * 1000:.0f} and "
        f"{rn['api_pass1_max'] * 1000:.0f} ms); calibrated values found: "
        f"{rb['api_calibrated']:,} and {rn['api_calibrated']:,}.",
        "",
        NOTES + "autovacuum runs started during the timed jobs: "
        f"{', '.join(str(r['autovacuums']) for r in runs)}. Readings: "
        f"{rep['rows']:,} ({rep['devices']} devices × {rep['rows'] // rep['devices']:,} "
        "one-minute readings), loaded with server-side `generate_series` in "
        f"{rep['load_s']:.0f} s, not counted. `calibrated_values` ends at "
        f"{rep['cv_rows']:,} rows, {rep['cv_bytes'] / 2**30:.1f} GiB. Median hold-out RMSE of "
        f"the fits: {fit['median_rmse']:.2f} µg/m³ (synthetic data). PostgreSQL (shared_buffers "
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


def main(argv: list[str]) -> int:
    global READ_TIMEOUT_S
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="readings to reprocess")
    ap.add_argument("--devices", type=int, default=100, help="devices they belong to")
    ap.add_argument(
        "--numpy-rows", type=int, default=1_000_000, help="readings of the numpy-path comparison"
    )
    ap.add_argument(
        "--read-timeout", type=int, default=READ_TIMEOUT_S, help="seconds a reader may take"
    )
    ap.add_argument(
        "--shared-buffers", default="", help="e.g. 1GB; default: the server's (128 MB fresh)"
    )
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    rows, devices, numpy_rows = args.rows, args.devices, args.numpy_rows
    READ_TIMEOUT_S = args.read_timeout
    shared_buffers = args.shared_buffers
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
    if not args.no_write:
        write_section(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
