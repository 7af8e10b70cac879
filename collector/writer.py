"""Batched, exactly-once writes: one transaction per batch. The devices upsert locks each
device of the batch; the device's received seq ranges (``seq_ledger``, 0020) that overlap the
batch are read and the rows they hold dropped (and repeats inside the batch) if they are copies:
a row whose seq belongs to a reading at another time goes to quarantine (``seq_reused``: the
device numbers again from an earlier seq); a binary COPY writes the rest straight into
``readings`` and their seq ranges join the ledger.

In the same transaction: quality control sets ``flags`` and ``qc_checks`` on each row before the
COPY (one query per batch loads the stored neighbours the series checks need; those whose stuck
or spike result the batch changes are updated, and their hourly rollups recomputed when their
validity changed: :func:`~luftnett.collector.qc.assess`), the batch's
received/stored counts go to ``ingest_counts`` (the completeness ledger's duplicates), and the
stored readings are added to the hourly rollups (exact partial sums, not a recomputation).
Three round trips in all: one pipeline before the COPY (devices, ledger, neighbours,
annotations), the COPY, one pipeline after it (statements that need no answer, their parameters
computed while the server takes the COPY), instead of a dozen statements one after another.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import postgres, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from luftnett.calibration.apply_db import CalibrationCache
from luftnett.collector import qc
from luftnett.collector.arrays import int_array, number_array, text_array
from luftnett.collector.calibrate import calibrate_at_ingest
from luftnett.collector.columns import BatchColumns, Device, Series
from luftnett.collector.copybin import reading_records
from luftnett.collector.deferred import QUEUE, PendingWork, queue_pending, seq_runs
from luftnett.collector.ledger import INGEST, ingest_params
from luftnett.collector.rollups import (
    ADD_HOURS,
    MARK_DAYS,
    annotations_query,
    day_marks,
    days_of,
    hour_additions,
    hour_groups,
    refresh_days,
    refresh_hours,
)
from luftnett.collector.validate import Accepted, Quarantined
from luftnett.contracts.units import (
    FLAGS_VERSION,
    INVALIDATING_FLAGS,
    MAIN_SENSOR_RANKS,
    main_sensor_rank,
)
from luftnett.db.schema import (
    QC_COLUMNS,
    QUARANTINE_COLUMNS,
    READING_COLUMNS,
    VALUE_COLUMNS,
    WRITE_COLUMNS,
)

__all__ = ["COPY_TYPES", "RESTATE", "BatchResult", "Writer", "restatement_params"]

log = logging.getLogger(__name__)

_I_FLAGS = READING_COLUMNS.index("flags")

# COPY column order: the row up to extra, schema_version, then flags and QC (computed here)
_COPY_COLUMNS = (*READING_COLUMNS[: READING_COLUMNS.index("flags")], "schema_version", "flags",
                 *QC_COLUMNS)  # fmt: skip
assert sorted(_COPY_COLUMNS) == sorted(WRITE_COLUMNS)
assert READING_COLUMNS[-2:] == ("flags", "schema_version")
_COPY = sql.SQL("COPY readings ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in _COPY_COLUMNS)
)
# binary COPY types in WRITE_COLUMNS order; jsonb goes as bytea: its wire format is b"\\x01" + text
COPY_TYPES = {"device_id": "text", "seq": "int8", "ts": "timestamptz", "window_s": "float4",
               "n_samples": "int4", "sensor_model": "text", "sensor_serial": "text",
               "extra": "jsonb", "flags": "int8", "schema_version": "int2",
               "qc_checks": "int8", "qc_version": "int2"}  # fmt: skip
_TYPES = [COPY_TYPES.get(c, "float4") for c in _COPY_COLUMNS]
_I_SCHEMA = READING_COLUMNS.index("schema_version")
_BIN_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_BIN_TRAILER = struct.pack(">h", -1)

# Exactly once: the devices upsert (sorted) holds each device's row lock to the commit, so the
# writers of one device take turns; the next statement sees the ranges the previous one stored.
# The edge agent names the first reading's sensor in a message, so a box with a PM sensor, the
# NO2 module and a temperature/RH companion sends messages naming any of them. The device's
# sensor (a label: calibration and SensorThings go by each reading's own model) changes only to
# a sensor that ranks at least as high (units.main_sensor_rank: PM, then NO2, then companion):
# a replaced PM sensor names the box, the NO2 module beside it never does.
_RANK = "CASE WHEN {m} = ANY({r0}) THEN 0 WHEN {m} = ANY({r1}) THEN 1 ELSE 2 END"
_UPSERT_DEVICES = sql.SQL(
    """
INSERT INTO devices (device_id, sensor_model, sensor_serial, agent_version)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) ORDER BY 1
ON CONFLICT (device_id) DO UPDATE SET
    sensor_model = CASE WHEN {new} >= {old} THEN EXCLUDED.sensor_model
                        ELSE devices.sensor_model END,
    sensor_serial = CASE WHEN {new} >= {old}
                         THEN COALESCE(EXCLUDED.sensor_serial, devices.sensor_serial)
                         ELSE devices.sensor_serial END,
    agent_version = EXCLUDED.agent_version,
    last_seen = now()
