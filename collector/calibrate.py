"""Calibration at ingest: the calibrated values of the readings a batch stores, in its
transaction, as columns.

The same rule and models as :func:`luftnett.calibration.apply_db.calibrate_rows` (the version
in force per device, pollutant and time, from :class:`~luftnett.calibration.apply_db.
CalibrationCache`), but built for the collector's hot path: inputs are gathered per column
with numpy, and the values go to ``calibrated_values`` in one binary ``COPY`` whose records
numpy lays out (grouped by the byte length of the device id, so every record of a group has
the same layout). The readings are new (the exactly-once ledger said so), hence no value of
theirs exists yet and no conflict handling is needed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from luftnett.calibration.apply_db import POLLUTANT_COLUMNS, CalibrationCache
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

__all__ = ["calibrate_at_ingest"]

_I_DEV, _I_SEQ, _I_TS, _I_EXTRA = (
    READING_COLUMNS.index(c) for c in ("device_id", "seq", "ts", "extra")
)
_COLUMN_INDEX = {c: READING_COLUMNS.index(c) for c in VALUE_COLUMNS}
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_PG_TO_UNIX_US = 946_684_800_000_000
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_COPY = (
    "COPY calibrated_values (device_id, seq, pollutant, version_id, ts, value, u) "
    "FROM STDIN (FORMAT BINARY)"
)


def _records(
    dev: list[bytes],
    pollutant: bytes,
    seq: npt.NDArray[np.int64],
    version: int,
    ts_pg: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    u: npt.NDArray[np.float64],
) -> bytes:
    """Binary COPY records of rows whose device ids all have the same byte length."""
    n, ld, lp = len(dev), len(dev[0]), len(pollutant)
    dt = np.dtype([
        ("nf", ">i2"), ("l0", ">i4"), ("dev", f"S{ld}"), ("l1", ">i4"), ("seq", ">i8"),
        ("l2", ">i4"), ("pol", f"S{lp}"), ("l3", ">i4"), ("ver", ">i8"), ("l4", ">i4"),
        ("ts", ">i8"), ("l5", ">i4"), ("val", ">f4"), ("l6", ">i4"), ("u", ">f4"),
    ])  # fmt: skip
    rec = np.empty(n, dtype=dt)
    rec["nf"] = 7
    rec["l0"], rec["l1"], rec["l2"], rec["l3"] = ld, 8, lp, 8
    rec["l4"], rec["l5"], rec["l6"] = 8, 4, 4
    rec["dev"] = dev
    rec["seq"] = seq
    rec["pol"] = pollutant
    rec["ver"] = version
    rec["ts"] = ts_pg
    rec["val"] = value
    rec["u"] = u
    return rec.tobytes()


def calibrate_at_ingest(
    conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]], cache: CalibrationCache
) -> int:
    """Calibrate new reading rows (``READING_COLUMNS`` order) and COPY their values; return
    how many values were written. Runs in the caller's transaction."""
    if not rows:
        return 0
    with cache.lock:
        cache.refresh(conn)
        by_device: dict[str, list[int]] = {}
        for k, r in enumerate(rows):
            by_device.setdefault(r[_I_DEV], []).append(k)
        ts_pg = np.fromiter(((r[_I_TS] - _PG_EPOCH) // _US for r in rows), np.int64, len(rows))
        ts_us = ts_pg + _PG_TO_UNIX_US
        groups: dict[tuple[str, int], list[npt.NDArray[np.int64]]] = {}
        for device_id, members in by_device.items():
            idx = np.array(members, dtype=np.int64)
            for pollutant in POLLUTANT_COLUMNS:
                versions = cache.resolver(conn, device_id, pollutant).versions(ts_us[idx])
                if not versions.any():
                    continue
                for vid in np.unique(versions[versions > 0]).tolist():
                    groups.setdefault((pollutant, vid), []).append(idx[versions == vid])
        if not groups:
            return 0
        columns: dict[str, npt.NDArray[np.float64]] = {}
        extras: list[dict[str, Any]] | None = None
        seq = np.fromiter((r[_I_SEQ] for r in rows), np.int64, len(rows))
        chunks: list[bytes] = []
        written = 0
        for (pollutant, vid), parts in groups.items():
            idx = np.concatenate(parts)
            model = cache.model(conn, vid)
            inputs: dict[str, npt.NDArray[np.float64]] = {}
            for name in (model.sensor, *model.inputs):
                col = _COLUMN_INDEX.get(name)
                if col is not None:
                    if name not in columns:
                        columns[name] = np.array([r[col] for r in rows], dtype=np.float64)
                    inputs[name] = columns[name][idx]
                else:  # a quantity without a column of its own: from `extra`
                    if extras is None:
                        extras = [json.loads(r[_I_EXTRA]) if r[_I_EXTRA] else {} for r in rows]
                    inputs[name] = np.array(
                        [extras[k].get(name) for k in idx.tolist()], dtype=np.float64
                    )
            out = model.apply(inputs[model.sensor], {k: inputs[k] for k in model.inputs})
            ok = np.isfinite(out.value) & np.isfinite(out.u)
            if not ok.any():
                continue
            sel = idx[ok]
            value, u = out.value[ok], out.u[ok]
            dev = [rows[k][_I_DEV].encode() for k in sel.tolist()]
            lengths = np.fromiter(map(len, dev), np.int64, len(dev))
            for length in np.unique(lengths).tolist():
                pick = np.flatnonzero(lengths == length)
                chunks.append(
                    _records(
                        [dev[j] for j in pick.tolist()],
                        pollutant.encode(),
                        seq[sel[pick]],
                        vid,
                        ts_pg[sel[pick]],
                        value[pick],
                        u[pick],
                    )
                )
            written += int(sel.size)
    if written:
        with conn.cursor() as cur, cur.copy(_COPY) as copy:
            copy.write(_HEADER + b"".join(chunks) + _TRAILER)
    return written
