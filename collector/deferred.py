"""Calibration after the commit (``collector.calibration``: ``"deferred"`` always, ``"auto"``,
the default, while messages wait for the writer).

A stored reading is safe once its row is committed; its calibrated values are derived from
that row. So a collector writer commits and acknowledges a batch without them, and records in
the same transaction what it owes (:func:`queue_pending` into ``calibration_pending``,
migration 0052: each run of consecutive seqs per device, with its time span). The writer then
settles the debt from the rows it still holds in memory (:func:`calibrate_work`) whenever no
messages wait for it, or once the oldest debt is ``calibration_max_lag_s`` old, in a
transaction of its own that deletes the pending rows it settles together with writing their
values: a value is written at most once (primary key of ``calibrated_values``) and a pending
row is deleted only with its values. So a backlog is stored and acknowledged at the rate of
the readings path, and its calibrated values follow as soon as the writers have time.

What is not settled from memory — the collector was killed in between, its memory limit was
reached, a value was refused — is settled later from the stored readings
(:func:`calibrate_stored`, run periodically by every collector), by whichever claims it first
(``FOR UPDATE SKIP LOCKED``). Either way the values are those of the version in force at each
reading's time (:func:`~luftnett.collector.calibrate.calibrate_at_ingest` and
:func:`~luftnett.calibration.apply_db.calibrate_rows` apply the same rule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import CalibrationCache, calibrate_rows, write_calibrated
from luftnett.collector.arrays import int_array, number_array, text_array
from luftnett.collector.calibrate import calibrate_at_ingest
from luftnett.collector.columns import BatchColumns
from luftnett.db.schema import READING_COLUMNS

__all__ = [
    "QUEUE",
    "PendingWork",
    "calibrate_stored",
    "calibrate_work",
    "pending_summary",
    "queue_pending",
    "seq_runs",
]

log = logging.getLogger(__name__)


def seq_runs(
    names: Sequence[str],
    dev: np.ndarray,
    seq: np.ndarray,
    t: np.ndarray | None = None,
) -> list[tuple[Any, ...]]:
    """Runs of consecutive seqs of rows sorted by (device, seq): ``(device, lo, hi)``
    (half-open), with ``t_lo, t_hi`` (earliest and latest ts, epoch seconds) when ``t`` is
    given in the same order."""
    if not seq.size:
        return []
    brk = np.empty(seq.size, dtype=bool)
    brk[0] = True
    brk[1:] = (dev[1:] != dev[:-1]) | (seq[1:] != seq[:-1] + 1)
    r0 = np.flatnonzero(brk)
    r1 = np.append(r0[1:], seq.size) - 1
    cols: list[list[Any]] = [[names[d] for d in dev[r0].tolist()], seq[r0].tolist(),
                             (seq[r1] + 1).tolist()]  # fmt: skip
    if t is not None:
        cols += [np.minimum.reduceat(t, r0).tolist(), np.maximum.reduceat(t, r0).tolist()]
    return list(zip(*cols, strict=True))


@dataclass(slots=True)
class PendingWork:
    """Stored readings whose calibrated values are owed: their pending runs (the keys of
    ``calibration_pending``) and the readings themselves, as the writer's batch columns."""

    runs: list[tuple[str, int, int]]
    batch: BatchColumns
    since: float  # time.monotonic() when it was queued

    @property
    def readings(self) -> int:
        return len(self.batch)

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """The readings as rows in ``READING_COLUMNS`` order."""
        return self.batch.rows()


# The run's time span widened by a millisecond each way: epoch seconds as float8 round to the
# microsecond, and the span only narrows the index scan (seq selects the rows exactly).
#: records calibration debts: parameters from :func:`queue_pending`
QUEUE = """
INSERT INTO calibration_pending (device_id, seq_lo, seq_hi, ts_lo, ts_hi)
SELECT d, lo, hi, to_timestamp(t0 - 0.001), to_timestamp(t1 + 0.001)
FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::float8[], %s::float8[]) AS u(d, lo, hi, t0, t1)
"""


def queue_pending(
    batch: BatchColumns, runs: Sequence[tuple[Any, ...]]
) -> tuple[PendingWork, list[str]]:
    """What these new readings are owed: the :class:`PendingWork` the writer holds, and the
    parameters of :data:`QUEUE`, which records it in the caller's transaction. ``runs`` are
    their seq runs with time spans (:func:`seq_runs` with ``t``, as the writer's dedupe found
    them)."""
    dev, lo, hi, t0, t1 = zip(*runs, strict=True)
    params = [text_array(dev), int_array(lo), int_array(hi), number_array(t0), number_array(t1)]
    return PendingWork([r[:3] for r in runs], batch, time.monotonic()), params


