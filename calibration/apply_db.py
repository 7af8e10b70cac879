"""Apply calibrations to stored readings: at ingest (:func:`calibrate_rows`) and to history
(:func:`reprocess`). The I/O side; the model maths is :meth:`CalibrationModel.apply`.

Which version applies to a reading: the device's latest activation with ``valid_from <= ts``,
else the latest activation of the fleet default for the reading's own sensor model (a box may
carry several: an SDS011 and the NO2 module), else none (no calibrated value). The SQL function
``luftnett_active_version(device, pollutant, ts, model)`` (migration 0056) states the same rule.

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
from luftnett.db.schema import DEVICE_MODELS, READING_COLUMNS, VALUE_COLUMNS
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


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Activations as sorted µs-since-1970 arrays: ``version[i]`` from ``start[i]`` on."""

    start: npt.NDArray[np.int64]
    version: npt.NDArray[np.int64]

    @classmethod
    def of(cls, acts: Sequence[tuple[datetime, int, int]]) -> _Timeline:
        """From (valid_from, activation_id, version_id) rows ordered by the first two."""
        return cls(np.array([_us(a[0]) for a in acts], dtype=np.int64),
                   np.array([a[2] for a in acts], dtype=np.int64))  # fmt: skip

    def fill(self, ts_us: npt.NDArray[np.int64], out: npt.NDArray[np.int64]) -> None:
        """Set ``out`` to the version in force at each time where one is (others untouched)."""
        if self.start.size:
            i = np.searchsorted(self.start, ts_us, side="right") - 1
            ok = i >= 0
            out[ok] = self.version[i[ok]]


_NO_TIMELINE = _Timeline(np.empty(0, np.int64), np.empty(0, np.int64))


