"""The command line as a user runs it: real subprocesses, real servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from luftnett.servers import free_port

pytestmark = pytest.mark.e2e


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}
    env.update(extra)
    return env


def _luftnett(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "luftnett.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_db_migrate_twice_is_a_noop(fresh_db_url: str) -> None:
    env = _env(LUFTNETT_DATABASE_URL=fresh_db_url)
    first = _luftnett("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_core" in first.stdout
    with psycopg.connect(fresh_db_url) as conn:
        before = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    second = _luftnett("db", "migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout
    with psycopg.connect(fresh_db_url) as conn:
        after = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert after == before and len(after) >= 2
    status = _luftnett("db", "status", env=env)
    assert status.returncode == 0 and "0 pending" in status.stdout


def test_bad_database_url_is_one_clear_line() -> None:
    res = _luftnett("db", "migrate", env=_env(LUFTNETT_DATABASE_URL="localhost:5432"))
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: setting database_url")
    assert "postgresql://" in res.stderr and "Traceback" not in res.stderr


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def test_demo_serves_readings_and_leaves_no_process_behind() -> None:
    home = Path(tempfile.mkdtemp(prefix="luftnett-demo-test-"))
    home.chmod(0o755)
    port = free_port()
    env = _env(LUFTNETT_HOME=str(home), LUFTNETT_API__PORT=str(port))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "luftnett.cli",
            "demo",
            "--duration",
            "30",
            "--devices",
            "3",
            "--window",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                devices = httpx.get(f"http://127.0.0.1:{port}/api/v1/devices", timeout=2).json()
                ids = [d["device_id"] for d in devices["devices"]]
                if ids:
                    body = httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/devices/{ids[0]}/readings", timeout=2
                    ).json()
                    models = {r["sensor_model"] for r in body["readings"]}
                    if models == {"sds011", "dgs-no2"}:  # each box: a PM and an NO2 sensor
                        served = body["readings"]
                        break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    try:
        assert proc.returncode == 0, out
        assert len(served) >= 2, out
        pm = [r["values"]["pm25_ugm3"] for r in served if r["sensor_model"] == "sds011"]
        no2 = [r["values"]["no2_ppb"] for r in served if r["sensor_model"] == "dgs-no2"]
        assert pm and all(v > 0 for v in pm), served
        assert no2 and all(isinstance(v, float) for v in no2), served
        # the demo's NO2 modules have been in the field for days: past their first hour
        assert all(r["valid"] for r in served if r["sensor_model"] == "dgs-no2"), served
        assert "open http://127.0.0.1:" in out
        assert "API key for staff actions in the demo: luftnett-demo-key" in out
        assert _processes_mentioning(str(home)) == []
        # the data stay for the next run and for other commands
        status = _luftnett("db", "status", env=_env(LUFTNETT_HOME=str(home)))
        assert status.returncode == 0, status.stderr
        n_readings = int(
            next(ln for ln in status.stdout.splitlines() if ln.startswith("readings")).split()[-1]
        )
        assert n_readings >= 2
        assert _processes_mentioning(str(home)) == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _valid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(sum(n_valid), 0) FROM rollup_hourly").fetchone()
    return int(row[0]) if row else -1


def test_qc_restate_flags_a_stuck_run_an_earlier_version_left_half_flagged(
    fresh_db_url: str,
) -> None:
    """40 equal readings stored as an earlier version left them (only the 30th on flagged
    stuck): `luftnett qc restate` flags all 40, says so per device, and a second run finds
    nothing to change."""
    from datetime import UTC, datetime, timedelta

    from luftnett.collector.rollups import refresh
    from luftnett.collector.validate import validate_message
    from luftnett.collector.writer import Writer
    from luftnett.contracts import mqtt as contract
    from luftnett.db.migrate import apply_migrations

    with psycopg.connect(fresh_db_url) as c:
        apply_migrations(c)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    readings = [
        contract.Reading(seq=s, ts=t0 + timedelta(minutes=s), window_s=60, n_samples=60,
                         values={"pm25_ugm3": 7.0, "pm10_ugm3": 10.0 + s})
        for s in range(40)
    ]  # fmt: skip
    payload = contract.encode(
        contract.ReadingsPayload(device_id="old-1", agent_version="t",
                                 sensor=contract.SensorInfo(model="sds011"), readings=readings)
    )  # fmt: skip
    with psycopg.connect(fresh_db_url) as conn:
        Writer(conn).write([validate_message("t", contract.readings_topic("t", "old-1"), payload)])
        conn.execute("UPDATE readings SET flags = flags & ~64 WHERE seq < 29")  # as before
        refresh(conn, "old-1")  # and the rollups as they had them: 29 valid
        conn.commit()
        assert _valid(conn) == 29
    env = _env(LUFTNETT_DATABASE_URL=fresh_db_url)
    first = _luftnett("qc", "restate", env=env)
    assert first.returncode == 0, first.stderr
    assert "old-1: 40 readings checked, 29 restated" in first.stdout
    assert "checked," not in first.stderr  # one page: no progress lines
    with psycopg.connect(fresh_db_url) as conn:
        stuck = conn.execute("SELECT count(*) FROM readings WHERE flags & 64 > 0").fetchone()
        assert stuck == (40,)
        assert _valid(conn) == 0  # the hourly rollups recomputed
    second = _luftnett("qc", "restate", "--device", "old-1", env=env)
    assert second.returncode == 0, second.stderr
    assert "old-1: 40 readings checked, 0 restated" in second.stdout
    unknown = _luftnett("qc", "restate", "--device", "nope", env=env)
    assert unknown.returncode == 1
    assert "no device 'nope'" in unknown.stderr
    # a long device: a progress line per page of 20,000 but the last on stderr, the summary on
    # stdout (a short one, above, has none)
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES ('long-1', 'sds011')")
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, schema_version) SELECT 'long-1', i, %s::timestamptz + "
            "i * interval '1 minute', 60, 60, 'sds011', i %% 7, i %% 11, 1 "
            "FROM generate_series(0, 44999) i",
            (t0,),
        )
        conn.commit()
    long = _luftnett("qc", "restate", "--device", "long-1", env=env)
    assert long.returncode == 0, long.stderr
    pages = [ln for ln in long.stderr.splitlines() if ln.startswith("  long-1: ")]
    assert pages == [
        "  long-1: 19,942 checked, 19,942 restated",  # a page less the wide_n rows of context
        "  long-1: 39,942 checked, 39,942 restated",
    ], long.stderr
    assert "long-1: 45,000 readings checked, 45,000 restated" in long.stdout
