"""Reprocessing jobs: recompute calibrated values after an activation, in the background.

:func:`enqueue` (called by ``luftnett calibrate activate``) adds a ``queued`` row to
``calibration_jobs`` (migration 0030). Workers (:func:`run_workers`, ``luftnett calibrate jobs
run``) then

1. **plan** a queued job: for each device in its scope (the version's device, or, for a fleet
   default, every device that has or had a sensor of its model: the readings of that model) the
   time ranges where the job's version is the one in force (same rule as
   ``luftnett_active_version``), cut into parts of about ``part_rows``
   readings (estimated from the seqs of its first and last reading, then equal time spans);
   the job becomes ``running`` with ``readings_total`` known;
2. **work** parts: each part is one transaction that claims the part (``FOR UPDATE SKIP
   LOCKED``, so several workers share a job), computes the values inside PostgreSQL with one
   set-based ``INSERT … SELECT`` (the model as SQL, :mod:`luftnett.calibration.sql_model`) and
   marks the part done. A killed worker's transaction rolls back and its part is pending
   again; nothing is written twice (the primary key of ``calibrated_values`` would refuse it)
   and nothing is skipped;
3. **finish**: when no part is left the job is ``done``.

Values of the same version written meanwhile (at ingest, or by an earlier job of the same
version) are kept: a part that finds any first inserts only the missing ones. Values of other
versions are never touched, so "as calibrated by version N" stays queryable. Where PostgreSQL
refuses the arithmetic (a float overflow or division by zero on absurd inputs, where numpy
returns ±inf) the part is redone with :meth:`CalibrationModel.apply`, which stays the
reference; values outside the range of ``real`` are not stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import CalibrationCache
from luftnett.calibration.jobs_part import write_part
from luftnett.calibration.model import CalibrationModel
from luftnett.errors import CalibrationError
from luftnett.timefmt import utc_local_fields

__all__ = [
    "DEFAULT_PART_ROWS",
    "STATUS_SQL",
    "JobStatus",
    "PartResult",
    "enqueue",
    "job_status",
    "list_jobs",
    "plan_next",
    "run_workers",
    "status_of",
    "work_next_part",
]

log = logging.getLogger(__name__)

DEFAULT_PART_ROWS = 200_000
APPLICATION_NAME = "luftnett-calibrate-worker"
#: an open end, after every reading: far enough in the future, and not datetime.max, whose
#: text in a session east of UTC (TimeZone Europe/Oslo) is in year 10000, which psycopg
#: cannot read back (a worker on such a server failed every part of a job's last stretch)
_INFINITY = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job's state and progress; a row of :data:`STATUS_SQL` in column order."""

    job_id: int
    version_id: int
    pollutant: str
    scope: str  # device id, or "sensor model X"
    state: str
    readings_total: int | None
    readings_done: int
    parts_total: int
    parts_done: int
    created_at: datetime
    finished_at: datetime | None
    error: str | None

    @property
    def percent(self) -> float:
        if self.state == "done":
            return 100.0
        if not self.readings_total:
            return 0.0
        return 100.0 * self.readings_done / self.readings_total

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "version_id": self.version_id, "pollutant": self.pollutant,
            "scope": self.scope, "state": self.state, "readings_total": self.readings_total,
            "readings_done": self.readings_done, "parts_total": self.parts_total,
            "parts_done": self.parts_done, "percent": round(self.percent, 1),
            **utc_local_fields("created_at", self.created_at),
            **utc_local_fields("finished_at", self.finished_at),
            "error": self.error,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class PartResult:
    job_id: int
    part_no: int
    device_id: str
    readings: int
    values: int
    path: str  # 'sql', 'sql-skip-existing', 'all-present' or 'numpy'


def enqueue(
    conn: psycopg.Connection[Any], version_id: int, created_by: str, activation_id: int | None
) -> int:
    """Queue the reprocessing of ``version_id``'s readings; returns the job id."""
    row = conn.execute(
        "INSERT INTO calibration_jobs (activation_id, version_id, created_by) "
        "VALUES (%s, %s, %s) RETURNING job_id",
        (activation_id, version_id, created_by),
    ).fetchone()
    assert row is not None
    return int(row[0])


#: status rows of jobs (``{where}`` a condition on ``j``, parameter ``limit``); the API's too
STATUS_SQL = """
SELECT j.job_id, j.version_id, v.pollutant,
       coalesce(v.device_id, 'sensor model ' || v.sensor_model) AS scope, j.state,
       j.readings_total, coalesce(sum(p.readings) FILTER (WHERE p.state = 'done'), 0)
       AS readings_done, count(p.part_no) AS parts_total,
       count(p.part_no) FILTER (WHERE p.state = 'done') AS parts_done, j.created_at,
       j.finished_at, coalesce(j.error, min(p.error)) AS error
FROM calibration_jobs j
JOIN calibration_versions v ON v.version_id = j.version_id
LEFT JOIN calibration_job_parts p ON p.job_id = j.job_id
WHERE {where}
GROUP BY j.job_id, v.version_id
ORDER BY j.job_id DESC
LIMIT %(limit)s
"""


