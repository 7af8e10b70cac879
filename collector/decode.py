"""The collector's fast decoder: msgspec structs that mirror the pydantic contract.

:mod:`luftnett.contracts.mqtt` (pydantic) stays the one definition of a readings payload.
This module restates its types and limits as msgspec structs, which parse and check a payload
in C about ten times faster, and builds the reading columns straight from them (one pass per
field, no tuple per reading; a payload of one plain reading is one tuple, a ``ReadingRow``).
It is a filter, never a second opinion: a payload it accepts is one the contract accepts, with
the same rows (tests/unit/test_collector_decode.py holds both to that with hypothesis, both
ways of parsing the times, and checks every limit here against the pydantic field metadata);
whatever it does not accept (bad input, or a form the contract's lax parsing allows, such as a
number as a string) goes to :func:`~luftnett.contracts.mqtt.decode_readings`, which accepts it
or gives the reason code.

Times: msgspec parses a small payload's ``ts`` into datetimes; a larger payload keeps them as
text, and numpy parses the usual forms in one call (:func:`_text_us`): a datetime per reading
and its conversion to microseconds cost more than decoding the rest of the reading.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import floordiv, sub
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType

from luftnett.collector.columns import Device, ReadingColumns, Readings, epoch_us
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import VALUE_COLUMNS

__all__ = ["REAL_MAX", "TEXT_TS_BYTES", "decode_columns", "fast_columns"]

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


# A reading's window statistics (quantity -> value): structs with a field per known quantity
# rather than dicts, so msgspec refuses an unknown quantity and builds no dict (the edge agent
# sends them in every reading: about a third of the decoding was these three dicts); a
# quantity the payload leaves out is UNSET, which the encoder of ``extra`` leaves out too.
if TYPE_CHECKING:

    class _Floats(msgspec.Struct): ...

    class _Ints(msgspec.Struct): ...

else:

    def _stats(name: str, kind: Any) -> type[msgspec.Struct]:
        return msgspec.defstruct(
            name,
            [(q, kind | UnsetType, UNSET) for q in QUANTITIES],
            forbid_unknown_fields=True,
            frozen=True,
            gc=False,
        )

    _Floats = _stats("_Floats", FiniteFloat)
    _Ints = _stats("_Ints", int)


TzDatetime = Annotated[datetime, Meta(tz=True)]
#: ``ts`` as msgspec parses it (TzDatetime), or as its text, parsed by :func:`_text_us`
T = TypeVar("T", TzDatetime, str)


class _Reading(msgspec.Struct, Generic[T], forbid_unknown_fields=True, frozen=True):
    seq: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    ts: T
    window_s: Annotated[float, Meta(gt=0, le=86_400)]
    n_samples: Annotated[int, Meta(ge=0, le=1_000_000)]
    values: dict[str, ColumnFloat]
    flags: list[str] = []
    sensor: _Sensor | None = None
    n: _Ints | None = None
    min: _Floats | None = None
    max: _Floats | None = None
    n_warmup: Annotated[int, Meta(ge=0)] | None = None


class _Payload(msgspec.Struct, Generic[T], forbid_unknown_fields=True, frozen=True):
    device_id: str
    agent_version: Annotated[str, Meta(max_length=40)]
    sensor: _Sensor
    readings: Annotated[list[_Reading[T]], Meta(min_length=1, max_length=contract.MAX_BATCH)]
    schema_version: Literal[1] = 1


class _Times(msgspec.Struct, array_like=True):
    ts: list[TzDatetime]


_DECODER = msgspec.json.Decoder(_Payload[TzDatetime])
# a larger payload keeps its times as text, for numpy to parse in one call (a datetime per
# reading, and its conversion to microseconds, cost more than decoding all the rest)
_TEXT_DECODER = msgspec.json.Decoder(_Payload[str])
TEXT_TS_BYTES = 2048  # from this payload size on (about 20 readings)
# msgspec rounds a 7th+ decimal of the seconds, pydantic cuts it off: such times go the slow way
_SUB_MICRO = re.compile(rb":\d\d[.,]\d{7}").search  # a literal first: a fast scan
_SUB_MICRO_TEXT = re.compile(r":\d\d[.,]\d{7}").search
# fullmatch: pydantic's (Rust) regex has no "$ before a final newline" as Python's re has
_DEVICE = re.compile(contract.DEVICE_ID_PATTERN.removeprefix("^").removesuffix("$")).fullmatch
_MODEL = re.compile(r"[a-z0-9-]{2,20}").fullmatch
_KNOWN_QUANTITIES = frozenset(QUANTITIES)
_FLAG_BITS = {f.name.lower(): int(f.value) for f in ReadingFlag if f.name}
_COLUMNS = frozenset(VALUE_COLUMNS)
_COLUMN_AT = {c: j for j, c in enumerate(VALUE_COLUMNS)}
_STATS = ("min", "max", "n", "n_warmup")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _sensor_ok(s: _Sensor) -> bool:
    return _MODEL(s.model) is not None


_ASTUPLE = msgspec.structs.astuple
#: a reading's ``extra`` as JSON: msgspec's encoder, ~10 times faster than ``json.dumps`` (the
#: same JSON values; the column is jsonb, which keeps values, not text)
_ENCODER = msgspec.json.Encoder()
_EXTRA_JSON, _EXTRA_LINES = _ENCODER.encode, _ENCODER.encode_lines


class _Extra(msgspec.Struct, omit_defaults=True, gc=False):
    """A reading's ``extra`` when all its quantities have columns: its window statistics (a
    field left None is left out; JSON text has no raw newline, so the texts of many readings
    encode in one call, a line each)."""

    min: Any = None
    max: Any = None
    n: Any = None
    n_warmup: Any = None


_GET = dict.get


def _plain(readings: list[_Reading[Any]]) -> Readings | None:
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
            if isinstance(r.ts, datetime):
                us = epoch_us(r.ts)
            else:
                us_text = _micros([r.ts])
                if us_text is None:
                    return None
                us = us_text[0]
            return (r.seq, us, r.window_s, r.n_samples, *map(r.values.get, VALUE_COLUMNS))
        return None
    (seq, ts, window_s, n_samples, values, flags, sensor, n, mn, mx, n_warmup) = zip(
        *map(_ASTUPLE, readings), strict=True
    )
    k = len(seq)
    if any(flags) or sensor.count(None) != k or n.count(None) != k or mn.count(None) != k:
        return None
    if mx.count(None) != k or n_warmup.count(None) != k:
        return None
    named = set().union(*values)
    ts_us = _micros(ts)
    if not named <= _COLUMNS or ts_us is None:
        return None
    return ReadingColumns(
        seq=seq,
        ts_us=ts_us,
        window_s=window_s,
        n_samples=n_samples,
        values=_value_columns(values, named),
    )


def _value_columns(
    values: Sequence[dict[str, float]], named: set[str]
) -> tuple[tuple[float | None, ...] | None, ...]:
    """Per value column, the readings' values (None where missing), or None if none has it."""
    return tuple(tuple(map(_GET, values, repeat(c))) if c in named else None for c in VALUE_COLUMNS)


