"""Apply calibrations to stored readings: at ingest (:func:`calibrate_rows`) and to history
(:func:`reprocess`). The I/O side; the model maths is :meth:`CalibrationModel.apply`.

Which version applies to a reading: the device's latest activation with ``valid_from <= ts``,
else the latest activation of the fleet default for its sensor model, else none (no calibrated
value). The SQL function ``luftnett_active_version`` (migration 0010) states the same rule.

A model's ``sensor`` and ``inputs`` name reading quantities (``pm25_ugm3``, ``pm25_cf1``,
``rh_pct``, ...): a column of ``readings`` or a key of ``readings.extra``. A reading missing an
input gets no calibrated value for that pollutant.

Reprocessing reads each chunk of readings as one row of ``bytea`` columns (big-endian 8-byte
values, missing ones as NaN) parsed with ``numpy.frombuffer``, applies the models in bulk and
writes with a binary ``COPY`` whose fixed-width records numpy builds. Values of other
versions are never touched; values of the same version are replaced (versions are immutable,
so they are identical).
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

from luftnett.calibration.fleet import FLEET_DEFAULTS
from luftnett.calibration.model import CalibrationModel
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS
from luftnett.errors import CalibrationError

__all__ = [
    "POLLUTANT_COLUMNS",
    "CalibratedValue",
    "CalibrationCache",
    "calibrate_rows",
    "ensure_fleet_defaults",
    "reprocess",
    "write_calibrated",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
#: pollutant code -> the readings column of the raw value
POLLUTANT_COLUMNS: dict[str, str] = {"pm25": "pm25_ugm3", "pm10": "pm10_ugm3", "no2": "no2_ppb"}
FLEET_DEFAULT_FROM = datetime(1970, 1, 1, tzinfo=UTC)
FLEET_CREATED_BY = "luftnett (fleet default)"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970: binary timestamptz origin
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_FLEET_LOCK = 0x6C75667463616C  # advisory lock: one process installs the fleet defaults

_I = {c: READING_COLUMNS.index(c) for c in ("device_id", "seq", "ts", "sensor_model", "extra")}


@dataclass(frozen=True, slots=True)
class CalibratedValue:
    device_id: str
    seq: int
    pollutant: str
    version_id: int
    ts: datetime
    value: float
    u: float


def ensure_fleet_defaults(conn: psycopg.Connection[Any]) -> list[int]:
    """Store and activate (from 1970) every fleet default not stored yet; return new ids."""
    new: list[int] = []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_FLEET_LOCK,))
    have = {
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT sensor_model, pollutant, model_id FROM calibration_versions "
            "WHERE kind = 'fleet-default'"
        )
    }
    for (sensor_model, pollutant), d in FLEET_DEFAULTS.items():
        if (sensor_model, pollutant, d.model.model_id) in have:
            continue
        row = conn.execute(
            "INSERT INTO calibration_versions (sensor_model, pollutant, kind, model_id, model, "
            "metrics, created_by) VALUES (%s, %s, 'fleet-default', %s, %s, %s, %s) "
            "RETURNING version_id",
            (sensor_model, pollutant, d.model.model_id, Json(d.model.to_dict()),
             Jsonb({"source": d.source}), FLEET_CREATED_BY),
        ).fetchone()  # fmt: skip
        assert row is not None
        conn.execute(
            "INSERT INTO calibration_activations (sensor_model, pollutant, version_id, "
            "valid_from, created_by) VALUES (%s, %s, %s, %s, %s)",
            (sensor_model, pollutant, row[0], FLEET_DEFAULT_FROM, FLEET_CREATED_BY),
        )
        new.append(int(row[0]))
    return new


@dataclass(slots=True)
class _Resolver:
    """The activations of one device and pollutant, as sorted µs-since-1970 arrays."""

    device_from: npt.NDArray[np.int64]
    device_version: npt.NDArray[np.int64]
    fleet_from: npt.NDArray[np.int64]
    fleet_version: npt.NDArray[np.int64]

    def versions(self, ts_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Version id per time (0 = none)."""
        out = np.zeros(ts_us.shape, dtype=np.int64)
        for frm, ver in ((self.fleet_from, self.fleet_version),
                         (self.device_from, self.device_version)):  # fmt: skip
            if frm.size:
                i = np.searchsorted(frm, ts_us, side="right") - 1
                ok = i >= 0
                out[ok] = ver[i[ok]]
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _resolver(acts: Sequence[tuple[str, datetime, int, int]]) -> _Resolver:
    """From :func:`~luftnett.calibration.store.activations`' rows."""
    dev = [(_us(a[1]), a[3]) for a in acts if a[0] == "device"]
    flt = [(_us(a[1]), a[3]) for a in acts if a[0] == "sensor_model"]
    return _Resolver(
        np.array([a for a, _ in dev], dtype=np.int64),
        np.array([v for _, v in dev], dtype=np.int64),
        np.array([a for a, _ in flt], dtype=np.int64),
        np.array([v for _, v in flt], dtype=np.int64),
    )