def _status_rows(
    conn: psycopg.Connection[Any], where: sql.Composable, params: dict[str, Any]
) -> list[JobStatus]:
    q = sql.SQL(STATUS_SQL).format(where=where)
    return [status_of(tuple(r)) for r in conn.execute(q, {"limit": 1000, **params}).fetchall()]


def status_of(r: tuple[Any, ...]) -> JobStatus:
    """A :class:`JobStatus` from a row of :data:`STATUS_SQL`."""
    return JobStatus(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), int(r[7]),
                     int(r[8]), r[9], r[10], r[11])  # fmt: skip


def job_status(conn: psycopg.Connection[Any], job_id: int) -> JobStatus:
    rows = _status_rows(conn, sql.SQL("j.job_id = %(job)s"), {"job": job_id})
    if not rows:
        raise CalibrationError(
            f"no reprocessing job {job_id}; `luftnett calibrate jobs` lists them"
        )
    return rows[0]


def list_jobs(
    conn: psycopg.Connection[Any], open_only: bool = False, limit: int = 20
) -> list[JobStatus]:
    where = sql.SQL("j.state IN ('queued', 'running')" if open_only else "true")
    return _status_rows(conn, where, {})[:limit]


# -- planning ---------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the activation resolver counts µs from here


def _windows(
    conn: psycopg.Connection[Any], cache: CalibrationCache, device_id: str, pollutant: str,
    version_id: int, sensor_model: str | None,
) -> list[tuple[datetime, datetime]]:  # fmt: skip
    """Time ranges [from, to) where ``version_id`` is in force for the device's readings (of
    ``sensor_model`` for a fleet default; every reading for the device's own version)."""
    resolver = cache.resolver(conn, device_id, pollutant)
    fleet = resolver.fleet_of(sensor_model) if sensor_model is not None else None
    starts_us = sorted({*resolver.device.start.tolist(),
                        *(fleet.start.tolist() if fleet is not None else ())})  # fmt: skip
    if not starts_us:
        return []
    us = np.array(starts_us, np.int64)
    if sensor_model is not None:
        ver = resolver.versions(us, sensor_model)
    else:
        ver = np.zeros(us.shape, dtype=np.int64)
        resolver.device.fill(us, ver)
    starts = [_EPOCH + timedelta(microseconds=t) for t in starts_us]
    out: list[tuple[datetime, datetime]] = []
    for i, t in enumerate(starts):
        if int(ver[i]) != version_id:
            continue
        end = starts[i + 1] if i + 1 < len(starts) else _INFINITY
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], end)
        else:
            out.append((t, end))
    return out


# the first and the last reading of a window, (ts, seq): two probes of the (device_id, ts)
# index, whatever the number of readings between them
_SPAN = """
SELECT f.ts, f.seq, l.ts, l.seq
FROM (SELECT ts, seq FROM readings WHERE device_id = %(d)s AND ts >= %(lo)s AND ts < %(hi)s
      ORDER BY ts LIMIT 1) f,
     (SELECT ts, seq FROM readings WHERE device_id = %(d)s AND ts >= %(lo)s AND ts < %(hi)s
      ORDER BY ts DESC LIMIT 1) l
"""