def _micros(ts: Sequence[datetime | str]) -> list[int] | None:
    """Microseconds since 1970 of each time (datetimes, or texts parsed as msgspec parses a
    payload's ``ts``); None when a text is no aware time, or has digits past the microsecond
    (msgspec rounds them, pydantic cuts them off: such a payload goes the slow way)."""
    if ts and isinstance(ts[0], str):
        texts: Sequence[str] = ts  # type: ignore[assignment]
        fast = _text_us(texts)
        if fast is not None:
            return fast
        if any(map(_SUB_MICRO_TEXT, texts)):
            return None
        try:
            ts = msgspec.convert([texts], _Times).ts
        except msgspec.ValidationError:
            return None
    return list(map(floordiv, map(sub, ts, repeat(_EPOCH)), repeat(_US)))


# the texts numpy parses: 2026-11-22T10:00:00Z and 2026-11-22T10:00:00.123456Z, what the edge
# sends; each digit is "d" to bytes.translate, the rest as it is
_DIGITS = bytes.maketrans(b"0123456789", b"dddddddddd")
_TEXT_FORMS = {
    len(f): f.encode() + b"|" for f in ("dddd-dd-ddTdd:dd:ddZ", "dddd-dd-ddTdd:dd:dd.ddddddZ")
}


def _text_us(ts: Sequence[str]) -> list[int] | None:
    """Microseconds since 1970 of times in one of the forms of ``_TEXT_FORMS`` (all the
    same), parsed by numpy in one call; None for any other form, or a time that does not
    exist (hour 24, 30 February, year 0: msgspec decides those)."""
    n, width = len(ts), len(ts[0])
    form = _TEXT_FORMS.get(width)
    if form is None:
        return None
    # joined by "|": the texts are all of the form exactly when the joined text, digits
    # made "d", is the form n times (an odd length, a "|" or non-ASCII in a text all differ)
    raw = "|".join(ts).encode()
    if raw.translate(_DIGITS) != (form * n)[:-1] or b"0" in raw[:: width + 1]:  # year 0xxx
        return None
    try:  # without the Z (numpy warns of it); numpy refuses a field out of range
        us = np.frombuffer((raw + b"|").replace(b"Z|", b""), f"S{width - 1}").astype("M8[us]")
    except ValueError:
        return None
    return us.view(np.int64).tolist()  # type: ignore[no-any-return]