def _us(t: datetime) -> int:
    """Microseconds since 1970 of an aware time (exact integer arithmetic)."""
    return (t - _EPOCH) // timedelta(microseconds=1)


@dataclass
class CalibrationCache:
    """Models by version and activations by device, reloaded when activations change."""

    generation: tuple[int, int] = (-1, -1)
    resolvers: dict[tuple[str, str], _Resolver] = field(default_factory=dict)
    models: dict[int, CalibrationModel] = field(default_factory=dict)
    fleet_checked: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, conn: psycopg.Connection[Any]) -> None:
        if not self.fleet_checked:
            ensure_fleet_defaults(conn)
            self.fleet_checked = True
        row = conn.execute(
            "SELECT coalesce(max(activation_id), 0), count(*) FROM calibration_activations"
        ).fetchone()
        gen = (int(row[0]), int(row[1])) if row else (0, 0)
        if gen != self.generation:
            self.resolvers.clear()
            self.generation = gen

    def resolver(self, conn: psycopg.Connection[Any], device_id: str, pollutant: str) -> _Resolver:
        key = (device_id, pollutant)
        r = self.resolvers.get(key)
        if r is None:
            from luftnett.calibration.store import activations

            r = self.resolvers[key] = _resolver(activations(conn, device_id, pollutant))
        return r

    def preload(self, conn: psycopg.Connection[Any], device_ids: Sequence[str]) -> None:
        """Load the resolvers these devices lack (every pollutant) in one query, not one per
        device and pollutant: a collector meets its whole fleet in its first batches."""
        missing = [
            d for d in device_ids if any((d, p) not in self.resolvers for p in POLLUTANT_COLUMNS)
        ]
        if not missing:
            return
        from luftnett.calibration.store import activations_of

        got = activations_of(conn, missing, list(POLLUTANT_COLUMNS))
        for d in missing:
            for p in POLLUTANT_COLUMNS:
                self.resolvers[(d, p)] = _resolver(got.get((d, p), []))

    def model(self, conn: psycopg.Connection[Any], version_id: int) -> CalibrationModel:
        m = self.models.get(version_id)
        if m is None:
            row = conn.execute(
                "SELECT model FROM calibration_versions WHERE version_id = %s", (version_id,)
            ).fetchone()
            if row is None:
                raise CalibrationError(f"no calibration version {version_id}")
            m = CalibrationModel.from_json(json.dumps(row[0]))
            self.models[version_id] = m  # versions are immutable: cache forever
        return m


_SHARED = CalibrationCache()


_COLUMN_INDEX = {c: READING_COLUMNS.index(c) for c in VALUE_COLUMNS}


def _quantity(row: tuple[Any, ...], name: str, extra: dict[str, Any] | None) -> float:
    i = _COLUMN_INDEX.get(name)
    v = row[i] if i is not None else (extra or {}).get(name)
    return float("nan") if v is None else float(v)