def _parts_of(
    conn: psycopg.Connection[Any], device_id: str, lo: datetime, hi: datetime, part_rows: int
) -> Iterator[tuple[datetime, datetime, int]]:
    """(from, to, readings) tiling [lo, hi) in parts of about ``part_rows`` readings, in equal
    time spans between the first and the last reading.

    The readings are not counted: a device numbers them (seq strictly increasing, never
    reused), so the window holds at most last seq − first seq + 1 of them, exactly that many
    when none was lost. Counting them read every reading of the window (about 80 ms per
    100,000 on the benchmark machine, 9 s of a 10 M-reading job before any part could start);
    the seqs of the first and last reading are two index probes. ``readings`` of a part is its
    share of that estimate; it only sizes parts and shows progress, the parts' time ranges
    decide which readings are calibrated."""
    row = conn.execute(_SPAN, {"d": device_id, "lo": lo, "hi": hi}).fetchone()
    if row is None:
        return
    first, last = row[0], row[2]
    count = abs(int(row[3]) - int(row[1])) + 1
    n = -(-count // part_rows)
    inner = [first + (last - first) * k / n for k in range(1, n)]
    edges = [lo, *sorted({t for t in inner if lo < t < hi}), hi]
    parts = len(edges) - 1
    for k in range(parts):
        yield edges[k], edges[k + 1], count // parts + (1 if k < count % parts else 0)


def plan_next(conn: psycopg.Connection[Any], part_rows: int = DEFAULT_PART_ROWS) -> int | None:
    """Plan the oldest queued job (skipping one another worker is planning); its id or None."""
    from luftnett.calibration.store import get_version

    with conn.transaction():
        row = conn.execute(
            "SELECT job_id, version_id FROM calibration_jobs WHERE state = 'queued' "
            "ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED"
        ).fetchone()
        if row is None:
            return None
        job_id, version_id = int(row[0]), int(row[1])
        v = get_version(conn, version_id)
        if v.device_id is not None:
            devices = [v.device_id]
        else:
            # every device with (or that had) a sensor of the model: its readings of that model
            devices = [r[0] for r in conn.execute(
                "SELECT device_id FROM devices WHERE sensor_model = %(m)s UNION "
                "SELECT device_id FROM device_sensors WHERE sensor_model = %(m)s ORDER BY 1",
                {"m": v.sensor_model},
            )]  # fmt: skip
        cache = CalibrationCache(fleet_checked=True)
        parts: list[tuple[Any, ...]] = []
        for dev in devices:
            for lo, hi in _windows(conn, cache, dev, v.pollutant, version_id, v.sensor_model):
                for p in _parts_of(conn, dev, lo, hi, part_rows):
                    parts.append((job_id, len(parts), dev, *p))
        if parts:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO calibration_job_parts (job_id, part_no, device_id, ts_from, "
                    "ts_to, readings) VALUES (%s, %s, %s, %s, %s, %s)",
                    parts,
                )
        total = sum(int(p[5]) for p in parts)
        conn.execute(
            "UPDATE calibration_jobs SET state = %s, readings_total = %s, "
            "planned_at = clock_timestamp(), "
            "finished_at = CASE WHEN %s THEN clock_timestamp() END WHERE job_id = %s",
            ("running" if parts else "done", total, not parts, job_id),
        )
    log.info("planned reprocessing job", extra={"job_id": job_id, "parts": len(parts),
                                                 "readings": total})  # fmt: skip
    return job_id


# -- working ----------------------------------------------------------------------------------
_CLAIM = """
SELECT p.job_id, p.part_no, p.device_id, p.ts_from, p.ts_to, p.readings, j.version_id
FROM calibration_job_parts p JOIN calibration_jobs j ON j.job_id = p.job_id
WHERE p.state = 'pending' AND j.state = 'running'
ORDER BY p.job_id, p.part_no
LIMIT 1
FOR UPDATE OF p SKIP LOCKED
"""


@dataclass
class _Models:
    #: version -> (its model, pollutant, sensor model: None for a device's own version)
    by_version: dict[int, tuple[CalibrationModel, str, str | None]]

    def get(
        self, conn: psycopg.Connection[Any], version_id: int
    ) -> tuple[CalibrationModel, str, str | None]:
        if version_id not in self.by_version:
            from luftnett.calibration.store import get_version

            v = get_version(conn, version_id)
            self.by_version[version_id] = (v.model, v.pollutant, v.sensor_model)
        return self.by_version[version_id]


def work_next_part(
    conn: psycopg.Connection[Any], models: _Models | None = None
) -> PartResult | None:
    """Claim one pending part, compute and write its values, mark it done; None if none.

    A part that fails (other than by a lost connection) is marked failed, and so is its job,
    in the claiming transaction; :class:`CalibrationError` says why."""
    models = models if models is not None else _Models({})
    error: str | None = None
    with conn.transaction():
        row = conn.execute(_CLAIM).fetchone()
        if row is None:
            return None
        job_id, part_no, dev, lo, hi, n, vid = row
        try:
            with conn.transaction():
                model, pollutant, sensor_model = models.get(conn, int(vid))
                params = {"d": dev, "lo": lo, "hi": hi, "p": pollutant, "v": int(vid),
                          "m": sensor_model}  # fmt: skip
                values, path = write_part(conn, model, params)
                conn.execute(
                    "UPDATE calibration_job_parts SET state = 'done', values_written = %s, "
                    "path = %s, finished_at = now() WHERE job_id = %s AND part_no = %s",
                    (values, path, job_id, part_no),
                )
        except (psycopg.errors.QueryCanceled, psycopg.OperationalError):
            raise  # the worker stops; the part stays pending for the next one
        except (psycopg.Error, CalibrationError) as exc:
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            _fail(conn, job_id, part_no, error)
    if error is not None:
        raise CalibrationError(f"job {job_id} part {part_no} ({dev}) failed: {error}")
    conn.execute(
        "UPDATE calibration_jobs SET state = 'done', finished_at = clock_timestamp() "
        "WHERE job_id = %s "
        "AND state = 'running' AND NOT EXISTS (SELECT 1 FROM calibration_job_parts "
        "WHERE job_id = %s AND state <> 'done')",
        (job_id, job_id),
    )
    if not conn.autocommit:
        conn.commit()
    return PartResult(int(job_id), int(part_no), dev, int(n), values, path)


def _fail(conn: psycopg.Connection[Any], job_id: int, part_no: int, error: str) -> None:
    conn.execute(
        "UPDATE calibration_job_parts SET state = 'failed', error = %s, finished_at = now() "
        "WHERE job_id = %s AND part_no = %s",
        (error, job_id, part_no),
    )
    conn.execute(
        "UPDATE calibration_jobs SET state = 'failed', error = %s, finished_at = now() "
        "WHERE job_id = %s",
        (f"part {part_no}: {error}", job_id),
    )


# -- workers ----------------------------------------------------------------------------------
@dataclass
class WorkerStats:
    parts: int = 0
    readings: int = 0
    values: int = 0
    jobs_planned: int = 0
    errors: int = 0


def _open_jobs(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM calibration_jobs WHERE state IN ('queued', 'running'))"
    ).fetchone()
    return bool(row and row[0])


