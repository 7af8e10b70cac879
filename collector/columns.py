"""Readings as columns: one message's (what the validator hands the writers) and a batch's
(what the writer checks and copies).

The validator fills a :class:`ReadingColumns` per message column by column, straight from the
decoded payload: no tuple per reading (a message of one plain reading, the usual live message,
is one :data:`ReadingRow` tuple instead). The writer joins the messages of a transaction into
numpy columns (:meth:`BatchColumns.join`): one conversion per column and batch, not one per
row. :meth:`ReadingColumns.rows` and :meth:`BatchColumns.rows` give rows in
``READING_COLUMNS`` order where one is needed: tests, the rare row ``copybin`` leaves to
psycopg's ``write_row``, calibration's fallback, the bare-COPY benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from luftnett.collector.qc import SeriesColumns
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

__all__ = [
    "BatchColumns",
    "Device",
    "ReadingColumns",
    "ReadingRow",
    "Readings",
    "Series",
    "as_columns",
    "as_stored",
    "count",
    "epoch_us",
]

#: (device_id, sensor model, sensor serial, agent version) of a message
Device = tuple[str, str, str | None, str]
#: (device_id, sensor model, sensor serial): one sensor's series, what quality control checks
Series = tuple[str, str, str | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_I_EXTRA = READING_COLUMNS.index("extra")
_V0 = READING_COLUMNS.index(VALUE_COLUMNS[0])
assert READING_COLUMNS[_V0 : _V0 + len(VALUE_COLUMNS)] == VALUE_COLUMNS


def epoch_us(ts: datetime) -> int:
    """Microseconds since 1970 of an aware time, exactly."""
    return (ts - _EPOCH) // _US


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~2 µs a message (setattr per field)
class ReadingColumns:
    """One message's readings, a sequence of ``len(self)`` per field (tuples, which cost less
    than lists to make and keep: a collector holds thousands of messages); not changed once
    made."""

    seq: Sequence[int]
    ts_us: Sequence[int]  #: exact microseconds since 1970 (the payload's ``ts``)
    window_s: Sequence[float]
    n_samples: Sequence[int]
    #: per value column (``VALUE_COLUMNS`` order): one value per reading, None where missing;
    #: None for a column no reading of the message has
    values: tuple[Sequence[float | None] | None, ...]
    flags: Sequence[int] | None = None  #: the edge's flag bits; None: all 0
    #: (model, serial) per reading; None: every reading is the payload's sensor's
    sensors: Sequence[tuple[str, str | None]] | None = None
    extra: Sequence[str | None] | None = None  #: JSON per reading; None: no reading has any
    schema_version: int = 1

    def __len__(self) -> int:
        return len(self.seq)

    @classmethod
    def of_row(cls, row: ReadingRow) -> ReadingColumns:
        return cls((row[0],), (row[1],), (row[2],), (row[3],),
                   tuple(None if v is None else (v,) for v in row[4:]))  # fmt: skip

    def rows(self, device: Device) -> list[tuple[Any, ...]]:
        """The readings as rows in ``READING_COLUMNS`` order (``ts`` an aware UTC time)."""
        n = len(self)
        none: Sequence[None] = [None] * n
        sensors = self.sensors or [device[1:3]] * n
        cols = [none if v is None else v for v in self.values]
        return [
            (device[0], int(self.seq[i]), _time(int(self.ts_us[i])), float(self.window_s[i]),
             int(self.n_samples[i]), *sensors[i], *(c[i] for c in cols),
             self.extra[i] if self.extra else None, int(self.flags[i]) if self.flags else 0,
             self.schema_version)
            for i in range(n)
        ]  # fmt: skip

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]]) -> ReadingColumns:
        """Rows in ``READING_COLUMNS`` order (one device's, one schema version) as columns."""
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(READING_COLUMNS)
        values = cols[_V0 : _V0 + len(VALUE_COLUMNS)]
        sensors = list(zip(cols[5], cols[6], strict=True))
        return cls(
            seq=cols[1],
            ts_us=[epoch_us(t) for t in cols[2]],
            window_s=cols[3],
            n_samples=cols[4],
            values=tuple(v if v.count(None) < len(v) else None for v in values),
            flags=cols[-2] if any(cols[-2]) else None,
            sensors=sensors,
            extra=cols[_I_EXTRA] if any(cols[_I_EXTRA]) else None,
            schema_version=int(cols[-1][0]) if rows else 1,
        )


_MESSAGE_FIELDS = attrgetter(
    "seq", "ts_us", "window_s", "n_samples", "values", "flags", "sensors", "extra",
    "schema_version",
)  # fmt: skip
_DEVICE_FIELDS = itemgetter(0, 1, 2)


#: A message of one plain reading (no flags, window statistics, sensor of its own or quantity
#: without a column; schema version 1), the usual live message: ``(seq, ts_us, window_s,
#: n_samples, *values)``, values in ``VALUE_COLUMNS`` order (None where missing). One tuple
#: costs far less to make and keep than a ReadingColumns of one-element columns.
ReadingRow = tuple[Any, ...]
Readings = ReadingColumns | ReadingRow


def count(readings: Readings) -> int:
    """How many readings a message holds."""
    return 1 if isinstance(readings, tuple) else len(readings)


def as_columns(readings: Readings) -> ReadingColumns:
    return ReadingColumns.of_row(readings) if isinstance(readings, tuple) else readings


def _per_message(values: Iterable[int], counts: list[int]) -> npt.NDArray[np.int64]:
    """One value per message, repeated for each of its readings."""
    return np.repeat(np.fromiter(values, np.int64, len(counts)), counts)


def _spread(parts: Sequence[Sequence[Any] | None], counts: list[int], fill: Any) -> Iterator[Any]:
    """The messages' parts one after the other, ``fill`` for each reading of a None part."""
    if parts.count(None) == 0:
        return chain.from_iterable(parts)  # type: ignore[arg-type]
    return chain.from_iterable(
        repeat(fill, k) if p is None else p for p, k in zip(parts, counts, strict=True)
    )


def as_stored(vals: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``vals`` rounded to ``real`` (float32) as the readings table stores them, in float64;
    beyond real's range: infinity, as stored."""
    with np.errstate(over="ignore"):
        return vals.astype(np.float32).astype(np.float64)


@dataclass(frozen=True, slots=True)
class BatchColumns:
    """The readings of a batch as numpy columns, one entry per reading.

    Device codes index ``names`` (sorted); ``model`` and ``serial`` are codes into ``texts``.
    ``vals`` holds the value columns as stored: rounded to ``real`` (float32), the type of
    their columns, so that quality control, calibration and rollups see a new reading's values
    as they see it once stored (12.3 is not a ``real``: compared unrounded with a stored 12.3,
    a stuck sensor's newest reading would not repeat it); NaN where missing (JSON has none)."""

    names: list[str]
    dev: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]
    ts_us: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]  #: seconds since 1970 (``ts_us / 1e6``, as datetime.timestamp)
    window_s: npt.NDArray[np.float64]
    n_samples: npt.NDArray[np.int64]
    vals: npt.NDArray[np.float64]
    edge: npt.NDArray[np.int64]
    texts: list[str | None]
    model: npt.NDArray[np.int64]
    serial: npt.NDArray[np.int64]
    extra: list[str | None] | None  #: None: no reading has any
    schema: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.seq.size)

    @classmethod
    def join(cls, messages: Sequence[tuple[Device, Readings]]) -> BatchColumns:
        """The readings of the messages (at least one), in message order: each column in one
        pass over the messages, in C (a batch may hold thousands of one-reading messages)."""
        devices, readings = zip(*messages, strict=True)
        kinds = set(map(type, readings))
        if kinds == {tuple}:
            return cls._join_rows(devices, readings)
        cols = list(map(as_columns, readings)) if tuple in kinds else readings
        seq, ts_us, window_s, n_samples, values, flags, sensors, extra, schema = zip(
            *map(_MESSAGE_FIELDS, cols), strict=True
        )
        counts = list(map(len, seq))
        n = sum(counts)
        ids, models, serials = zip(*map(_DEVICE_FIELDS, devices), strict=True)
        names = sorted(set(ids))
        dev_code = {d: i for i, d in enumerate(names)}
        # sensor texts: one (model, serial) per message, unless it names its readings' own
        own = sensors.count(None) != len(sensors)
        uniq = dict.fromkeys(chain(models, serials))
        if own:
            for s in sensors:
                uniq.update(dict.fromkeys(chain.from_iterable(s or ())))
        text_code = {t: k for k, t in enumerate(uniq)}
        if own:
            m_all = chain.from_iterable(
                repeat(m, k) if s is None else [x[0] for x in s]
                for m, s, k in zip(models, sensors, counts, strict=True)
            )
            s_all = chain.from_iterable(
                repeat(v, k) if s is None else [x[1] for x in s]
                for v, s, k in zip(serials, sensors, counts, strict=True)
            )
            model = np.fromiter(map(text_code.__getitem__, m_all), np.int64, n)
            serial = np.fromiter(map(text_code.__getitem__, s_all), np.int64, n)
        else:
            model = _per_message(map(text_code.__getitem__, models), counts)
            serial = _per_message(map(text_code.__getitem__, serials), counts)
        # values column by column; a column no message has stays NaN
        vals = np.full((n, len(VALUE_COLUMNS)), np.nan)
        for j, parts in enumerate(zip(*values, strict=True)):
            if parts.count(None) == len(parts):
                continue
            vals[:, j] = np.fromiter(_spread(parts, counts, None), np.float64, n)  # None: NaN
        vals = as_stored(vals)
        no_flags, no_extra = flags.count(None) == len(flags), extra.count(None) == len(extra)
        ts = np.fromiter(chain.from_iterable(ts_us), np.int64, n)
        return cls(
            names=names,
            dev=_per_message(map(dev_code.__getitem__, ids), counts),
            seq=np.fromiter(chain.from_iterable(seq), np.int64, n),
            ts_us=ts,
            t=ts / 1e6,
            window_s=np.fromiter(chain.from_iterable(window_s), np.float64, n),
            n_samples=np.fromiter(chain.from_iterable(n_samples), np.int64, n),
            vals=vals,
            edge=np.fromiter(_spread(flags, counts, 0), np.int64, n) if not no_flags
            else np.zeros(n, np.int64),
            texts=list(text_code),
            model=model,
            serial=serial,
            extra=None if no_extra else list(_spread(extra, counts, None)),
            schema=_per_message(schema, counts),
        )  # fmt: skip

    @classmethod
    def _join_rows(cls, devices: Sequence[Device], rows: Sequence[ReadingRow]) -> BatchColumns:
        """:meth:`join` of messages that are all one :data:`ReadingRow` each."""
        n = len(rows)
        seq, ts_us, window_s, n_samples, *values = zip(*rows, strict=True)
        ids, models, serials = zip(*map(_DEVICE_FIELDS, devices), strict=True)
        names = sorted(set(ids))
        dev_code = {d: i for i, d in enumerate(names)}
        text_code = {t: k for k, t in enumerate(dict.fromkeys(chain(models, serials)))}
        vals = np.full((n, len(VALUE_COLUMNS)), np.nan)
        for j, col in enumerate(values):
            missing = col.count(None)
            if missing == 0:
                vals[:, j] = col
            elif missing < n:
                vals[:, j] = np.array(col, dtype=np.float64)  # None -> NaN
        vals = as_stored(vals)
        ts = np.fromiter(ts_us, np.int64, n)
        return cls(
            names=names,
            dev=np.fromiter(map(dev_code.__getitem__, ids), np.int64, n),
            seq=np.fromiter(seq, np.int64, n),
            ts_us=ts,
            t=ts / 1e6,
            window_s=np.fromiter(window_s, np.float64, n),
            n_samples=np.fromiter(n_samples, np.int64, n),
            vals=vals,
            edge=np.zeros(n, np.int64),
            texts=list(text_code),
            model=np.fromiter(map(text_code.__getitem__, models), np.int64, n),
            serial=np.fromiter(map(text_code.__getitem__, serials), np.int64, n),
            extra=None,
            schema=np.ones(n, np.int64),
        )

    def series(self) -> SeriesColumns:
        """The columns quality control and dedupe look at."""
        return SeriesColumns(self.dev, self.seq, self.t, self.vals, self.edge)

    def sensor_series(self) -> tuple[list[Series], npt.NDArray[np.int64]]:
        """Each reading's sensor series: the distinct (device, model, serial) of the batch,
        sorted by device code, and per reading its index into them. A device with two sensors
        (a PM sensor and its temperature/RH companion) sends a reading of each per window: the
        stuck and spike checks follow each sensor's readings, not the device's mixed ones."""
        n_t = len(self.texts)
        key = (self.dev * n_t + self.model) * n_t + self.serial
        uniq, code = np.unique(key, return_inverse=True)
        texts, names = self.texts, self.names
        series: list[Series] = [
            (names[k // n_t // n_t], texts[k // n_t % n_t], texts[k % n_t]) for k in uniq.tolist()
        ]
        return series, code.reshape(-1).astype(np.int64)

    def take(self, idx: npt.NDArray[np.intp]) -> BatchColumns:
        """The readings at ``idx`` (same names and texts)."""
        extra = self.extra
        return BatchColumns(
            names=self.names,
            dev=self.dev[idx],
            seq=self.seq[idx],
            ts_us=self.ts_us[idx],
            t=self.t[idx],
            window_s=self.window_s[idx],
            n_samples=self.n_samples[idx],
            vals=self.vals.take(idx, axis=0),
            edge=self.edge[idx],
            texts=self.texts,
            model=self.model[idx],
            serial=self.serial[idx],
            extra=None if extra is None else [extra[i] for i in idx.tolist()],
            schema=self.schema[idx],
        )

    def rows(self) -> list[tuple[Any, ...]]:
        """Every reading as a row in ``READING_COLUMNS`` order (its edge flags)."""
        return [self.row(i, f) for i, f in enumerate(self.edge.tolist())]

    def row(self, i: int, flags: int) -> tuple[Any, ...]:
        """Reading ``i`` as a row in ``READING_COLUMNS`` order, with these ``flags``."""
        return (
            self.names[int(self.dev[i])], int(self.seq[i]), _time(int(self.ts_us[i])),
            float(self.window_s[i]), int(self.n_samples[i]), self.texts[int(self.model[i])],
            self.texts[int(self.serial[i])],
            *(None if np.isnan(v) else v for v in self.vals[i].tolist()),
            self.extra[i] if self.extra is not None else None, flags, int(self.schema[i]),
        )  # fmt: skip