@dataclass(slots=True)
class _Resolver:
    """The rule for one device and pollutant: the device's own latest activation, else the
    latest fleet default of the reading's own sensor model, else none. ``fleet`` maps every
    sensor model to its fleet defaults of the pollutant (shared by all devices)."""

    device: _Timeline
    fleet: dict[str, _Timeline]

    def fleet_of(self, model: str) -> _Timeline:
        return self.fleet.get(model, _NO_TIMELINE)

    def versions(self, ts_us: npt.NDArray[np.int64], model: str) -> npt.NDArray[np.int64]:
        """Version id per time of readings of sensor model ``model`` (0 = none)."""
        out = np.zeros(ts_us.shape, dtype=np.int64)
        self.fleet_of(model).fill(ts_us, out)
        self.device.fill(ts_us, out)
        return out

    def versions_of(
        self, ts_us: npt.NDArray[np.int64], models: Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """Version id per reading, each of its own sensor model (0 = none)."""
        out = np.zeros(ts_us.shape, dtype=np.int64)
        arr = np.asarray(models, dtype=object)
        for m in dict.fromkeys(arr.tolist()):
            at = np.flatnonzero(arr == m)
            out[at] = self.versions(ts_us[at], m)
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(t: datetime) -> int:
    """Microseconds since 1970 of an aware time (exact integer arithmetic)."""
    return (t - _EPOCH) // timedelta(microseconds=1)


@dataclass
class CalibrationCache:
    """Models by version, the fleet defaults by sensor model and each device's own
    activations, reloaded when activations change."""

    generation: tuple[int, int] = (-1, -1)
    resolvers: dict[tuple[str, str], _Resolver] = field(default_factory=dict)
    models: dict[int, CalibrationModel] = field(default_factory=dict)
    fleet_checked: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: pollutant -> sensor model -> its fleet defaults; None until loaded
    fleet: dict[str, dict[str, _Timeline]] | None = None

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
            self.fleet = None
            self.generation = gen

    def _fleet(self, conn: psycopg.Connection[Any], pollutant: str) -> dict[str, _Timeline]:
        if self.fleet is None:
            from luftnett.calibration.store import fleet_activations

            self.fleet = {}
            for (model, p), acts in fleet_activations(conn).items():
                self.fleet.setdefault(p, {})[model] = _Timeline.of(acts)
        return self.fleet.setdefault(pollutant, {})

    def resolver(self, conn: psycopg.Connection[Any], device_id: str, pollutant: str) -> _Resolver:
        key = (device_id, pollutant)
        r = self.resolvers.get(key)
        if r is None:
            from luftnett.calibration.store import device_activations

            acts = device_activations(conn, [device_id], [pollutant]).get(key, [])
            r = self.resolvers[key] = _Resolver(_Timeline.of(acts), self._fleet(conn, pollutant))
        return r

    def preload(self, conn: psycopg.Connection[Any], device_ids: Sequence[str]) -> None:
        """Load the resolvers these devices lack (every pollutant) in one query, not one per
        device and pollutant: a collector meets its whole fleet in its first batches."""
        missing = [
            d for d in device_ids if any((d, p) not in self.resolvers for p in POLLUTANT_COLUMNS)
        ]
        if not missing:
            return
        from luftnett.calibration.store import device_activations

        got = device_activations(conn, missing, list(POLLUTANT_COLUMNS))
        for p in POLLUTANT_COLUMNS:
            fleet = self._fleet(conn, p)
            for d in missing:
                self.resolvers[(d, p)] = _Resolver(_Timeline.of(got.get((d, p), [])), fleet)

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
        models_all = [r[_I["sensor_model"]] for r in rows]
        for device_id, members in by_device.items():
            idx = np.array(members, dtype=np.int64)
            models = [models_all[k] for k in members]
            for pollutant in POLLUTANT_COLUMNS:
                res = cache.resolver(conn, device_id, pollutant)
                versions = res.versions_of(ts_all[idx], models)
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
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[str], dict[str, FloatArray]]:
    """The next ``limit`` readings after (ts, seq) ``after``, in (ts, seq) order (the
    ``(device_id, ts)`` index serves it): seq, binary ts (µs since 2000), sensor model and the
    inputs.

    Each column comes back as one ``bytea`` of big-endian 8-byte values (``int8send``,
    ``timestamptz_send``, ``float8send``; missing values as NaN), parsed by ``np.frombuffer``.
    """
    after_ts, after_seq = after if after is not None else (FLEET_DEFAULT_FROM.replace(year=1), -1)
    order = sql.SQL(" ORDER BY ts, seq")
    cols = [
        sql.SQL("string_agg(int8send(seq), ''{})").format(order),
        sql.SQL("string_agg(timestamptz_send(ts), ''{})").format(order),
        sql.SQL("array_agg(sensor_model{})").format(order),
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
        empty = np.empty(0, np.int64)
        return empty, empty, [], {n: np.empty(0) for n in names}
    seq = np.frombuffer(row[1], dtype=">i8").astype(np.int64)
    ts_pg = np.frombuffer(row[2], dtype=">i8").astype(np.int64)
    values = {n: np.frombuffer(row[4 + i], dtype=">f8").astype(np.float64)
              for i, n in enumerate(names)}  # fmt: skip
    return seq, ts_pg, list(row[3]), values


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

    Without ``version_id`` each reading gets the version in force at its time (for its own
    sensor model); with it, every reading gets that version (of its pollutant), or, for a fleet
    default, every reading of its sensor model. ``progress(n)`` is called with the readings
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
    # the device's sensor models (its registered one and those it reported through, which the
    # collector keeps with every batch): their fleet defaults may apply, not a scan of its readings
    sensor_models = [str(r[0]) for r in conn.execute(
        sql.SQL("SELECT DISTINCT sensor_model FROM {} m WHERE m.device_id = %s").format(
            sql.SQL(DEVICE_MODELS)), (device_id,),
    )]  # fmt: skip
    for pollutant in pollutants:
        resolver = None if explicit is not None else cache.resolver(conn, device_id, pollutant)
        if explicit is not None:
            model_ids = [explicit.version_id]
        else:
            assert resolver is not None
            model_ids = sorted({*resolver.device.version.tolist(),
                                *(v for m in sensor_models
                                  for v in resolver.fleet_of(m).version.tolist())})  # fmt: skip
        if not model_ids:
            continue
        models = {v: cache.model(conn, v) for v in model_ids}
        names = list(dict.fromkeys(n for m in models.values() for n in (m.sensor, *m.inputs)))
        after: tuple[datetime, int] | None = None
        while True:
            with conn.transaction():
                seq, ts_pg, of_model, inputs = _read_chunk(conn, device_id, names, after, chunk)
                if seq.size == 0:
                    break
                after = (_PG_EPOCH + timedelta(microseconds=int(ts_pg[-1])), int(seq[-1]))
                if resolver is None:
                    assert explicit is not None
                    ver = np.full(seq.size, model_ids[0], dtype=np.int64)
                    if explicit.device_id is None:  # a fleet default: its model's readings
                        ver[np.asarray(of_model, dtype=object) != explicit.sensor_model] = 0
                else:
                    ver = resolver.versions_of(ts_pg + _PG_EPOCH_US, of_model)
                    # a model first seen since the list above was read: its readings are new
                    # and were calibrated as they were stored
                    ver[~np.isin(ver, model_ids)] = 0
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