"""
).format(**{
    k: sql.SQL(_RANK).format(m=sql.SQL(col), r0=sql.Literal(list(MAIN_SENSOR_RANKS[0])),
                             r1=sql.Literal(list(MAIN_SENSOR_RANKS[1])))
    for k, col in (("new", "EXCLUDED.sensor_model"), ("old", "devices.sensor_model"))
})  # fmt: skip
_LEDGER_ENSURE = (
    "INSERT INTO seq_ledger (device_id) SELECT unnest(%s::text[]) ORDER BY 1 ON CONFLICT DO NOTHING"
)
# the received seq ranges of each device that overlap the batch's [lo, hi]
_LEDGER_OVERLAP = """
SELECT b.device_id, lower(r), upper(r)
FROM unnest(%s::text[], %s::int8[], %s::int8[]) AS b(device_id, lo, hi)
JOIN seq_ledger l USING (device_id)
CROSS JOIN LATERAL unnest(l.received * int8multirange(int8range(b.lo, b.hi, '[]'))) AS r
"""
_LEDGER_ADD = """
UPDATE seq_ledger l SET received = l.received + n.m, updated_at = now()
FROM (SELECT d, range_agg(int8range(lo, hi)) AS m
      FROM unnest(%s::text[], %s::int8[], %s::int8[]) AS u(d, lo, hi) GROUP BY d) n
WHERE l.device_id = n.d
"""

# each sensor series' earliest and latest stored reading, and its readings' window (the longest
# in the batch that last moved its latest: device health allows two of them before a sensor is
# silent while its device reports through another); rows change only where a batch moves them
_SENSORS_SEEN = """
INSERT INTO device_sensors AS s (device_id, sensor_model, sensor_serial, first_ts, last_ts,
                                 window_s)
SELECT d, m, coalesce(n, ''), timestamptz 'epoch' + lo * interval '1 microsecond',
       timestamptz 'epoch' + hi * interval '1 microsecond', w
FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[], %s::float4[])
     AS u(d, m, n, lo, hi, w)
ORDER BY 1, 2, 3
ON CONFLICT (device_id, sensor_model, sensor_serial) DO UPDATE SET
    first_ts = least(s.first_ts, EXCLUDED.first_ts),
    last_ts = greatest(s.last_ts, EXCLUDED.last_ts),
    window_s = CASE WHEN EXCLUDED.last_ts >= s.last_ts THEN EXCLUDED.window_s ELSE s.window_s END
WHERE EXCLUDED.first_ts < s.first_ts OR EXCLUDED.last_ts > s.last_ts
"""

# The stored neighbours of each sensor series (device, sensor model and serial: a device with
# two sensors sends a reading of each per window) around the batch: its readings among the
# device's m before its first ts, all inside its span, and among the device's m after its last
# ts (ties on ts by seq: the window is a contiguous piece of the series; m per series), and
# how many of the device's readings each side held (m: the side is cut there). The sides read
# the device's readings in index order and then pick the sensor's: with the sensor in the
# scan's filter the planner sorts all the device's readings instead (it expects the filter to
# keep almost none). One query per batch, for the stuck and spike checks; one row per series
# (its code), each column one bytea of big-endian 8-byte values that numpy reads as it is.
_HISTORY = sql.SQL(
    """
    SELECT b.code, {aggs}, count(*) FILTER (WHERE r.side < 0),
           count(*) FILTER (WHERE r.side > 0)
    FROM unnest(%(devices)s::text[], %(models)s::text[], %(serials)s::text[], %(lo)s::float8[],
                %(hi)s::float8[], %(m)s::int8[], %(codes)s::int8[])
         AS b(device_id, model, serial, lo, hi, m, code)
    CROSS JOIN LATERAL (
        (SELECT {cols}, -1 AS side, {mine} AS mine FROM readings
         WHERE device_id = b.device_id AND ts < to_timestamp(b.lo)
         ORDER BY ts DESC, seq DESC LIMIT b.m)
        UNION ALL
        (SELECT {cols}, 0, true FROM readings WHERE device_id = b.device_id
         AND ts >= to_timestamp(b.lo) AND ts <= to_timestamp(b.hi) AND {mine})
        UNION ALL
        (SELECT {cols}, 1, {mine} FROM readings
         WHERE device_id = b.device_id AND ts > to_timestamp(b.hi)
         ORDER BY ts, seq LIMIT b.m)
    ) r
    GROUP BY b.code
    """
).format(
    cols=sql.SQL(", ").join(
        sql.Identifier(c) for c in ("seq", "ts", "qc_checks", "flags", *VALUE_COLUMNS)
    ),
    mine=sql.SQL("(sensor_model = b.model AND sensor_serial IS NOT DISTINCT FROM b.serial)"),
    aggs=sql.SQL(", ").join(
        sql.SQL("string_agg({}, '') FILTER (WHERE r.mine)").format(sql.SQL(e))
        for e in (
            "int8send(r.seq)",
            "float8send(extract(epoch FROM r.ts)::float8)",
            "int8send(r.qc_checks)",
            "int8send(r.flags)",
            *(f"float8send(coalesce(r.{q}::float8, 'NaN'))" for q in VALUE_COLUMNS),
        )
    ),
)

# stored neighbours restated by a batch (their series results changed); seq and ts (to the
# millisecond: the index is on (device_id, ts)) find each one row
RESTATE = """
UPDATE readings r SET qc_checks = u.c, flags = u.f, qc_version = %s
FROM unnest(%s::text[], %s::int8[], %s::float8[], %s::int8[], %s::int8[]) AS u(d, s, t, c, f)
WHERE r.device_id = u.d AND r.seq = u.s
  AND r.ts BETWEEN to_timestamp(u.t) - interval '1 millisecond'
               AND to_timestamp(u.t) + interval '1 millisecond'