def _apply(model: CalibrationModel, inputs: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
    out = model.apply(inputs[model.sensor], {k: inputs[k] for k in model.inputs})
    return out.value, out.u


def calibrate_rows(
    conn: psycopg.Connection[Any],
    rows: Sequence[tuple[Any, ...]],
    cache: CalibrationCache | None = None,
) -> list[CalibratedValue]:
    """Calibrated value, uncertainty and version of each reading row (``READING_COLUMNS``
    order, extra columns after them are ignored) and pollutant that has a version in force."""
    cache = cache if cache is not None else _SHARED
    out: list[CalibratedValue] = []
    if not rows:
        return out
    dev, seq, tsi, exi = _I["device_id"], _I["seq"], _I["ts"], _I["extra"]
    with cache.lock:
        cache.refresh(conn)
        by_device: dict[str, list[int]] = {}
        for k, r in enumerate(rows):
            by_device.setdefault(r[dev], []).append(k)
        ts_all = np.array([_us(r[tsi]) for r in rows], dtype=np.int64)
        # rows of every device under the same version are calibrated in one call: a fleet
        # default or a model activated per sensor type serves many devices at once
        groups: dict[tuple[str, int], list[npt.NDArray[np.int64]]] = {}
        for device_id, members in by_device.items():
            idx = np.array(members, dtype=np.int64)
            for pollutant in POLLUTANT_COLUMNS:
                versions = cache.resolver(conn, device_id, pollutant).versions(ts_all[idx])
                for vid in np.unique(versions[versions > 0]):
                    groups.setdefault((pollutant, int(vid)), []).append(idx[versions == vid])
        extras: dict[int, dict[str, Any] | None] = {}
        for (pollutant, vid), parts in groups.items():
            idx = np.concatenate(parts)
            model = cache.model(conn, vid)
            for k in idx.tolist():
                if k not in extras:
                    raw = rows[k][exi]
                    extras[k] = json.loads(raw) if raw else None
            inputs = {
                n: np.array([_quantity(rows[k], n, extras[k]) for k in idx.tolist()])
                for n in (model.sensor, *model.inputs)
            }
            value, u = _apply(model, inputs)
            for j in np.flatnonzero(np.isfinite(value) & np.isfinite(u)).tolist():
                r = rows[int(idx[j])]
                out.append(CalibratedValue(
                    r[dev], int(r[seq]), pollutant, vid, r[tsi], float(value[j]), float(u[j]),
                ))  # fmt: skip
    return out


_INSERT_VALUES = """
INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, value, u)
SELECT * FROM unnest(%s::text[], %s::int8[], %s::text[], %s::int8[], %s::timestamptz[],
                     %s::real[], %s::real[])
ON CONFLICT DO NOTHING
"""


def write_calibrated(conn: psycopg.Connection[Any], values: Sequence[CalibratedValue]) -> int:
    """Insert calibrated values (an existing (reading, pollutant, version) is kept)."""
    if not values:
        return 0
    cols = list(zip(*((v.device_id, v.seq, v.pollutant, v.version_id, v.ts, v.value, v.u)
                      for v in values), strict=True))  # fmt: skip
    cur = conn.execute(_INSERT_VALUES, [list(c) for c in cols])
    return cur.rowcount


# -- reprocessing ---------------------------------------------------------------------------
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def _expr(name: str) -> sql.Composable:
    if name in VALUE_COLUMNS:
        inner: sql.Composable = sql.SQL("{}::float8").format(sql.Identifier(name))
    else:
        inner = sql.SQL("(extra->>{})::float8").format(sql.Literal(name))
    return sql.SQL("coalesce({}, 'NaN'::float8)").format(inner)


def _read_chunk(
    conn: psycopg.Connection[Any],
    device_id: str,
    names: Sequence[str],
    after: tuple[datetime, int] | None,
    limit: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], dict[str, FloatArray]]:
    """The next ``limit`` readings after (ts, seq) ``after``, in (ts, seq) order (the
    ``(device_id, ts)`` index serves it): seq, binary ts (µs since 2000) and the inputs.

    Each column comes back as one ``bytea`` of big-endian 8-byte values (``int8send``,
    ``timestamptz_send``, ``float8send``; missing values as NaN), parsed by ``np.frombuffer``.
    """
    after_ts, after_seq = after if after is not None else (FLEET_DEFAULT_FROM.replace(year=1), -1)
    order = sql.SQL(" ORDER BY ts, seq")
    cols = [
        sql.SQL("string_agg(int8send(seq), ''{})").format(order),
        sql.SQL("string_agg(timestamptz_send(ts), ''{})").format(order),
        *(sql.SQL("string_agg(float8send({}), ''{})").format(_expr(n), order) for n in names),
    ]
    query = sql.SQL(
        "SELECT count(*), {cols} FROM (SELECT * FROM readings WHERE device_id = %(dev)s AND "
        "ts >= %(ts)s AND (ts > %(ts)s OR seq > %(seq)s) ORDER BY ts, seq LIMIT %(limit)s) r"
    ).format(cols=sql.SQL(", ").join(cols))
    row = conn.execute(
        query, {"dev": device_id, "ts": after_ts, "seq": after_seq, "limit": limit}
    ).fetchone()
    assert row is not None
    if not row[0]:
        return np.empty(0, np.int64), np.empty(0, np.int64), {n: np.empty(0) for n in names}
    seq = np.frombuffer(row[1], dtype=">i8").astype(np.int64)
    ts_pg = np.frombuffer(row[2], dtype=">i8").astype(np.int64)
    values = {n: np.frombuffer(row[3 + i], dtype=">f8").astype(np.float64)
              for i, n in enumerate(names)}  # fmt: skip
    return seq, ts_pg, values


def _write_chunk(
    conn: psycopg.Connection[Any],
    device_id: str,
    pollutant: str,
    seq: npt.NDArray[np.int64],
    version: npt.NDArray[np.int64],
    ts_pg: npt.NDArray[np.int64],
    value: FloatArray,
    u: FloatArray,
) -> None:
    dev, pol = device_id.encode(), pollutant.encode()
    dt = np.dtype([
        ("nf", ">i2"), ("l0", ">i4"), ("dev", f"S{len(dev)}"), ("l1", ">i4"), ("seq", ">i8"),
        ("l2", ">i4"), ("pol", f"S{len(pol)}"), ("l3", ">i4"), ("ver", ">i8"), ("l4", ">i4"),
        ("ts", ">i8"), ("l5", ">i4"), ("val", ">f4"), ("l6", ">i4"), ("u", ">f4"),
    ])  # fmt: skip
    rec = np.empty(seq.size, dtype=dt)
    rec["nf"] = 7
    rec["l0"], rec["dev"], rec["l1"], rec["seq"] = len(dev), dev, 8, seq
    rec["l2"], rec["pol"], rec["l3"], rec["ver"] = len(pol), pol, 8, version
    rec["l4"], rec["ts"], rec["l5"], rec["val"], rec["l6"], rec["u"] = 8, ts_pg, 4, value, 4, u
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY calibrated_values (device_id, seq, pollutant, version_id, ts, value, u) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(_COPY_HEADER + rec.tobytes() + _COPY_TRAILER)


