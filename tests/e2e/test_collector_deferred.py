"""Calibration after the commit (``collector.calibration = "deferred"``): the readings are
committed first with a record of what they owe; the values written afterwards — from the rows in
memory, or from the stored rows after a crash — are exactly those calibration in the readings'
own transaction writes, each once, and the collector settles every debt by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from luftnett.calibration.apply_db import CalibrationCache, calibrate_rows, write_calibrated
from luftnett.collector.deferred import calibrate_stored, calibrate_work
from luftnett.collector.service import Collector
from luftnett.collector.validate import Accepted, Quarantined, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 2, 1, tzinfo=UTC)
ROOT = "luftnett"


def _payload(device_id: str, seqs: Sequence[int]) -> bytes:
    return contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011", serial="A1"),
            readings=[
                contract.Reading(
                    seq=s,
                    # one reading late: its ts lies before the run's others
                    ts=T0 + timedelta(minutes=s if s != 7 else -30),
                    window_s=60,
                    n_samples=60,
                    values={"pm25_ugm3": 4.0 + (s * 7) % 23, "pm10_ugm3": 9.0 + (s * 5) % 31},
                )
                for s in seqs
            ],
        )
    )


# seqs per message: a gap (13-19 missing) splits the device's readings into two runs
SEQS = [list(range(0, 10)), list(range(10, 13)), list(range(20, 40))]


def _items(devices: Sequence[str]) -> list[Accepted | Quarantined]:
    out = [
        validate_message(ROOT, contract.readings_topic(ROOT, d), _payload(d, seqs))
        for seqs in SEQS
        for d in devices
    ]
    assert all(isinstance(i, Accepted) for i in out)
    return out


def _values(conn: psycopg.Connection[Any], devices: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    """Calibrated values of the devices, keyed by (device's position, seq, pollutant)."""
    pos = {d: k for k, d in enumerate(devices)}
    rows = conn.execute(
        "SELECT device_id, seq, pollutant, version_id, ts, value, u FROM calibrated_values "
        "WHERE device_id = ANY(%s)",
        (list(devices),),
    ).fetchall()
    out = {(pos[r[0]], r[1], r[2]): r[3:] for r in rows}
    assert len(out) == len(rows), "a value written twice"
    return out


def _pending(conn: psycopg.Connection[Any], devices: Sequence[str]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT device_id, seq_lo, seq_hi FROM calibration_pending WHERE device_id = ANY(%s) "
        "ORDER BY 1, 2",
        (list(devices),),
    ).fetchall()


def _devices(prefix: str, n: int = 3) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{prefix}-{tag}-{k}" for k in range(n)]


N_READINGS = sum(len(s) for s in SEQS)  # per device


def test_deferred_values_equal_inline_ones(pg_url: str) -> None:
    inline, deferred = _devices("inl"), _devices("def")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        Writer(conn, calibration="inline").write(_items(inline))
        res = Writer(conn, calibration="deferred").write(_items(deferred))
        assert res.stored == 3 * N_READINGS
        # committed without values, with what they owe: two runs per device
        assert _values(conn, deferred) == {}
        runs = [(d, 0, 13) for d in deferred] + [(d, 20, 40) for d in deferred]
        assert _pending(conn, deferred) == sorted(runs)
        assert res.pending is not None and sorted(res.pending.runs) == sorted(runs)

        settled, written = calibrate_work(conn, [res.pending], CalibrationCache())
        assert settled == 3 * N_READINGS
        assert written == 2 * 3 * N_READINGS  # pm2.5 and pm10 of every reading
        assert _pending(conn, deferred) == []
        expected = _values(conn, inline)
        assert len(expected) == 2 * 3 * N_READINGS
        assert _values(conn, deferred) == expected


def test_debts_left_by_a_crash_are_settled_from_the_stored_rows(pg_url: str) -> None:
    inline, deferred = _devices("inl"), _devices("crash")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        Writer(conn, calibration="inline").write(_items(inline))
        res = Writer(conn, calibration="deferred").write(_items(deferred))
        assert res.pending is not None  # ... and the process dies: only the database knows
        cache = CalibrationCache()
        # queued just now: a running collector's writers settle those from memory first
        while calibrate_stored(conn, cache, older_than_s=3600)[0]:
            pass
        assert len(_pending(conn, deferred)) == 6
        assert _values(conn, deferred) == {}
        status = subprocess.run(
            [sys.executable, "-m", "luftnett.cli", "db", "status"],
            env={**os.environ, "LUFTNETT_DATABASE_URL": pg_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        owed = re.search(r"calibration owed: (\d+) readings in (\d+) runs", status.stdout)
        assert owed is not None, status.stdout
        assert int(owed[1]) >= 3 * N_READINGS and int(owed[2]) >= 6  # ours, at least
        while calibrate_stored(conn, cache, older_than_s=0, max_runs=4)[0]:
            pass
        assert _pending(conn, deferred) == []
        assert _values(conn, deferred) == _values(conn, inline)
        # the writer's memory, had it survived, finds nothing left to settle
        assert calibrate_work(conn, [res.pending], cache) == (0, 0)


def test_settling_keeps_values_written_meanwhile(pg_url: str) -> None:
    """A reprocessing job may write some of the values before the writer settles: those stay,
    the rest are added, none twice."""
    inline, deferred = _devices("inl"), _devices("meanwhile")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        Writer(conn, calibration="inline").write(_items(inline))
        res = Writer(conn, calibration="deferred").write(_items(deferred))
        assert res.pending is not None
        first = [r for r in res.pending.rows if r[0] == deferred[0]]
        assert write_calibrated(conn, calibrate_rows(conn, first, CalibrationCache())) == 2 * len(
            first
        )
        settled, written = calibrate_work(conn, [res.pending], CalibrationCache())
        assert settled == 3 * N_READINGS
        assert written == 2 * 2 * N_READINGS  # the other two devices' values
        assert _pending(conn, deferred) == []
        assert _values(conn, deferred) == _values(conn, inline)


@pytest.mark.parametrize("mode", ["deferred", "auto"])
def test_collector_settles_its_debts(
    pg_url: str,
    start_collector: Callable[..., Collector],
    topic_root: str,
    publish: Callable[[str, bytes], None],
    wait_until: Callable[..., None],
    mode: str,
) -> None:
    """Through the broker: every stored reading gets its values (deferred: soon after the
    commit; auto, messages arriving one by one: in the readings' own transaction), none is
    owed at the end."""
    devices = _devices("svc", 4)
    col = start_collector(flush_interval_s=0.2, calibration=mode)
    for seqs in SEQS:
        for d in devices:
            publish(contract.readings_topic(topic_root, d), _payload(d, seqs))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        count = "SELECT count(*) FROM {} WHERE device_id = ANY(%s)"
        n = len(devices) * N_READINGS
        wait_until(
            lambda: conn.execute(count.format("readings"), (devices,)).fetchone() == (n,),
            timeout=30,
            what="the readings",
        )
        wait_until(
            lambda: (
                conn.execute(count.format("calibrated_values"), (devices,)).fetchone() == (2 * n,)
            ),
            timeout=30,
            what="their calibrated values",
        )
        assert _pending(conn, devices) == []
        assert col.alive()
    # deferred settles every reading after its commit; auto, with no message waiting
    # for the writer, calibrates each batch in its own transaction
    assert col.counts["calibrated"] == (n if mode == "deferred" else 0)


def test_an_idle_collector_settles_debts_no_writer_holds_at_once(
    pg_url: str, start_collector: Callable[..., Collector], wait_until: Callable[..., None]
) -> None:
    """Debts only the database knows (a writer past its memory limit, a killed collector) are
    settled by the next maintenance round while the writers are idle, not after waiting
    3 x calibration_max_lag_s (here 180 s) as debts a busy writer may still settle."""
    inline, orphan = _devices("inl"), _devices("orphan")
    start_collector(calibration="deferred", calibration_max_lag_s=60)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        Writer(conn, calibration="inline").write(_items(inline))
        res = Writer(conn, calibration="deferred").write(_items(orphan))
        assert res.pending is not None  # held by no collector's memory
        assert len(_pending(conn, orphan)) == 6
        wait_until(
            lambda: _pending(conn, orphan) == [],
            timeout=20,
            what="the orphaned debts settled by the idle collector",
        )
        assert _values(conn, orphan) == _values(conn, inline)
