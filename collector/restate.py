"""Re-run the series checks (stuck, spike) over stored readings: ``luftnett qc restate``.

The collector restates a batch's stored neighbours as it writes (docs/quality.md); readings
stored by an earlier version, which set a reading's flags once, keep what they got until a
batch lands beside them. This walks each sensor series of a device (its readings of one
sensor model and serial) in (ts, seq) order, a page at a time, checks each reading against
:attr:`~luftnett.collector.qc.QcConfig.wide_n` neighbours on either side (the rows of the
page's edges are checked again with the next page), and updates those whose result changed,
with their hourly rollups: one transaction per page, holding the device's row lock (as the
writer does) for that page only.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import pq, sql

from luftnett.collector import qc
from luftnett.collector.rollups import lock_devices, refresh_hours
from luftnett.collector.writer import RESTATE, restatement_params
from luftnett.db.schema import VALUE_COLUMNS

__all__ = ["RestateResult", "restate_device"]

# a device's sensors: (model, serial) of its readings
_SENSORS = """
SELECT DISTINCT sensor_model, sensor_serial FROM readings WHERE device_id = %s
ORDER BY 1, 2 NULLS FIRST
"""
# one page of a sensor's series after (ts, seq); values as float8, NaN where missing
_PAGE = sql.SQL(
    """
    SELECT seq, ts, extract(epoch FROM ts)::float8, qc_checks, flags, {vals}
    FROM readings
    WHERE device_id = %(device)s AND (ts, seq) > (%(ts)s, %(seq)s)
      AND sensor_model = %(model)s AND sensor_serial IS NOT DISTINCT FROM %(serial)s
    ORDER BY ts, seq
    LIMIT %(n)s
    """
).format(
    vals=sql.SQL(", ").join(
        sql.SQL("coalesce({}::float8, 'NaN')").format(sql.Identifier(q)) for q in VALUE_COLUMNS
    )
)

# the sensor's (m+1)-th reading before ``since``: the walk starts after it, with m readings
# of context
_START = """
SELECT ts, seq FROM readings WHERE device_id = %(device)s AND ts < %(since)s
  AND sensor_model = %(model)s AND sensor_serial IS NOT DISTINCT FROM %(serial)s
ORDER BY ts DESC, seq DESC OFFSET %(m)s LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class RestateResult:
    device_id: str
    readings: int  # readings in the range, checked
    restated: int  # readings whose stuck or spike result changed
    hours: int  # hourly rollups recomputed (validity moved)