def _extra_text(
    values: dict[str, float], mn: Any, mx: Any, n: Any, n_warmup: int | None
) -> str | None:
    """A reading's ``extra``: its quantities without a column and its window statistics."""
    extra: dict[str, Any] = {k: values[k] for k in values.keys() - _COLUMNS}
    for key, value in zip(_STATS, (mn, mx, n, n_warmup), strict=True):
        if value is not None:
            extra[key] = value
    return _EXTRA_JSON(extra).decode() if extra else None


def fast_columns(data: bytes, topic_device: str) -> tuple[Device, Readings] | None:
    """``(device, columns)`` of a payload, as :func:`~luftnett.collector.validate.
    payload_rows` gives its rows, or None when this decoder does not accept the payload (the
    contract's parser decides then)."""
    return decode_columns(data, topic_device, text_ts=len(data) >= TEXT_TS_BYTES)


def decode_columns(data: bytes, topic_device: str, text_ts: bool) -> tuple[Device, Readings] | None:
    """:func:`fast_columns` with the times parsed by msgspec (``text_ts`` False) or kept as
    text for :func:`_text_us` (the same result: tests hold both to the contract)."""
    if len(data) > contract.MAX_PAYLOAD_BYTES:
        return None
    if not text_ts and _SUB_MICRO(data) is not None:  # as text, _micros looks at each time
        return None
    try:
        p = (_TEXT_DECODER if text_ts else _DECODER).decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if p.device_id != topic_device or _DEVICE(p.device_id) is None or not _sensor_ok(p.sensor):
        return None
    device = (p.device_id, p.sensor.model, p.sensor.serial, p.agent_version)
    cols = _plain(p.readings)
    if cols is not None:
        return device, cols
    # some reading has flags, window statistics, a sensor of its own or quantities without
    # a column: field by field, and the readings' extra texts in one call when every quantity
    # has a column (the edge agent's readings: statistics only)
    rs = p.readings
    k = len(rs)
    (seq, ts, window_s, n_samples, values, flag_names, own, n, mn, mx, n_warmup) = zip(
        *map(_ASTUPLE, rs), strict=True
    )
    named = set().union(*values)
    if not named <= _KNOWN_QUANTITIES:
        return None
    edge = [0] * k
    if any(flag_names):
        bits = _FLAG_BITS
        for i, names in enumerate(flag_names):
            for name in names:
                bit = bits.get(name)
                if bit is None:
                    return None
                edge[i] |= bit
    sensors = None
    if own.count(None) != k:
        ps = p.sensor
        for s in own:
            if s is not None and not _sensor_ok(s):
                return None
        sensors = [(ps.model, ps.serial) if s is None else (s.model, s.serial) for s in own]
    extras: list[str | None]
    if named <= _COLUMNS:
        lines = _EXTRA_LINES(map(_Extra, mn, mx, n, n_warmup)).decode().split("\n")
        extras = [None if t == "{}" else t for t in lines[:k]]
    else:
        extras = list(map(_extra_text, values, mn, mx, n, n_warmup))
    ts_us = _micros(ts)
    if ts_us is None:
        return None
    return device, ReadingColumns(
        seq=seq,
        ts_us=ts_us,
        window_s=window_s,
        n_samples=n_samples,
        values=_value_columns(values, named & _COLUMNS),
        flags=edge if any(edge) else None,
        sensors=sensors,
        extra=extras if any(extras) else None,
    )