@dataclass(frozen=True, slots=True)
class ReprocessResult:
    readings: int
    values: int
    versions: tuple[int, ...]


def reprocess(
    conn: psycopg.Connection[Any],
    device_id: str,
    pollutants: Sequence[str] = tuple(POLLUTANT_COLUMNS),
    version_id: int | None = None,
    chunk: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> ReprocessResult:
    """Recompute calibrated values of all of a device's readings, one transaction per chunk.

    Without ``version_id`` each reading gets the version in force at its time; with it, every
    reading gets that version (of its pollutant). ``progress(n)`` is called with the readings
    done per pollutant and chunk.
    """
    from luftnett.calibration.store import get_version

    cache = CalibrationCache()
    with conn.transaction():
        cache.refresh(conn)
    explicit = get_version(conn, version_id) if version_id is not None else None
    if explicit is not None:
        if explicit.device_id not in (None, device_id):
            raise CalibrationError(
                f"version {version_id} belongs to device {explicit.device_id}, not {device_id}"
            )
        pollutants = [explicit.pollutant]
    readings = values = 0
    used: set[int] = set()
    for pollutant in pollutants:
        if explicit is not None:
            model_ids = [explicit.version_id]
            resolver = None
        else:
            resolver = cache.resolver(conn, device_id, pollutant)
            model_ids = sorted({*resolver.device_version.tolist(),
                                *resolver.fleet_version.tolist()})  # fmt: skip
        if not model_ids:
            continue
        models = {v: cache.model(conn, v) for v in model_ids}
        names = list(dict.fromkeys(n for m in models.values() for n in (m.sensor, *m.inputs)))
        after: tuple[datetime, int] | None = None
        while True:
            with conn.transaction():
                seq, ts_pg, inputs = _read_chunk(conn, device_id, names, after, chunk)
                if seq.size == 0:
                    break
                after = (_PG_EPOCH + timedelta(microseconds=int(ts_pg[-1])), int(seq[-1]))
                if resolver is None:
                    ver = np.full(seq.size, model_ids[0], dtype=np.int64)
                else:
                    ver = resolver.versions(ts_pg + _PG_EPOCH_US)
                val = np.full(seq.size, np.nan)
                unc = np.full(seq.size, np.nan)
                for v in np.unique(ver[ver > 0]):
                    m = ver == v
                    model = models[int(v)]
                    val[m], unc[m] = _apply(model, {k: a[m] for k, a in inputs.items()})
                    used.add(int(v))
                ok = (ver > 0) & np.isfinite(val) & np.isfinite(unc)
                _replace_same_version(conn, device_id, pollutant, seq[ok], ver[ok])
                _write_chunk(conn, device_id, pollutant, seq[ok], ver[ok], ts_pg[ok],
                             val[ok], unc[ok])  # fmt: skip
                readings += int(seq.size)
                values += int(ok.sum())
            if progress is not None:
                progress(int(seq.size))
            if seq.size < chunk:
                break
    return ReprocessResult(readings, values, tuple(sorted(used)))


def _replace_same_version(
    conn: psycopg.Connection[Any],
    device_id: str,
    pollutant: str,
    seq: npt.NDArray[np.int64],
    ver: npt.NDArray[np.int64],
) -> None:
    """Delete the values about to be rewritten (same reading, pollutant and version) if any."""
    if seq.size == 0:
        return
    versions = [int(v) for v in np.unique(ver)]
    lo, hi = int(seq.min()), int(seq.max())
    exists = conn.execute(
        "SELECT 1 FROM calibrated_values WHERE device_id = %s AND seq BETWEEN %s AND %s "
        "AND pollutant = %s AND version_id = ANY(%s) LIMIT 1",
        (device_id, lo, hi, pollutant, versions),
    ).fetchone()
    if exists is None:
        return
    conn.execute(
        "DELETE FROM calibrated_values c USING unnest(%s::int8[], %s::int8[]) AS k(seq, v) "
        "WHERE c.device_id = %s AND c.pollutant = %s AND c.seq = k.seq AND c.version_id = k.v",
        (seq.tolist(), ver.tolist(), device_id, pollutant),
    )
