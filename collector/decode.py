"""The collector's fast decoder: msgspec structs that mirror the pydantic contract.

:mod:`luftnett.contracts.mqtt` (pydantic) stays the one definition of a readings payload.
This module restates its types and limits as msgspec structs, which parse and check a payload
in C about ten times faster, and builds the reading columns straight from them. It is a filter,
never a second opinion: a payload it accepts is one the contract accepts, with the same rows
(:meth:`~luftnett.collector.columns.ReadingColumns.rows`; tests/unit/test_collector_decode.py holds both to that with hypothesis, and checks every limit
here against the pydantic field metadata); whatever it does not accept (bad input, or a form
the contract's lax parsing allows, such as a number as a string) goes to
:func:`~luftnett.contracts.mqtt.decode_readings`, which accepts it or gives the reason code.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import floordiv, sub
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from luftnett.collector.columns import Device, ReadingColumns
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import VALUE_COLUMNS

__all__ = ["REAL_MAX", "fast_columns"]

_F_MAX = sys.float_info.max
# finite: JSON has no NaN, and an overflowing literal (1e999) parses as inf, refused here
FiniteFloat = Annotated[float, Meta(ge=-_F_MAX, le=_F_MAX)]
#: largest magnitude a ``real`` column holds; a larger value (finite, so the contract allows it)
#: goes the slow way, where :func:`~luftnett.collector.validate.validate_message` refuses it
REAL_MAX = 3.4028234663852886e38
ColumnFloat = Annotated[float, Meta(ge=-REAL_MAX, le=REAL_MAX)]


class _Sensor(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    model: str
    serial: Annotated[str, Meta(max_length=64)] | None = None


class _Reading(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seq: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    ts: Annotated[datetime, Meta(tz=True)]
    window_s: Annotated[float, Meta(gt=0, le=86_400)]
    n_samples: Annotated[int, Meta(ge=0, le=1_000_000)]
    values: dict[str, ColumnFloat]
    flags: list[str] = []
    sensor: _Sensor | None = None
    n: dict[str, int] | None = None
    min: dict[str, FiniteFloat] | None = None
    max: dict[str, FiniteFloat] | None = None
    n_warmup: Annotated[int, Meta(ge=0)] | None = None


class _Payload(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    device_id: str
    agent_version: Annotated[str, Meta(max_length=40)]
    sensor: _Sensor
    readings: Annotated[list[_Reading], Meta(min_length=1, max_length=contract.MAX_BATCH)]
    schema_version: Literal[1] = 1


_DECODER = msgspec.json.Decoder(_Payload)
# msgspec rounds a 7th+ decimal of the seconds, pydantic cuts it off: such times go the slow way
_SUB_MICRO = re.compile(rb":\d\d[.,]\d{7}").search  # a literal first: a fast scan
# fullmatch: pydantic's (Rust) regex has no "$ before a final newline" as Python's re has
_DEVICE = re.compile(contract.DEVICE_ID_PATTERN.removeprefix("^").removesuffix("$")).fullmatch
_MODEL = re.compile(r"[a-z0-9-]{2,20}").fullmatch
_KNOWN_QUANTITIES = frozenset(QUANTITIES)
_FLAG_BITS = {f.name.lower(): int(f.value) for f in ReadingFlag if f.name}
_COLUMNS = frozenset(VALUE_COLUMNS)
_STATS = ("min", "max", "n", "n_warmup")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _sensor_ok(s: _Sensor) -> bool:
    return _MODEL(s.model) is not None


_ASTUPLE = msgspec.structs.astuple
_GET = dict.get


def _plain(readings: list[_Reading]) -> ReadingColumns | None:
    """The columns of readings that hold column values only (no flags, window statistics or
    sensor of their own): one pass per field, in C, no loop per reading; or None when some
    reading is not plain."""
    if len(readings) == 1:  # a message of one reading (the usual live message): no passes
        r = readings[0]
        if (
            r.values.keys() <= _COLUMNS
            and r.min is None
            and r.max is None
            and r.n is None
            and r.n_warmup is None
            and not r.flags
            and r.sensor is None
        ):
            return ReadingColumns([r.seq], [(r.ts - _EPOCH) // _US], [r.window_s],
                                  [r.n_samples], {c: [v] for c, v in r.values.items()})  # fmt: skip
        return None
    (seq, ts, window_s, n_samples, values, flags, sensor, n, mn, mx, n_warmup) = zip(
        *map(_ASTUPLE, readings)
    )
    k = len(seq)
    if any(flags) or sensor.count(None) != k or n.count(None) != k or mn.count(None) != k:
        return None
    if mx.count(None) != k or n_warmup.count(None) != k:
        return None
    named = set().union(*values)
    if not named <= _COLUMNS:
        return None
    return ReadingColumns(
        seq=seq,
        ts_us=_micros(ts),
        window_s=window_s,
        n_samples=n_samples,
        values={c: list(map(_GET, values, repeat(c))) for c in named},
    )


def _micros(ts: Sequence[datetime]) -> list[int]:
    return list(map(floordiv, map(sub, ts, repeat(_EPOCH)), repeat(_US)))


def fast_columns(data: bytes, topic_device: str) -> tuple[Device, ReadingColumns] | None:
    """``(device, columns)`` of a payload, as :func:`~luftnett.collector.validate.
    payload_rows` gives its rows, or None when this decoder does not accept the payload (the
    contract's parser decides then)."""
    if len(data) > contract.MAX_PAYLOAD_BYTES or _SUB_MICRO(data) is not None:
        return None
    try:
        p = _DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if p.device_id != topic_device or _DEVICE(p.device_id) is None or not _sensor_ok(p.sensor):
        return None
    device = (p.device_id, p.sensor.model, p.sensor.serial, p.agent_version)
    cols = _plain(p.readings)
    if cols is not None:
        return device, cols
    # some reading has flags, window statistics, a sensor of its own or quantities without
    # a column: reading by reading
    dumps = json.dumps
    known = _KNOWN_QUANTITIES
    bits = _FLAG_BITS
    extras: list[str | None] = []
    edge: list[int] = []
    sensors: list[tuple[str, str | None]] = []
    for r in p.readings:
        vals = r.values
        keys = vals.keys()
        extra: dict[str, Any] | None = None
        if not keys <= _COLUMNS:
            if not keys <= known:
                return None
            extra = {k: vals[k] for k in keys - _COLUMNS}
        if r.min is not None or r.max is not None or r.n is not None or r.n_warmup is not None:
            for stat in (r.min, r.max, r.n):
                if stat and not stat.keys() <= known:
                    return None
            extra = extra or {}
            for key in _STATS:
                value = getattr(r, key)
                if value is not None:
                    extra[key] = value
        flags = 0
        for name in r.flags:
            bit = bits.get(name)
            if bit is None:
                return None
            flags |= bit
        s = p.sensor
        if r.sensor is not None:
            if not _sensor_ok(r.sensor):
                return None
            s = r.sensor
        extras.append(dumps(extra) if extra else None)
        edge.append(flags)
        sensors.append((s.model, s.serial))
    rs = p.readings
    values = [r.values for r in rs]
    named = set().union(*values) & _COLUMNS
    return device, ReadingColumns(
        seq=[r.seq for r in rs],
        ts_us=_micros([r.ts for r in rs]),
        window_s=[r.window_s for r in rs],
        n_samples=[r.n_samples for r in rs],
        values={c: list(map(_GET, values, repeat(c))) for c in named},
        flags=edge if any(edge) else None,
        sensors=sensors if any(r.sensor is not None for r in rs) else None,
        extra=extras if any(extras) else None,
    )