"""

# duplicates by seq whose reading is not the stored one: (device, seq, µs since 1970) rows, by
# index, that no stored reading matches on all three (the index is on (device_id, ts))
_REUSED = """
SELECT k.i FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::int8[]) AS k(d, s, us, i)
WHERE NOT EXISTS (
    SELECT 1 FROM readings r
    WHERE r.device_id = k.d AND r.ts = timestamptz 'epoch' + k.us * interval '1 microsecond'
      AND r.seq = k.s)
"""

_INSERT_QUARANTINE = sql.SQL("INSERT INTO quarantine ({}) VALUES (%s, %s, %s, %s, %s)").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in QUARANTINE_COLUMNS)
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    received: int
    stored: int
    duplicates: int
    quarantined: int
    #: readings quarantined (``seq_reused``): their (device, seq) belongs to another stored
    #: reading (their messages are among ``quarantined``)
    reused: int = 0
    #: deferred calibration: what this batch's commit left to calibrate (None: nothing, or
    #: calibrated in the batch's own transaction)
    pending: PendingWork | None = None


@dataclass(frozen=True, slots=True)
class _History:
    """A batch's stored neighbours (``_HISTORY``): their series columns, their stored
    ``qc_checks`` and ``flags``, and per series code whether the query's limit cut the
    window before the batch's span or after it, and whether it holds fewer than the readings
    the series needs on a side it cut (``short``: its device's other sensors' readings took
    the side's places)."""

    cols: qc.SeriesColumns
    checks: np.ndarray
    flags: np.ndarray
    cut_before: np.ndarray
    cut_after: np.ndarray
    short: np.ndarray


#: at most this many of a device's readings a side per reading a sensor series needs there
_SPREAD_MAX = 8
#: devices a writer remembers the spread of (those with more sensors than a batch showed)
_SPREAD_REMEMBERED = 100_000


def _device_rows(accepted: Sequence[Accepted]) -> list[Device]:
    """Each device's row for ``_UPSERT_DEVICES``, sorted: its last message whose sensor ranks
    highest (``main_sensor_rank``: a PM sensor, then the NO2 module, then a companion)."""
    last: dict[str, Device] = {}
    for a in accepted:
        d = a.device
        if main_sensor_rank(d[1]) >= main_sensor_rank(last.get(d[0], d)[1]):
            last[d[0]] = d
    return sorted(last.values())


def _sensors_seen(series: Sequence[Series], code: np.ndarray, b: BatchColumns) -> list[str]:
    """``_SENSORS_SEEN``'s parameters for the readings ``b`` (``code``: their series, indexes
    into ``series``): each series' earliest and latest ts and the longest window of its
    readings."""
    k = len(series)
    lo = np.full(k, np.iinfo(np.int64).max)
    hi = np.full(k, np.iinfo(np.int64).min)
    window = np.zeros(k)
    np.minimum.at(lo, code, b.ts_us)
    np.maximum.at(hi, code, b.ts_us)
    np.maximum.at(window, code, b.window_s)
    at = np.flatnonzero(hi >= lo)  # the series with readings here
    return [
        text_array([series[i][0] for i in at.tolist()]),
        text_array([series[i][1] for i in at.tolist()]),
        text_array([series[i][2] for i in at.tolist()]),
        int_array(lo[at].tolist()),
        int_array(hi[at].tolist()),
        number_array(window[at].tolist()),
    ]


def _bytes(b: bytes | None) -> bytes:
    return b or b""  # a series with none of the side's readings: NULL


@dataclass(frozen=True, slots=True)
class _LedgerKeys:
    """A batch's rows in (device, seq) order (``order``; ``ds``, ``ss`` their device codes
    and seqs; ``new_dev`` where a device starts, ``starts``/``ends`` its rows), its devices
    (sorted) and ``spans``: the parameters of ``_LEDGER_OVERLAP`` (devices, lowest, highest
    seq)."""

    order: np.ndarray
    ds: np.ndarray
    ss: np.ndarray
    new_dev: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    devices: list[str]
    spans: list[str]


@dataclass(slots=True)
class _Tail:
    """What follows a batch's COPY: the statements that need no answer (one pipeline), the
    debt the writer holds, and the (device, hour) rollups the batch stored into; ``recompute``
    when a value beyond ``real``'s range keeps them from being added to (recomputed instead)."""

    statements: list[tuple[str | sql.Composed, Sequence[Any]]]
    pending: PendingWork | None = None
    hours: list[tuple[str, datetime]] | None = None
    recompute: bool = False
    #: (device, hour) of stored neighbours whose validity the batch's quality control changed
    restated_hours: list[tuple[str, datetime]] | None = None


def _hour_counts(
    groups: tuple[list[tuple[str, datetime]], np.ndarray],
) -> Counter[tuple[str, datetime]]:
    """Readings per (device, UTC hour of ts), from their :func:`hour_groups`."""
    keys, g = groups
    return Counter(dict(zip(keys, np.bincount(g, minlength=len(keys)).tolist(), strict=True)))


class _JsonbText(Dumper):
    """``extra`` arrives as JSON text: jsonb's binary wire format is a version byte + text."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


def _seq_text(seqs: list[int], most: int = 5) -> str:
    """Sorted seqs as ranges: ``3-7, 9`` (the first ``most`` ranges, then how many more)."""
    runs: list[list[int]] = []
    for x in seqs:
        if runs and x == runs[-1][1] + 1:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:most])
    return text + (f" and {len(runs) - most} more ranges" if len(runs) > most else "")


def restatement_params(
    names: list[str], cols: qc.SeriesColumns, stored_flags: np.ndarray, r: qc.Restatement
) -> tuple[list[Any], list[tuple[str, datetime]]]:
    """:data:`RESTATE`'s parameters for the stored readings ``cols`` (device codes into
    ``names``; their ``stored_flags``) whose series results ``r`` changed (none: an empty
    list), and the (device, UTC hour) of those whose validity changed (their rollups are
    recomputed)."""
    idx, checks, flags = r.idx, r.checks, r.flags
    if not idx.size:
        return [], []
    dev, t = cols.dev[idx], cols.t[idx]
    params = [FLAGS_VERSION, text_array([names[d] for d in dev.tolist()]),
              int_array(cols.seq[idx].tolist()), number_array(t.tolist()),
              int_array(checks.tolist()), int_array(flags.tolist())]  # fmt: skip
    moved = ((stored_flags[idx] ^ flags) & int(INVALIDATING_FLAGS)) != 0
    hours = sorted(
        {
            (names[d], datetime.fromtimestamp(3600 * (x // 3600), UTC))
            for d, x in zip(dev[moved].tolist(), t[moved].tolist(), strict=True)
        }
    )
    return params, hours


class Writer:
    """Write batches of validated messages.

    Rollups: each batch adds its readings to the device-hours they fall in
    (:func:`~luftnett.collector.rollups.hour_additions`, same transaction) and by default
    recomputes the days over them; ``deferred=True`` only marks those days (table
    ``rollup_dirty``) for :func:`~luftnett.collector.rollups.refresh_dirty`, which the collector
    runs every few seconds; ``rollups=False`` leaves all to ``luftnett rollup refresh`` (a
    scheduled job).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        source: str = "mqtt",
        qc_config: qc.QcConfig = qc.DEFAULT_QC,
        rollups: bool = True,
        deferred: bool = False,
        register_unknown: bool = True,
        calibration: Literal["inline", "deferred"] = "inline",
    ) -> None:
        self.conn = conn
        self.calibration = calibration
        self.register_unknown = register_unknown
        self._calibration = CalibrationCache()
        self._known: set[str] = set()  # registered devices seen (devices are never deleted)
        self.source = source
        self.qc_config = qc_config
        self.rollups = rollups
        self.deferred = deferred
        #: devices whose sensor series needed more of the device's readings than their
        #: sensors in a batch: how many times what a series needs (``_quality``)
        self._spreads: dict[str, int] = {}

    @staticmethod
    def _spans(n_series: int, cols: qc.SeriesColumns) -> tuple[np.ndarray, np.ndarray]:
        """Each sensor series' earliest and latest ts in the batch (``cols.dev``: series codes).

        The span of every row of the batch, duplicates included (the history query goes out
        before dedupe): a wider span returns more stored rows, never fewer, so each fresh row
        still has its nearest stored neighbours on either side, which is all the stuck and
        spike checks look at."""
        lo = np.full(n_series, np.inf)
        hi = np.full(n_series, -np.inf)
        np.minimum.at(lo, cols.dev, cols.t)
        np.maximum.at(hi, cols.dev, cols.t)
        return lo, hi

    @staticmethod
    def _history_params(
        series: Sequence[Series],
        lo: np.ndarray,
        hi: np.ndarray,
        m: np.ndarray,
        only: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """The parameters of ``_HISTORY`` for the batch's sensor series (``only``: these
        codes, default all) over their spans ``lo``, ``hi`` (:meth:`_spans`), ``m[code]``
        readings of its device a side."""
        at = np.arange(len(series)) if only is None else only
        devices, models, serials = zip(*(series[i] for i in at.tolist()), strict=True)
        return {"devices": text_array(devices), "models": text_array(models),
                "serials": text_array(serials), "lo": number_array(lo[at].tolist()),
                "hi": number_array(hi[at].tolist()), "m": int_array(m[at].tolist()),
                "codes": int_array(at.tolist())}  # fmt: skip

    @staticmethod
    def _history(
        n_dev: int,
        recs: Iterable[tuple[Any, ...]],
        lo: np.ndarray,
        hi: np.ndarray,
        n: int,
        m: np.ndarray,
    ) -> _History:
        """The stored neighbours (``_HISTORY``'s rows) as columns (the batch's ``n_dev``
        series codes); ``lo``, ``hi``: the spans the query was given, ``m`` its limits per
        series, ``n`` the readings of its own each series needs on a side."""
        recs = list(recs)
        nq = len(VALUE_COLUMNS)
        no = np.zeros(n_dev, dtype=bool)
        if not recs:
            e = np.empty(0, dtype=np.int64)
            empty = qc.SeriesColumns(e, e, np.empty(0), np.empty((0, nq)), e)
            return _History(empty, e, e, no, no, no)
        # each column of every series in one buffer: one numpy call per column, not per series
        got = list(zip(*recs, strict=True))
        parts = [list(map(_bytes, col)) for col in got[1 : 5 + nq]]
        seq = np.frombuffer(b"".join(parts[0]), dtype=">i8").astype(np.int64)
        counts = [len(b) // 8 for b in parts[0]]
        vals = np.empty((seq.size, nq))
        for j in range(nq):
            vals[:, j] = np.frombuffer(b"".join(parts[4 + j]), dtype=">f8")
        code = np.array(got[0], dtype=np.int64)
        dev = np.repeat(code, counts)
        t = np.frombuffer(b"".join(parts[1]), dtype=">f8").astype(np.float64)
        # a side that held m of the device's readings is cut: the series may go on there
        cut_before, cut_after = no.copy(), no.copy()
        cut_before[code] = np.array(got[5 + nq], dtype=np.int64) >= m[code]
        cut_after[code] = np.array(got[6 + nq], dtype=np.int64) >= m[code]
        before = np.bincount(dev[t < lo[dev]], minlength=n_dev)
        after = np.bincount(dev[t > hi[dev]], minlength=n_dev)
        short = (cut_before & (before < n)) | (cut_after & (after < n))
        return _History(
            qc.SeriesColumns(dev, seq, t, vals, np.zeros(dev.size, dtype=np.int64)),
            np.frombuffer(b"".join(parts[2]), dtype=">i8").astype(np.int64),
            np.frombuffer(b"".join(parts[3]), dtype=">i8").astype(np.int64),
            cut_before,
            cut_after,
            short,
        )

    def _spread(self, series: Sequence[Series]) -> np.ndarray:
        """Per series, how many of its device's readings a side to load per reading it needs:
        as many as the device has sensors in the batch, or as the writer last needed for it."""
        in_batch = Counter(s[0] for s in series)
        known = self._spreads
        return np.array([max(in_batch[s[0]], known.get(s[0], 1)) for s in series], np.int64)

    def _quality(
        self,
        series: Sequence[Series],
        fresh: qc.SeriesColumns,
        recs: list[tuple[Any, ...]],
        lo: np.ndarray,
        hi: np.ndarray,
        spread: np.ndarray,
        received_at: datetime,
    ) -> tuple[qc.Assessment, list[Any], list[tuple[str, datetime]]]:
        """Quality control of the ``fresh`` rows against the stored neighbours ``recs``
        (``_HISTORY`` over the batch's spans ``lo``, ``hi``, ``spread`` times
        ``context_n`` of the device's readings a side per series), and what it restates
        (:func:`restatement_params`).

        Each series needs ``context_n`` readings of its own a side where the window is cut.
        Where the device's other sensors took too many places, that series' neighbours are
        loaded again with twice as many, up to ``_SPREAD_MAX`` times what it needs (a sensor
        with fewer than one reading in that many of its device's is checked on what the
        window holds); the writer remembers the spread for the device's next batches. Where a
        stored stuck result is ambiguous in the window, every series' neighbours are loaded
        again, ``wide_n`` a side (rare: a stuck run cut by the window's end)."""
        cfg, n = self.qc_config, self.qc_config.context_n
        by_code = {int(r[0]): r for r in recs}
        while True:
            h = self._history(len(series), by_code.values(), lo, hi, n, spread * n)
            grow = h.short & (spread < _SPREAD_MAX)
            only: np.ndarray | None
            if grow.any():
                spread[grow] = np.minimum(spread[grow] * 2, _SPREAD_MAX)
                only = np.flatnonzero(grow)
            else:
                qa = qc.assess(h.cols, fresh, VALUE_COLUMNS, received_at, cfg, h.cut_before,
                               h.cut_after)  # fmt: skip
                r = qc.restated(qa, h.checks, h.flags)
                if not r.ambiguous or n >= cfg.wide_n:
                    break
                n, only = cfg.wide_n, None
            params = self._history_params(series, lo, hi, spread * n, only)
            again = self.conn.execute(_HISTORY, params, binary=True).fetchall()
            if only is None:
                by_code = {}
            else:
                for i in only.tolist():
                    by_code.pop(i, None)
            by_code.update((int(x[0]), x) for x in again)
        for (device, _m, _s), k in zip(series, spread.tolist(), strict=True):
            if k > 1 and len(self._spreads) < _SPREAD_REMEMBERED:
                self._spreads[device] = max(k, self._spreads.get(device, 1))
        return qa, *restatement_params([s[0] for s in series], h.cols, h.flags, r)

    @staticmethod
    def _ledger_keys(names: list[str], cols: qc.SeriesColumns) -> _LedgerKeys:
        """The batch's rows in (device, seq) order, each device's span of seqs, and the
        parameters of the ledger statements over them."""
        n = cols.seq.size
        order = qc.device_seq_order(cols.dev, cols.seq)  # device, seq, batch order
        ds, ss = cols.dev[order], cols.seq[order]
        new_dev = np.empty(n, dtype=bool)
        new_dev[0] = True
        new_dev[1:] = ds[1:] != ds[:-1]
        starts = np.flatnonzero(new_dev)
        ends = np.append(starts[1:], n)
        devices = [names[d] for d in ds[starts].tolist()]  # sorted: codes follow sorted names
        spans = [text_array(devices), int_array(ss[starts].tolist()),
                 int_array(ss[ends - 1].tolist())]  # fmt: skip
        return _LedgerKeys(order, ds, ss, new_dev, starts, ends, devices, spans)

    @staticmethod
    def dedupe(
        names: list[str], cols: qc.SeriesColumns, k: _LedgerKeys, overlaps: list[tuple[Any, ...]]
    ) -> tuple[np.ndarray | None, list[tuple[Any, ...]]]:
        """Indexes (in batch order) of the rows whose (device, seq) the ledger does not hold
        yet, each once (the first copy in the batch), or None when that is every row; and
        the seq ranges they add, ``(device, lo, hi, t_lo, t_hi)`` (half-open; the earliest and
        latest ts of each, for :func:`~luftnett.collector.deferred.queue_pending`).

        ``overlaps``: the received ranges ``_LEDGER_OVERLAP`` found for the keys ``k``, read
        in the transaction after the devices upsert locked the devices."""
        n = cols.seq.size
        dup = np.zeros(n, dtype=bool)
        dup[1:] = ~k.new_dev[1:] & (k.ss[1:] == k.ss[:-1])  # repeats inside the batch
        at = {d: i for i, d in enumerate(k.devices)}
        for d, lo, hi in overlaps:
            i = at[d]
            s0, s1 = int(k.starts[i]), int(k.ends[i])
            i0 = s0 + int(np.searchsorted(k.ss[s0:s1], lo, side="left"))
            i1 = s0 + int(np.searchsorted(k.ss[s0:s1], hi, side="left"))
            dup[i0:i1] = True
        keep = ~dup
        added = seq_runs(names, k.ds[keep], k.ss[keep], cols.t[k.order][keep])
        if keep.all():
            return None, added
        return np.sort(k.order[keep]), added

    def _reused(
        self, names: list[str], ts_us: np.ndarray, k: _LedgerKeys, keep: np.ndarray
    ) -> np.ndarray:
        """Which rows (a mask, batch order) the dedupe dropped although they are not copies:
        their (device, seq) belongs to a reading at another time, stored or stored now. A
        device whose outbox starts numbering again (a new SD card, a deleted outbox file)
        sends such readings; dropped as duplicates they would be lost without a trace.

        A copy of a reading the batch stores must have its time; the others (the ledger holds
        their seq) are looked up by (device, ts, seq), one query, only when there are any."""
        n = ts_us.size
        us = ts_us[k.order]
        first = k.new_dev.copy()
        first[1:] |= k.ss[1:] != k.ss[:-1]
        gid = np.cumsum(first) - 1
        kept = np.zeros(n, dtype=bool)
        kept[keep] = True
        group_kept = np.zeros(int(gid[-1]) + 1, dtype=bool)
        group_kept[gid[kept[k.order]]] = True
        # in (device, seq, batch order) the copy the batch stores comes first in its group
        reused = group_kept[gid] & (us != us[first][gid])
        ask = np.flatnonzero(~group_kept[gid])
        if ask.size:
            found = self.conn.execute(
                _REUSED,
                [text_array([names[d] for d in k.ds[ask].tolist()]), int_array(k.ss[ask].tolist()),
                 int_array(us[ask].tolist()), int_array(ask.tolist())],
            ).fetchall()  # fmt: skip
            reused[[r[0] for r in found]] = True
        out = np.zeros(n, dtype=bool)
        out[k.order[reused]] = True
        return out

    @staticmethod
    def _reused_records(
        accepted: Sequence[Accepted], seq: np.ndarray, reused: np.ndarray
    ) -> list[Quarantined]:
        """A quarantine record (``seq_reused``) for each message with readings in ``reused``
        (a mask over the batch's rows, in message order): the message verbatim, the seqs."""
        rows = np.flatnonzero(reused)
        ends = np.cumsum([a.count for a in accepted])
        msg = np.searchsorted(ends, rows, side="right")
        out = []
        for m in np.unique(msg).tolist():
            a = accepted[m]
            seqs = sorted(set(seq[rows[msg == m]].tolist()))
            out.append(
                Quarantined(
                    a.topic,
                    a.payload,
                    "seq_reused",
                    f"device {a.device[0]!r} sent seq {_seq_text(seqs)} for readings at other "
                    "times than the stored ones with those numbers: its numbering started "
                    "again (a new or reset outbox?); kept here, not stored; the message's "
                    "other readings were stored",
                )
            )
        return out

    def _refuse_unknown(self, accepted: list[Accepted]) -> tuple[list[Accepted], list[Quarantined]]:
        """Split off the messages of devices missing from ``devices`` as quarantine records."""
        ids = {a.device[0] for a in accepted} - self._known
        if ids:
            found = self.conn.execute(
                "SELECT device_id FROM devices WHERE device_id = ANY(%s)", (sorted(ids),)
            ).fetchall()
            self._known |= {r[0] for r in found}
        keep = [a for a in accepted if a.device[0] in self._known]
        refused = [
            Quarantined(
                a.topic,
                a.payload,
                "unknown_device",
                f"device {a.device[0]!r} is not registered; add it, then "
                "`luftnett quarantine replay --reason unknown_device`",
            )
            for a in accepted
            if a.device[0] not in self._known
        ]
        return keep, refused

    def _copy_readings(
        self,
        b: BatchColumns,
        flags: np.ndarray,
        checks: np.ndarray,
        meanwhile: Callable[[], _Tail],
    ) -> _Tail:
        """One binary COPY: numpy lays out the records of the readings (``copybin``);
        psycopg's ``write_row`` writes those it leaves (a NUL in a text, an ``extra`` of 64 kB
        or more) after them. Calls
        ``meanwhile`` once every record is sent, before waiting for the server to take them
        (the client's next work overlaps the server's), and returns what it returns."""
        recs, left = reading_records(b, flags, checks, FLAGS_VERSION)
        with self.conn.cursor() as cur:
            cur.adapters.register_dumper(None, _JsonbText)
            with cur.copy(_COPY) as copy:
                copy.set_types(_TYPES)
                if recs:
                    copy.write(_BIN_HEADER)
                    copy.write(recs)
                if left.size:
                    write_row = copy.write_row
                    for i in left.tolist():
                        r = b.row(i, 0)
                        write_row((*r[:_I_FLAGS], r[_I_SCHEMA], int(flags[i]), int(checks[i]),
                                   FLAGS_VERSION))  # fmt: skip
                elif recs:
                    copy.write(_BIN_TRAILER)  # psycopg adds it only after write_row
                return meanwhile()

    def _after_copy(
        self,
        names: list[str],
        received: tuple[list[tuple[str, datetime]], np.ndarray],
        keep: np.ndarray | None,
        added: list[tuple[Any, ...]],
        fresh: BatchColumns,
        flags: np.ndarray | None,
        annotated: list[tuple[str, int, int]],
    ) -> _Tail:
        """The statements after the COPY of ``fresh`` (the batch's rows not stored before,
        ``flags`` as stored; none: only the ingest counts), no database work: ledger ranges,
        calibration debts (deferred), ingest counts, hourly additions and day marks."""
        # every reading stored (keep is None): the same groups
        kept = received if keep is None else hour_groups(names, fresh.dev, fresh.ts_us)
        counts = ingest_params(_hour_counts(received), _hour_counts(kept))
        tail = _Tail([(INGEST, counts)] if counts else [])
        if flags is None:
            return tail
        d, lo, hi = list(zip(*added, strict=True))[:3]
        tail.statements.append((_LEDGER_ADD, [text_array(d), int_array(lo), int_array(hi)]))
        if self.calibration == "deferred":  # recorded as owed; the caller settles it
            tail.pending, queued = queue_pending(fresh, added)
            tail.statements.append((QUEUE, queued))
        if not self.rollups:
            return tail
        tail.hours = kept[0]
        add = hour_additions(kept, names, fresh.dev, fresh.ts_us, fresh.window_s, flags,
                             fresh.vals, annotated)  # fmt: skip
        if add is None:  # a value beyond real's range
            tail.recompute = True
            return tail
        tail.statements.append((ADD_HOURS, add))
        if self.deferred and (marks := day_marks(kept[0])) is not None:
            tail.statements.append((MARK_DAYS, marks))
        return tail

    def write(self, items: Sequence[Accepted | Quarantined]) -> BatchResult:
        """Write a batch in one transaction; raise psycopg errors to the caller (it retries).

        Three round trips: one pipeline locks the devices and reads what dedupe, quality
        control and the rollups need; the COPY; one pipeline of the statements after it, which
        need no answer (their parameters are built while the server takes the COPY)."""
        accepted = [i for i in items if isinstance(i, Accepted)]
        bad = [i for i in items if isinstance(i, Quarantined)]
        stored = 0
        received_at = datetime.now(UTC)
        with self.conn.transaction():
            if accepted and not self.register_unknown:
                accepted, refused = self._refuse_unknown(accepted)
                bad += refused
            n_rows = n_reused = 0
            if accepted:
                devices = _device_rows(accepted)
                batch = BatchColumns.join([(a.device, a.readings) for a in accepted])
                n_rows = len(batch)
            tail = _Tail([])
            if n_rows:
                names, cols = batch.names, batch.series()
                keys = self._ledger_keys(names, cols)
                # one round trip: lock the devices (sorted upsert), then read their ledger
                # ranges over the batch, the stored neighbours QC needs and the annotations
                with self.conn.pipeline():
                    self.conn.execute(
                        _UPSERT_DEVICES, [text_array(c) for c in zip(*devices, strict=True)]
                    )
                    self.conn.execute(_LEDGER_ENSURE, keys.spans[:1])
                    overlap_cur = self.conn.execute(_LEDGER_OVERLAP, keys.spans, binary=True)
                    series, s_code = batch.sensor_series()
                    s_cols = replace(cols, dev=s_code)  # quality control: per sensor series
                    spread = self._spread(series)
                    h_lo, h_hi = self._spans(len(series), s_cols)
                    h_params = self._history_params(
                        series, h_lo, h_hi, spread * self.qc_config.context_n
                    )
                    history_cur = self.conn.execute(_HISTORY, h_params, binary=True)
                    spans_cur = (
                        annotations_query(self.conn, keys.devices, batch.ts_us)
                        if self.rollups
                        else None
                    )
                keep, added = self.dedupe(names, cols, keys, overlap_cur.fetchall())
                fresh = batch if keep is None else batch.take(keep)
                stored = len(fresh)
                if keep is None:
                    received = hour_groups(names, batch.dev, batch.ts_us)
                else:  # readings that only share a copy's seq go to quarantine, not counted
                    reused = self._reused(names, batch.ts_us, keys, keep)
                    if n_reused := int(reused.sum()):
                        bad += self._reused_records(accepted, batch.seq, reused)
                        log.warning(
                            "seq reused",
                            extra={"readings": n_reused, "devices": sorted(
                                {names[d] for d in batch.dev[reused].tolist()})},
                        )  # fmt: skip
                    ok = ~reused
                    received = hour_groups(names, batch.dev[ok], batch.ts_us[ok])
                if not stored:  # all duplicates: only the ledger's counts
                    tail = self._after_copy(names, received, keep, added, fresh, None, [])
                else:
                    fcols = s_cols if keep is None else replace(fresh.series(), dev=s_code[keep])
                    qa, restate, restated_hours = self._quality(
                        series,
                        fcols,
                        history_cur.fetchall(),
                        h_lo,
                        h_hi,
                        spread,
                        received_at,
                    )
                    checks, flags = qa.checks, qa.flags
                    spans = [] if spans_cur is None else spans_cur.fetchall()
                    tail = self._copy_readings(
                        fresh,
                        flags,
                        checks,
                        lambda: self._after_copy(names, received, keep, added, fresh, flags, spans),
                    )
                    tail.statements.append((_SENSORS_SEEN, _sensors_seen(series, fcols.dev, fresh)))
                    if restate:
                        tail.statements.append((RESTATE, restate))
                        tail.restated_hours = restated_hours
                    if self.calibration == "inline":  # calibrated values, same transaction
                        calibrate_at_ingest(self.conn, fresh, self._calibration)
            if tail.statements:
                with self.conn.pipeline():
                    for query, params in tail.statements:
                        self.conn.execute(query, params)
            if tail.hours:
                restated = tail.restated_hours or []
                if tail.recompute:
                    refresh_hours(self.conn, tail.hours + restated)
                else:
                    if restated:  # rare: a batch changed stored readings' validity
                        refresh_hours(self.conn, restated)
                    if not self.deferred:
                        refresh_days(self.conn, days_of(tail.hours))
            if bad:
                with self.conn.cursor() as cur:
                    cur.executemany(
                        _INSERT_QUARANTINE,
                        [(self.source, q.topic, q.payload, q.reason, q.detail) for q in bad],
                    )
        return BatchResult(
            received=n_rows,
            stored=stored,
            duplicates=n_rows - stored - n_reused,
            quarantined=len(bad),
            reused=n_reused,
            pending=tail.pending,
        )
