"""Calibration at ingest: the calibrated values of the readings a batch stores, in its
transaction, as columns.

The same rule and models as :func:`luftnett.calibration.apply_db.calibrate_rows` (the version
in force per device, pollutant, time and the reading's own sensor model, from
:class:`~luftnett.calibration.apply_db.CalibrationCache`), but built for the collector's hot
path: inputs are gathered per column with numpy, and the values go to ``calibrated_values`` in
one binary ``COPY`` whose records numpy lays out (grouped by the byte length of the device id,
so every record of a group has the same layout). The readings are new (the exactly-once ledger
said so), hence no value of theirs exists yet and no conflict handling is needed.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from luftnett.calibration.apply_db import POLLUTANT_COLUMNS, CalibrationCache
from luftnett.collector.columns import BatchColumns
from luftnett.db.schema import VALUE_COLUMNS

__all__ = ["calibrate_at_ingest"]

_VALUE_INDEX = {c: j for j, c in enumerate(VALUE_COLUMNS)}
_PG_TO_UNIX_US = 946_684_800_000_000
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_COPY = (
    "COPY calibrated_values (device_id, seq, pollutant, version_id, ts, value, u) "
    "FROM STDIN (FORMAT BINARY)"
)


def _records(
    dev: npt.NDArray[np.bytes_],
    pollutant: bytes,
    seq: npt.NDArray[np.int64],
    version: int,
    ts_pg: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    u: npt.NDArray[np.float64],
) -> bytes:
    """Binary COPY records of rows whose device ids all have the same byte length."""
    n, ld, lp = dev.size, dev.dtype.itemsize, len(pollutant)
    dt = np.dtype([
        ("nf", ">i2"), ("l0", ">i4"), ("dev", f"S{ld}"), ("l1", ">i4"), ("seq", ">i8"),
        ("l2", ">i4"), ("pol", f"S{lp}"), ("l3", ">i4"), ("ver", ">i8"), ("l4", ">i4"),
        ("ts", ">i8"), ("l5", ">i4"), ("val", ">f4"), ("l6", ">i4"), ("u", ">f4"),
    ])  # fmt: skip
    tmpl = np.zeros((), dtype=dt)  # the fixed parts of every record, set at once
    tmpl["nf"] = 7
    tmpl["l0"], tmpl["l1"], tmpl["l2"], tmpl["l3"] = ld, 8, lp, 8
    tmpl["l4"], tmpl["l5"], tmpl["l6"] = 8, 4, 4
    tmpl["pol"] = pollutant
    tmpl["ver"] = version
    rec = np.full(n, tmpl, dtype=dt)
    rec["dev"] = dev
    rec["seq"] = seq
    rec["ts"] = ts_pg
    rec["val"] = value
    rec["u"] = u
    return rec.tobytes()


def calibrate_at_ingest(
    conn: psycopg.Connection[Any], cols: BatchColumns, cache: CalibrationCache
) -> int:
    """Calibrate new readings and COPY their values; return how many values were written.
    Runs in the caller's transaction."""
    n = len(cols)
    if not n:
        return 0
    names = cols.names
    with cache.lock:
        cache.refresh(conn)
        cache.preload(conn, names)
        ts_us = cols.ts_us
        # the batch's (device, sensor model) pairs: a fleet default applies to its own model's
        # readings, so a box with an SDS011 and the NO2 module is two pairs
        n_t = len(cols.texts)
        pair = cols.dev * n_t + cols.model
        first = np.full(len(names) * n_t, np.iinfo(np.int64).max)
        np.minimum.at(first, pair, ts_us)  # each pair's first time in the batch
        # (pollutant, version) -> the pairs it calibrates over their whole batch (the usual
        # case: one fleet default in force since before it), and readings picked one by one
        whole: dict[tuple[str, int], list[int]] = {}
        groups: dict[tuple[str, int], list[npt.NDArray[np.int64]]] = {}
        for k in np.flatnonzero(first < np.iinfo(np.int64).max).tolist():
            d, sensor, t0 = k // n_t, str(cols.texts[k % n_t]), int(first[k])
            idx: npt.NDArray[np.int64] | None = None
            for pollutant in POLLUTANT_COLUMNS:
                res = cache.resolver(conn, names[d], pollutant)
                if not res.device.start.size:
                    fleet = res.fleet_of(sensor)
                    if not fleet.start.size:
                        continue  # nothing in force, ever
                    if fleet.start.size == 1 and t0 >= fleet.start[0]:
                        whole.setdefault((pollutant, int(fleet.version[0])), []).append(k)
                        continue
                if idx is None:
                    idx = np.flatnonzero(pair == k)
                versions = res.versions(ts_us[idx], sensor)
                if not versions.any():
                    continue
                for vid in np.unique(versions[versions > 0]).tolist():
                    groups.setdefault((pollutant, vid), []).append(idx[versions == vid])
        for key, pairs in whole.items():
            pick = np.zeros(len(names) * n_t, dtype=bool)
            pick[pairs] = True
            groups.setdefault(key, []).append(np.flatnonzero(pick[pair]))
        if not groups:
            return 0
        ts_pg = ts_us - _PG_TO_UNIX_US
        dev_bytes = [d.encode() for d in names]
        dev_len = np.array([len(b) for b in dev_bytes], dtype=np.int64)
        all_dev = np.array(dev_bytes)  # S<longest>; ids have no NUL bytes (contract pattern)
        extras: list[dict[str, Any]] | None = None
        chunks: list[bytes] = []
        written = 0
        for (pollutant, vid), parts in groups.items():
            idx = np.concatenate(parts) if len(parts) > 1 else parts[0]
            model = cache.model(conn, vid)
            inputs: dict[str, npt.NDArray[np.float64]] = {}
            for name in (model.sensor, *model.inputs):
                j = _VALUE_INDEX.get(name)
                if j is not None:
                    inputs[name] = cols.vals[idx, j]
                else:  # a quantity without a column of its own: from `extra`
                    if extras is None:
                        extras = [json.loads(e) if e else {} for e in cols.extra or [None] * n]
                    inputs[name] = np.array(
                        [extras[k].get(name) for k in idx.tolist()], dtype=np.float64
                    )
            out = model.apply(inputs[model.sensor], {k: inputs[k] for k in model.inputs})
            ok = np.isfinite(out.value) & np.isfinite(out.u)
            if not ok.any():
                continue
            sel = idx[ok]
            value, u = out.value[ok], out.u[ok]
            codes = cols.dev[sel]
            lengths = dev_len[codes]
            present = np.bincount(codes, minlength=len(names)) > 0
            for length in np.unique(dev_len[present]).tolist():
                at = np.flatnonzero(lengths == length)
                one = at.size == sel.size  # one id length (the usual batch): no copies
                chunks.append(
                    _records(
                        all_dev[codes if one else codes[at]].astype(f"S{length}"),
                        pollutant.encode(),
                        cols.seq[sel if one else sel[at]],
                        vid,
                        ts_pg[sel if one else sel[at]],
                        value if one else value[at],
                        u if one else u[at],
                    )
                )
            written += int(sel.size)
    if written:
        with conn.cursor() as cur, cur.copy(_COPY) as copy:
            copy.write(_HEADER + b"".join(chunks) + _TRAILER)
    return written