def _worker(
    url: str,
    stats: WorkerStats,
    lock: threading.Lock,
    stop: threading.Event,
    until_idle: bool,
    poll_s: float,
    part_rows: int,
    on_part: Callable[[PartResult], None] | None,
) -> None:
    models = _Models({})
    try:
        conn = psycopg.connect(url, autocommit=True, application_name=APPLICATION_NAME)
    except psycopg.OperationalError as exc:
        log.error("worker cannot connect", extra={"error": str(exc).splitlines()[0]})
        with lock:
            stats.errors += 1
        return
    with conn:
        # a backend whose worker died stops at the next check instead of finishing its part
        conn.execute("SET client_connection_check_interval = '1s'")
        # a commit lost in a server crash only loses a part's "done" with its values: the
        # part is pending again and redone, so the worker need not wait for the WAL flush
        conn.execute("SET synchronous_commit = off")
        # parts planned before 2026-11-24 end at datetime.max, which reads back only in UTC
        conn.execute("SET TIME ZONE 'UTC'")
        while not stop.is_set():
            try:
                res = work_next_part(conn, models)
            except CalibrationError as exc:
                log.error("reprocessing part failed", extra={"error": str(exc)})
                with lock:
                    stats.errors += 1
                continue
            except psycopg.OperationalError as exc:  # the part stays pending
                log.error("worker lost the database", extra={"error": str(exc)})
                with lock:
                    stats.errors += 1
                return
            if res is not None:
                with lock:
                    stats.parts += 1
                    stats.readings += res.readings
                    stats.values += res.values
                if on_part is not None:
                    on_part(res)
                continue
            if plan_next(conn, part_rows) is not None:
                with lock:
                    stats.jobs_planned += 1
                continue
            if until_idle and not _open_jobs(conn):
                return
            stop.wait(poll_s)


def run_workers(
    url: str,
    workers: int = 1,
    *,
    until_idle: bool = True,
    poll_s: float = 1.0,
    part_rows: int = DEFAULT_PART_ROWS,
    stop: threading.Event | None = None,
    on_part: Callable[[PartResult], None] | None = None,
) -> WorkerStats:
    """Work jobs with ``workers`` connections (threads) until none is open (``until_idle``)
    or ``stop`` is set; returns what was done."""
    stats = WorkerStats()
    lock = threading.Lock()
    stop = stop or threading.Event()
    threads = [
        threading.Thread(
            target=_worker,
            args=(url, stats, lock, stop, until_idle, poll_s, part_rows, on_part),
            name=f"calibrate-worker-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        stop.set()
        raise
    return stats


def wait_for(
    conn: psycopg.Connection[Any],
    job_id: int,
    on_progress: Callable[[JobStatus], None] | None = None,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
) -> JobStatus:
    """Poll a job until it is done or failed (or ``timeout_s`` passes); its last status."""
    t0 = time.monotonic()
    while True:
        st = job_status(conn, job_id)
        if on_progress is not None:
            on_progress(st)
        if st.state in ("done", "failed"):
            return st
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            return st
        time.sleep(poll_s)
