"""Reprocessing in the background, on a real PostgreSQL: the model as SQL agrees with numpy's
``apply`` for every family (hypothesis), activation queues a job that workers finish with
progress, old versions stay queryable, and a killed worker's part is redone without
duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from psycopg import sql

from luftnett.calibration.jobs import enqueue, job_status, run_workers
from luftnett.calibration.model import AH_TERM, CalibrationModel
from luftnett.calibration.sql_model import ModelSQL
from luftnett.calibration.store import activate, insert_version
from luftnett.cli import main

pytestmark = pytest.mark.e2e

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RTOL, ATOL = 1e-6, 1e-5  # values are stored as real (float32)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


# -- the model as SQL equals numpy ------------------------------------------------------------
def tidy(v: float) -> float:
    """Tiny magnitudes (1e-300 ...) as 0: their products underflow, which PostgreSQL refuses."""
    return 0.0 if abs(v) < 1e-9 else v


finite = st.floats(-50, 50, allow_nan=False).map(tidy)


@st.composite
def models(draw: st.DrawFn) -> CalibrationModel:
    """A model of any family (linear, multilinear with RH, T, absolute humidity and a
    cross-gas term, EPA-PA, κ-Köhler) and fit method (OLS or robust), with a random
    positive-semidefinite covariance."""
    family = draw(st.sampled_from(["linear", "multilinear", "epa-pa", "kohler"]))
    rh = temperature = None
    covariates: tuple[str, ...] = ()
    if family == "linear":
        terms: tuple[str, ...] = ("intercept", "sensor")
    elif family == "epa-pa":
        terms, covariates = ("intercept", "sensor", "rh_pct"), ("rh_pct",)
    elif family == "kohler":
        terms, rh = ("kappa", "intercept", "slope"), "rh_pct"
    else:
        extra = draw(st.lists(st.sampled_from(["rh_pct", "temperature_c", "no2_ppb", AH_TERM]),
                              min_size=1, max_size=4, unique=True))  # fmt: skip
        terms = ("intercept", "sensor", *extra)
        covariates = tuple(t for t in extra if t != AH_TERM)
        if AH_TERM in extra:
            rh, temperature = "rh_pct", "temperature_c"
    p = len(terms)
    coef = [draw(finite) for _ in range(p)]
    if family == "kohler":
        coef[0] = draw(st.floats(0.0, 1.0).map(tidy))  # κ
    a = np.array([[draw(st.floats(-2, 2).map(tidy)) for _ in range(p)] for _ in range(p)])
    sigma = a @ a.T * draw(st.sampled_from([1e-4, 1e-2, 1.0]))
    return CalibrationModel(
        family=family,  # type: ignore[arg-type]
        fit_method=draw(st.sampled_from(["ols", "huber"])),  # type: ignore[arg-type]
        terms=terms,
        coefficients=tuple(coef),
        covariance=tuple(tuple(float(v) for v in row) for row in sigma),
        residual_sd=draw(st.floats(0, 10).map(tidy)),
        sensor="pm25_ugm3",
        covariates=covariates,
        rh=rh,
        temperature=temperature,
    )


def maybe_missing(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(st.floats(lo, hi).map(tidy), st.just(float("nan")))


INPUTS = {
    "pm25_ugm3": maybe_missing(-5, 1000),
    "rh_pct": maybe_missing(-10, 110),  # outside 0-100 too: Köhler clips
    "temperature_c": maybe_missing(-40, 50),
    "no2_ppb": maybe_missing(-10, 300),
}


def sql_apply(
    conn: psycopg.Connection[Any], model: CalibrationModel, data: dict[str, list[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """value and u computed by PostgreSQL (float8, NULL as NaN), over arrays as columns."""
    names = list(data)
    m = ModelSQL(model, lambda n: sql.SQL("NULLIF(r.{}, 'NaN'::float8)").format(
        sql.Identifier(n)))  # fmt: skip
    cols = sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(n))
                              for n, e in m.columns)  # fmt: skip
    q = sql.SQL(
        "SELECT value, u FROM (SELECT ord, {value} AS value, {u} AS u FROM (SELECT r.ord, {cols} "
        "FROM unnest({arrays}) WITH ORDINALITY AS r({names}, ord) OFFSET 0) t) s ORDER BY ord"
    ).format(value=m.value, u=m.u, cols=cols,
             arrays=sql.SQL(", ").join(sql.SQL("%s::float8[]") for _ in names),
             names=sql.SQL(", ").join(map(sql.Identifier, names)))  # fmt: skip
    rows = conn.execute(q, [data[n] for n in names]).fetchall()
    value = np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=np.float64)
    u = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    return value, u


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models(), data=st.data())
def test_sql_model_equals_numpy_apply(
    conn: psycopg.Connection[Any], model: CalibrationModel, data: st.DataObject
) -> None:
    n = data.draw(st.integers(1, 12))
    cols = {k: data.draw(st.lists(s, min_size=n, max_size=n)) for k, s in INPUTS.items()}
    try:
        value, u = sql_apply(conn, model, cols)
    except (psycopg.errors.NumericValueOutOfRange, psycopg.errors.DivisionByZero):
        # where numpy gives ±inf or 0 from under/overflow PostgreSQL raises; the jobs redo
        # such a part with numpy (test_absurd_inputs_fall_back_to_numpy)
        event("PostgreSQL refused the arithmetic")
        return
    arr = {k: np.array(v) for k, v in cols.items()}
    with np.errstate(all="ignore"):
        ref = model.apply(arr["pm25_ugm3"], arr)
    ok = np.isfinite(ref.value) & np.isfinite(ref.u)
    # a reading gets a value on both paths or on neither (missing input: NaN / NULL)
    assert (np.isfinite(value) & np.isfinite(u)).tolist() == ok.tolist()
    # float8 on both sides; only the order of the sums differs
    assert np.all(np.abs(value[ok] - ref.value[ok]) <= 1e-9 * (1 + np.abs(ref.value[ok])))
    assert_allclose(u[ok], ref.u[ok], rtol=1e-7, atol=1e-9)


# -- jobs end to end --------------------------------------------------------------------------
def make_device(conn: psycopg.Connection[Any], n: int, sensor_model: str = "sds011") -> str:
    """A device with ``n`` readings every 10 minutes from T0 (PM2.5, RH, T; a few gaps)."""
    dev = uid("dev")
    conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)",
                 (dev, sensor_model))  # fmt: skip
    conn.execute(
        "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, pm25_ugm3, "
        "rh_pct, temperature_c, schema_version) "
        "SELECT %(d)s, i, %(t0)s + i * interval '10 minutes', 600, 10, %(m)s, "
        "(5 + 20 * random())::real, CASE WHEN i %% 97 = 5 THEN NULL ELSE (30 + 60 * random()) "
        "END::real, (-5 + 25 * random())::real, 1 FROM generate_series(0, %(n)s - 1) i",
        {"d": dev, "t0": T0, "m": sensor_model, "n": n},
    )
    return dev


def mlr(conn: psycopg.Connection[Any], dev: str, slope: float) -> int:
    model = CalibrationModel(
        family="multilinear", fit_method="ols",
        terms=("intercept", "sensor", "rh_pct", "temperature_c", AH_TERM),
        coefficients=(1.0, slope, -0.05, 0.1, 0.2),
        covariance=tuple(tuple(0.01 if i == j else 0.001 for j in range(5)) for i in range(5)),
        residual_sd=1.5, sensor="pm25_ugm3", covariates=("rh_pct", "temperature_c"),
        rh="rh_pct", temperature="temperature_c",
    )  # fmt: skip
    return insert_version(conn, model, pollutant="pm25", created_by="t", device_id=dev)


def values_of(
    conn: psycopg.Connection[Any], dev: str, version: int
) -> dict[int, tuple[float, float]]:
    rows = conn.execute(
        "SELECT seq, value, u FROM calibrated_values WHERE device_id = %s AND version_id = %s",
        (dev, version),
    ).fetchall()
    return {int(s): (float(v), float(u)) for s, v, u in rows}


def expected(conn: psycopg.Connection[Any], dev: str, version: int, since: datetime
             ) -> dict[int, tuple[float, float]]:  # fmt: skip
    from luftnett.calibration.store import get_version

    model = get_version(conn, version).model
    rows = conn.execute(
        "SELECT seq, pm25_ugm3, coalesce(rh_pct, 'NaN'), temperature_c FROM readings "
        "WHERE device_id = %s AND ts >= %s ORDER BY seq",
        (dev, since),
    ).fetchall()
    x = np.array([r[1] for r in rows], dtype=np.float64)
    cov = {"rh_pct": np.array([r[2] for r in rows], dtype=np.float64),
           "temperature_c": np.array([r[3] for r in rows], dtype=np.float64)}  # fmt: skip
    with np.errstate(all="ignore"):  # absurd inputs: inf, as the worker's numpy path
        out = model.apply(x, cov)
    return {int(r[0]): (float(out.value[i]), float(out.u[i]))
            for i, r in enumerate(rows) if np.isfinite(out.value[i])}  # fmt: skip


def assert_values(
    got: dict[int, tuple[float, float]], want: dict[int, tuple[float, float]]
) -> None:
    assert set(got) == set(want)
    keys = sorted(want)
    assert_allclose([got[k][0] for k in keys], [want[k][0] for k in keys], rtol=RTOL, atol=ATOL)
    assert_allclose([got[k][1] for k in keys], [want[k][1] for k in keys], rtol=RTOL, atol=ATOL)


def test_activation_job_writes_new_version_and_keeps_old(
    pg_url: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers' sessions in Oslo time, as on a server set up in Norway (PGTZ): the last
    # part's open end must read back (datetime.max did not: year 10000 in that zone)
    monkeypatch.setenv("PGTZ", "Europe/Oslo")
    dev = make_device(conn, 3000)  # ~21 days
    v1, v2 = mlr(conn, dev, 0.8), mlr(conn, dev, 0.6)
    a1 = activate(conn, v1, T0, "t")
    j1 = enqueue(conn, v1, "t", a1)
    assert job_status(conn, j1).state == "queued"
    seen: list[int] = []
    stats = run_workers(pg_url, workers=2, part_rows=500,
                        on_part=lambda r: seen.append(r.readings))  # fmt: skip
    st1 = job_status(conn, j1)
    assert (st1.state, st1.percent, st1.readings_total) == ("done", 100.0, 3000)
    assert st1.parts_total == len(seen) >= 6  # several parts, shared by two workers
    assert stats.readings == 3000
    old = values_of(conn, dev, v1)
    assert_values(old, expected(conn, dev, v1, T0))
    assert len(old) == 3000 - len(range(5, 3000, 97))  # readings without RH get no value

    # version 2 from day 10: only those readings get v2; v1's values stay ("as calibrated by v1")
    day10 = T0 + timedelta(days=10)
    a2 = activate(conn, v2, day10, "t")
    j2 = enqueue(conn, v2, "t", a2)
    run_workers(pg_url, workers=1, part_rows=700)
    assert job_status(conn, j2).percent == 100.0
    assert values_of(conn, dev, v1) == old
    assert_values(values_of(conn, dev, v2), expected(conn, dev, v2, day10))
    (n_cur, n_v2) = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE version_id = %s) FROM calibrated_current "
        "WHERE device_id = %s", (v2, dev)).fetchone()  # fmt: skip
    assert n_cur == len(old)
    assert n_v2 == len(values_of(conn, dev, v2))

    # the same version activated again: a new job finds the values there and adds only the
    # missing ones (here: 10 deleted, as if a part had been lost)
    conn.execute("DELETE FROM calibrated_values WHERE device_id = %s AND version_id = %s AND "
                 "seq BETWEEN 2000 AND 2009", (dev, v2))  # fmt: skip
    j3 = enqueue(conn, v2, "t", activate(conn, v2, day10, "t"))
    run_workers(pg_url, workers=1, part_rows=700)
    assert job_status(conn, j3).state == "done"
    paths = dict(conn.execute(
        "SELECT path, sum(values_written) FROM calibration_job_parts WHERE job_id = %s "
        "GROUP BY 1", (j3,)).fetchall())  # fmt: skip
    assert paths == {"all-present": 0, "sql-skip-existing": 10}
    assert_values(values_of(conn, dev, v2), expected(conn, dev, v2, day10))


def test_absurd_inputs_fall_back_to_numpy(pg_url: str, conn: psycopg.Connection[Any]) -> None:
    dev = make_device(conn, 50)
    # T = -243.04 °C: the Magnus exponent is about -6e8; numpy's exp gives 0, PostgreSQL's
    # raises "underflow"
    conn.execute("UPDATE readings SET temperature_c = -243.04 WHERE device_id = %s AND seq = 7",
                 (dev,))  # fmt: skip
    v = mlr(conn, dev, 1.0)
    job = enqueue(conn, v, "t", activate(conn, v, T0, "t"))
    run_workers(pg_url, workers=1)
    assert job_status(conn, job).state == "done"
    (path,) = conn.execute("SELECT path FROM calibration_job_parts WHERE job_id = %s",
                           (job,)).fetchone()  # fmt: skip
    assert path == "numpy"
    assert_values(values_of(conn, dev, v), expected(conn, dev, v, T0))


def test_non_finite_inputs_get_no_value(pg_url: str, conn: psycopg.Connection[Any]) -> None:
    dev = make_device(conn, 50)
    conn.execute("UPDATE readings SET pm25_ugm3 = 'Infinity' WHERE device_id = %s AND seq = 3",
                 (dev,))  # fmt: skip
    conn.execute("UPDATE readings SET rh_pct = 'NaN' WHERE device_id = %s AND seq = 4", (dev,))
    v = mlr(conn, dev, 1.0)
    job = enqueue(conn, v, "t", activate(conn, v, T0, "t"))
    run_workers(pg_url, workers=1)
    (path,) = conn.execute("SELECT path FROM calibration_job_parts WHERE job_id = %s",
                           (job,)).fetchone()  # fmt: skip
    assert path == "sql"
    got = values_of(conn, dev, v)
    assert not {3, 4} & set(got)
    assert_values(got, expected(conn, dev, v, T0))


def test_fleet_default_job_covers_devices_without_their_own(
    pg_url: str, conn: psycopg.Connection[Any]
) -> None:
    model_name = uid("fleet")[:20]
    devs = [make_device(conn, 200, model_name) for _ in range(3)]
    own = mlr(conn, devs[0], 2.0)
    activate(conn, own, T0 + timedelta(days=1), "t")  # device 0 has its own from day 1
    fleet = CalibrationModel(family="linear", fit_method="fixed", terms=("intercept", "sensor"),
                             coefficients=(0.0, 1.1), covariance=((0.0, 0.0), (0.0, 0.01)),
                             residual_sd=2.0, sensor="pm25_ugm3")  # fmt: skip
    vf = insert_version(conn, fleet, pollutant="pm25", created_by="t", kind="fleet-default",
                        sensor_model=model_name)  # fmt: skip
    job = enqueue(conn, vf, "t", activate(conn, vf, T0, "t"))
    run_workers(pg_url, workers=2, part_rows=100)
    assert job_status(conn, job).readings_total == 144 + 200 + 200  # device 0: day 0 only
    assert len(values_of(conn, devs[0], vf)) == 144
    assert len(values_of(conn, devs[1], vf)) == 200


def luftnett(pg_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LUFTNETT_DATABASE_URL": pg_url}
    return subprocess.Popen([sys.executable, "-m", "luftnett.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_killed_worker_resumes_without_duplicates(
    pg_url: str, conn: psycopg.Connection[Any]
) -> None:
    dev = make_device(conn, 2000)
    v = mlr(conn, dev, 0.9)
    job = enqueue(conn, v, "t", activate(conn, v, T0, "t"))
    # hold, uncommitted, the value of one reading on day 7: with parts of 2 days (288 readings)
    # the worker finishes parts 0-2 and then waits on it inside part 3
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("INSERT INTO calibrated_values VALUES (%s, 1000, 'pm25', %s, %s, 0, 0)",
                        (dev, v, T0))  # fmt: skip
        proc = luftnett(pg_url, "calibrate", "jobs", "run", "--part-rows", "300")
        deadline = time.monotonic() + 60
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'luftnett-calibrate-worker'"
            " AND wait_event_type = 'Lock'").fetchone():  # fmt: skip
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "worker never waited on the held value"
            time.sleep(0.05)
        assert job_status(conn, job).parts_done == 3
        done_before = job_status(conn, job).parts_done
        os.kill(proc.pid, signal.SIGKILL)  # a crash in the middle of a part
        proc.communicate()
        blocker.rollback()
    status = job_status(conn, job)
    assert status.state == "running"
    assert status.parts_done == done_before < status.parts_total
    # a new worker (the CLI, until idle) finishes the job
    res = CliRunner().invoke(main, ["calibrate", "jobs", "run", "--part-rows", "300"],
                             env={"LUFTNETT_DATABASE_URL": pg_url})  # fmt: skip
    assert res.exit_code == 0, res.output
    status = job_status(conn, job)
    assert (status.state, status.percent) == ("done", 100.0)
    (n, distinct) = conn.execute(
        "SELECT count(*), count(DISTINCT seq) FROM calibrated_values WHERE device_id = %s "
        "AND version_id = %s", (dev, v)).fetchone()  # fmt: skip
    assert n == distinct
    assert_values(values_of(conn, dev, v), expected(conn, dev, v, T0))


def test_cli_activate_starts_background_job_and_waits(
    pg_url: str, conn: psycopg.Connection[Any]
) -> None:
    dev = make_device(conn, 1500)
    v = mlr(conn, dev, 0.7)
    env = {"LUFTNETT_DATABASE_URL": pg_url}
    res = CliRunner().invoke(main, ["calibrate", "activate", str(v), "--from", "2024-01-01",
                                    "--wait"], env=env)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "reprocessing job" in res.stdout
    assert "100.0 %" in res.stdout
    assert_values(values_of(conn, dev, v), expected(conn, dev, v, T0))
    res = CliRunner().invoke(main, ["calibrate", "jobs", "--json"], env=env)
    assert res.exit_code == 0, res.output
    jobs = [json.loads(line) for line in res.stdout.splitlines()]
    mine = next(j for j in jobs if j["version_id"] == v)
    assert (mine["state"], mine["percent"], mine["readings_total"]) == ("done", 100.0, 1500)
    for k in ("created_at", "finished_at"):  # in UTC and Oslo time, whatever the session's
        utc, local = datetime.fromisoformat(mine[k]), datetime.fromisoformat(mine[f"{k}_local"])
        assert utc == local and utc.utcoffset() == timedelta(0) and local.utcoffset()


def test_api_shows_job_progress(api_url: str, pg_url: str, conn: psycopg.Connection[Any]) -> None:
    import httpx

    dev = make_device(conn, 300)
    v = mlr(conn, dev, 0.9)
    job = enqueue(conn, v, "t", activate(conn, v, T0, "t"))
    r = httpx.get(f"{api_url}/api/v1/calibration/jobs/{job}", timeout=10)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["percent"]) == ("queued", 0.0)
    run_workers(pg_url, workers=1)
    r = httpx.get(f"{api_url}/api/v1/calibration/jobs", params={"limit": 50}, timeout=10)
    mine = next(j for j in r.json() if j["job_id"] == job)
    assert (mine["state"], mine["percent"], mine["readings_done"]) == ("done", 100.0, 300)
    assert mine["scope"] == dev
    r = httpx.get(f"{api_url}/api/v1/calibration/jobs/999999999", timeout=10)
    assert r.status_code == 404


def test_activate_on_the_demo_database_finishes_the_job_before_it_stops() -> None:
    """No database configured and the demo not running: `calibrate activate` starts the
    demo's PostgreSQL for itself only, so it works the job in the foreground before stopping
    it (a detached worker would lose the database); --no-worker says who will."""
    import shutil
    import tempfile
    from pathlib import Path

    from luftnett.db.migrate import apply_migrations
    from luftnett.servers import EmbeddedPostgres

    home = Path(tempfile.mkdtemp(prefix="luftnett-cal-demo-"))
    home.chmod(0o755)
    pg = EmbeddedPostgres(home, fast=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}
    env["LUFTNETT_HOME"] = str(home)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "luftnett.cli", "calibrate", *args],
                              env=env, capture_output=True, text=True, timeout=180)  # fmt: skip

    try:
        with psycopg.connect(pg.start(), autocommit=True) as c:
            apply_migrations(c)
            dev = make_device(c, 1000)
            v, v2 = mlr(c, dev, 0.8), mlr(c, dev, 0.6)
        pg.stop()
        res = cli("activate", str(v), "--from", "2024-01-01")
        assert res.returncode == 0, res.stderr
        assert "worked here, in the foreground" in res.stdout, res.stdout
        assert "done" in res.stdout and "100.0 %" in res.stdout, res.stdout
        assert "background worker" not in res.stdout
        assert pg.running_port() is None  # the command stopped the database it started
        res = cli("activate", str(v2), "--from", "2024-01-04", "--no-worker")
        assert res.returncode == 0, res.stderr
        assert "`luftnett demo` or `luftnett calibrate jobs run` works the job" in res.stdout
        with psycopg.connect(pg.start(), autocommit=True) as c:
            assert_values(values_of(c, dev, v), expected(c, dev, v, T0))
            row = c.execute("SELECT job_id, state FROM calibration_jobs WHERE version_id = %s",
                            (v2,)).fetchone()  # fmt: skip
            assert row is not None and row[1] == "queued"
            job2 = int(row[0])
        pg.stop()
        # waiting for it on the stopped demo database works it, rather than waiting forever
        res = cli("jobs", "wait", str(job2))
        assert res.returncode == 0, res.stderr
        assert "in the foreground" in res.stdout and "100.0 %" in res.stdout, res.stdout
        with psycopg.connect(pg.start(), autocommit=True) as c:
            since = datetime(2024, 1, 4, tzinfo=UTC)
            assert_values(values_of(c, dev, v2), expected(c, dev, v2, since))
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_service_unit_command_works_jobs_and_stops_on_sigterm(
    pg_url: str, conn: psycopg.Connection[Any]
) -> None:
    """The ExecStart of deploy/systemd/luftnett-calibrate-jobs.service, as systemd runs it:
    it works a job queued while it runs, keeps polling, and exits 0 on SIGTERM."""
    from pathlib import Path

    unit = Path(__file__).resolve().parents[2] / "deploy/systemd/luftnett-calibrate-jobs.service"
    exec_start = next(ln.split("=", 1)[1] for ln in unit.read_text().splitlines()
                      if ln.startswith("ExecStart="))  # fmt: skip
    argv = exec_start.split()
    assert argv[0] == "/opt/luftnett/bin/luftnett" and "--forever" in argv
    env = {**os.environ, "LUFTNETT_DATABASE_URL": pg_url}
    proc = subprocess.Popen([sys.executable, "-m", "luftnett.cli", *argv[1:]], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        dev = make_device(conn, 800)
        v = mlr(conn, dev, 0.75)
        job = enqueue(conn, v, "t", activate(conn, v, T0, "t"))
        deadline = time.monotonic() + 60
        while job_status(conn, job).state != "done":
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the service never finished the job"
            time.sleep(0.2)
        assert proc.poll() is None  # --forever: still polling for the next job
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "0 failed parts" in out
    assert_values(values_of(conn, dev, v), expected(conn, dev, v, T0))


def test_server_crash_mid_job_loses_whole_parts_only() -> None:
    """Workers commit with synchronous_commit = off, so a server crash may lose commits that
    were already acknowledged. A part's values and its "done" mark are one transaction: after
    the crash every part is either done with all its values or pending with none, and the
    next worker finishes the job with each value exactly once."""
    import shutil
    import tempfile
    import threading
    from pathlib import Path

    from luftnett.db.migrate import apply_migrations
    from luftnett.servers import EmbeddedPostgres

    home = Path(tempfile.mkdtemp(prefix="luftnett-cal-crash-"))
    home.chmod(0o755)
    pg = EmbeddedPostgres(home)  # fsync on: a crash here is what a crash is in production
    try:
        url = pg.start()
        with psycopg.connect(url, autocommit=True) as c:
            apply_migrations(c)
            dev = make_device(c, 6000)
            v = mlr(c, dev, 0.85)
            job = enqueue(c, v, "t", activate(c, v, T0, "t"))
            stop = threading.Event()
            kw = {"part_rows": 200, "stop": stop}
            worker = threading.Thread(target=run_workers, args=(url, 2), kwargs=kw, daemon=True)
            worker.start()
            deadline = time.monotonic() + 60
            while job_status(c, job).parts_done < 4:
                assert time.monotonic() < deadline, "the workers never got going"
                time.sleep(0.01)
        pid = int((pg.datadir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown: no checkpoint, no WAL flush
        worker.join(30)
        stop.set()
        while pg.running_port() is not None:
            time.sleep(0.1)
        url = pg.start()  # crash recovery
        with psycopg.connect(url, autocommit=True) as c:
            parts = c.execute(
                "SELECT state, ts_from, ts_to, values_written FROM calibration_job_parts "
                "WHERE job_id = %s", (job,)).fetchall()  # fmt: skip
            # 4 parts were seen done before the crash, but with synchronous_commit = off the
            # crash may take any of them back: only "not all" is certain
            assert sum(p[0] == "done" for p in parts) < len(parts)
            for state, lo, hi, written in parts:
                (n,) = c.execute("SELECT count(*) FROM calibrated_values WHERE device_id = %s "
                                 "AND version_id = %s AND ts >= %s AND ts < %s",
                                 (dev, v, lo, hi)).fetchone() or (0,)  # fmt: skip
                assert n == (written if state == "done" else 0), (state, lo, n, written)
            run_workers(url, 1)
            assert job_status(c, job).state == "done"
            assert_values(values_of(c, dev, v), expected(c, dev, v, T0))
            row = c.execute(
                "SELECT count(*) - count(DISTINCT seq) FROM calibrated_values "
                "WHERE device_id = %s AND version_id = %s", (dev, v)).fetchone()  # fmt: skip
            assert row == (0,)
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)