_CLAIM = """
DELETE FROM calibration_pending p
USING unnest(%s::text[], %s::int8[]) AS k(d, lo)
WHERE p.device_id = k.d AND p.seq_lo = k.lo
RETURNING p.device_id, p.seq_lo
"""


def _only(work: PendingWork, runs: set[tuple[str, int, int]]) -> PendingWork:
    """The part of ``work`` in these of its runs."""
    b = work.batch
    code = {d: i for i, d in enumerate(b.names)}
    keep = np.zeros(len(b), dtype=bool)
    for d, lo, hi in runs:
        keep |= (b.dev == code[d]) & (b.seq >= lo) & (b.seq < hi)
    return PendingWork(sorted(runs), b.take(np.flatnonzero(keep)), work.since)


def calibrate_work(
    conn: psycopg.Connection[Any], works: Sequence[PendingWork], cache: CalibrationCache
) -> tuple[int, int]:
    """Settle what ``works`` owe from the rows in memory, in one transaction: claim their
    pending rows (a run another collector settled meanwhile is skipped) and write the values.
    Return (readings settled, values written)."""
    if not works:
        return 0, 0
    keys = [(d, lo) for w in works for d, lo, _ in w.runs]
    settled = written = 0
    with conn.transaction():
        claimed = set(
            map(tuple, conn.execute(_CLAIM, [list(c) for c in zip(*keys, strict=True)]).fetchall())
        )
        for work in works:
            mine = {r for r in work.runs if (r[0], r[1]) in claimed}
            if not mine:
                continue
            part = work if len(mine) == len(work.runs) else _only(work, mine)
            try:
                with conn.transaction():  # a savepoint: a value written meanwhile undoes only this
                    n = calibrate_at_ingest(conn, part.batch, cache)
            except psycopg.errors.UniqueViolation:
                # a reprocessing job wrote some of these values first: keep those, add the rest
                n = write_calibrated(conn, calibrate_rows(conn, part.rows, cache))
            settled += part.readings
            written += n
    return settled, written


_CLAIM_STORED = """
DELETE FROM calibration_pending
WHERE (device_id, seq_lo) IN (
    SELECT device_id, seq_lo FROM calibration_pending
    WHERE queued_at <= now() - make_interval(secs => %s)
    ORDER BY queued_at LIMIT %s
    FOR UPDATE SKIP LOCKED)
RETURNING device_id, seq_lo, seq_hi, ts_lo, ts_hi
"""
_STORED_ROWS = sql.SQL(
    """
    SELECT {cols} FROM readings r
    JOIN unnest(%s::text[], %s::int8[], %s::int8[], %s::timestamptz[], %s::timestamptz[])
        AS k(d, lo, hi, t0, t1)
      ON r.device_id = k.d AND r.ts >= k.t0 AND r.ts <= k.t1 AND r.seq >= k.lo AND r.seq < k.hi
    """
).format(cols=sql.SQL(", ").join(sql.Identifier("r", c) for c in READING_COLUMNS))


def calibrate_stored(
    conn: psycopg.Connection[Any],
    cache: CalibrationCache,
    older_than_s: float = 0.0,
    max_runs: int = 2000,
) -> tuple[int, int, int]:
    """Settle pending runs queued at least ``older_than_s`` ago from the stored readings, up to
    ``max_runs`` of them, in one transaction; runs another transaction holds are skipped.
    Return (runs settled, readings in them, values written); call again while it returns
    runs."""
    with conn.transaction():
        runs = conn.execute(_CLAIM_STORED, (older_than_s, max_runs)).fetchall()
        if not runs:
            return 0, 0, 0
        rows = conn.execute(_STORED_ROWS, [list(c) for c in zip(*runs, strict=True)]).fetchall()
        written = write_calibrated(conn, calibrate_rows(conn, rows, cache))
    return len(runs), len(rows), written


def pending_summary(conn: psycopg.Connection[Any]) -> tuple[int, int, float | None]:
    """(pending runs, readings in them, age in seconds of the oldest) right now."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(seq_hi - seq_lo), 0), "
        "extract(epoch FROM now() - min(queued_at))::float8 FROM calibration_pending"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), row[2]