def restate_device(
    conn: psycopg.Connection[Any],
    device_id: str,
    cfg: qc.QcConfig = qc.DEFAULT_QC,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> RestateResult:
    """Restate the stuck and spike results of one device's readings with ``ts`` in
    ``[since, until)`` (default: all). The walk starts ``wide_n`` readings before ``since`` and
    ends once it has passed ``until``.

    One transaction per page, committed before the next (``conn`` must not be in a
    transaction: ValueError; an autocommit connection suits), holding the device's row lock
    for that page only, so the collector's batches for the device wait one page at most. Each
    page reads its context again, so readings the collector stores between pages are seen (it
    restates their neighbours itself). ``progress(checked, restated)`` is called after each
    page but the last (the counts so far)."""
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        # its pages would be savepoints of the caller's transaction: every lock held to its end
        raise ValueError("restate_device commits page by page: call it outside a transaction")
    with conn.transaction():
        sensors = conn.execute(_SENSORS, (device_id,)).fetchall()
    walk = _Walk()
    for model, serial in sensors:
        _restate_sensor(conn, device_id, {"model": model, "serial": serial}, cfg, since, until,
                        page, progress, walk)  # fmt: skip
    return RestateResult(device_id, walk.checked, walk.restated, len(walk.hours))


@dataclass(slots=True)
class _Walk:
    """What a device's walk has checked and restated so far, over its sensors."""

    checked: int = 0
    restated: int = 0
    hours: set[tuple[str, datetime]] = field(default_factory=set)


def _restate_sensor(
    conn: psycopg.Connection[Any],
    device_id: str,
    sensor: dict[str, str | None],
    cfg: qc.QcConfig,
    since: datetime | None,
    until: datetime | None,
    page: int,
    progress: Callable[[int, int], None] | None,
    walk: _Walk,
) -> None:
    """:func:`restate_device` over one sensor's series (``sensor``: its model and serial)."""
    m = cfg.wide_n  # a reading this far from a window's cut end has its exact results
    names = [device_id]
    floor: tuple[datetime, int] = (datetime(1, 1, 1, tzinfo=UTC), -1)  # before any reading
    if since is not None:
        with conn.transaction():
            start = conn.execute(
                _START, {"device": device_id, "since": since, "m": m, **sensor}, prepare=False
            ).fetchone()
        if start is not None:
            floor = (start[0], int(start[1]))
    after = floor  # each window starts after this key
    done = floor  # the last reading restated (or, at first, the floor)
    lo = -np.inf if since is None else since.timestamp()
    hi = np.inf if until is None else until.timestamp()
    carried = 0  # rows of the last window the next one reads again
    while True:
        with conn.transaction():
            lock_devices(conn, names)
            params = {"device": device_id, "ts": after[0], "seq": after[1], "n": carried + page,
                      **sensor}  # fmt: skip
            # planned for these values each time (never a generic plan): with the sensor's
            # statistics the planner reads the device's readings in index order and stops at the
            # page's end; a plan blind to the values may sort all the device's readings instead
            rows = conn.execute(_PAGE, params, binary=True, prepare=False).fetchall()
            end = len(rows) < carried + page
            keys = [(r[1], int(r[0])) for r in rows]
            context = bisect.bisect_right(keys, done)  # rows already restated
            core_end = len(rows) if end else len(rows) - m
            past = False  # every reading before ``until`` done
            if core_end > context:
                n = len(rows)
                h = qc.SeriesColumns(
                    np.zeros(n, dtype=np.int64),
                    np.array([r[0] for r in rows], dtype=np.int64),
                    np.array([r[2] for r in rows], dtype=np.float64),
                    np.array([r[5:] for r in rows], dtype=np.float64).reshape(
                        n, len(VALUE_COLUMNS)
                    ),
                    np.zeros(n, dtype=np.int64),
                )
                empty = qc.SeriesColumns(h.dev[:0], h.seq[:0], h.t[:0], h.vals[:0], h.edge[:0])
                # the rows restated are m or more from a cut end of the window: no cut to mark
                a = qc.assess(h, empty, VALUE_COLUMNS, datetime.now(UTC), cfg)
                stored_c = np.array([r[3] for r in rows], dtype=np.int64)
                stored_f = np.array([r[4] for r in rows], dtype=np.int64)
                r = qc.restated(a, stored_c, stored_f)
                t = h.t[r.idx]
                mine = (r.idx >= context) & (r.idx < core_end) & (t >= lo) & (t < hi)
                r = qc.Restatement(r.idx[mine], r.checks[mine], r.flags[mine], False)
                p, moved = restatement_params(names, h, stored_f, r)
                if p:
                    conn.execute(RESTATE, p)
                    refresh_hours(conn, moved)
                    walk.hours.update(moved)
                walk.restated += int(r.idx.size)
                core_t = h.t[context:core_end]
                walk.checked += int(np.count_nonzero((core_t >= lo) & (core_t < hi)))
                done = keys[core_end - 1]
                past = bool(core_t[-1] >= hi)
        if end or past:
            break
        if progress is not None:
            progress(walk.checked, walk.restated)
        # the next window keeps m rows before the next core as context
        keep = max(core_end - m, 0)
        if keep:
            after = keys[keep - 1]
        carried = len(rows) - keep
