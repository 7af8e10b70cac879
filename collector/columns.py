"""Readings as columns: one message's (what the validator hands the writers) and a batch's
(what the writer checks and copies).

The validator fills a :class:`ReadingColumns` per message column by column, straight from the
decoded payload: no tuple per reading. The writer joins the messages of a transaction into
numpy columns (:meth:`BatchColumns.join`): one conversion per column and batch, not one per
row. :meth:`ReadingColumns.rows` and :meth:`BatchColumns.row` give rows in
``READING_COLUMNS`` order where one is needed: tests, the rare row ``copybin`` leaves to
psycopg's ``write_row``, the bare-COPY benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from luftnett.collector.qc import SeriesColumns
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

__all__ = ["BatchColumns", "Device", "ReadingColumns", "epoch_us"]

#: (device_id, sensor model, sensor serial, agent version) of a message
Device = tuple[str, str, str | None, str]

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
    """One message's readings, a sequence (list, tuple or array) of ``len(self)`` per field;
    not changed once made."""

    seq: Sequence[int]
    ts_us: Sequence[int]  #: exact microseconds since 1970 (the payload's ``ts``)
    window_s: Sequence[float]
    n_samples: Sequence[int]
    #: value column -> one value per reading, None where missing; a column no reading of
    #: the message has is left out
    values: Mapping[str, Sequence[float | None]]
    flags: Sequence[int] | None = None  #: the edge's flag bits; None: all 0
    #: (model, serial) per reading; None: every reading is the payload's sensor's
    sensors: Sequence[tuple[str, str | None]] | None = None
    extra: Sequence[str | None] | None = None  #: JSON per reading; None: no reading has any
    schema_version: int = 1

    def __len__(self) -> int:
        return len(self.seq)

    def rows(self, device: Device) -> list[tuple[Any, ...]]:
        """The readings as rows in ``READING_COLUMNS`` order (``ts`` an aware UTC time)."""
        n = len(self)
        none: Sequence[None] = [None] * n
        sensors = self.sensors or [device[1:3]] * n
        cols = [self.values.get(c, none) for c in VALUE_COLUMNS]
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
        values = {c: cols[_V0 + j] for j, c in enumerate(VALUE_COLUMNS)}
        sensors = list(zip(cols[5], cols[6], strict=True))
        return cls(
            seq=cols[1],
            ts_us=[epoch_us(t) for t in cols[2]],
            window_s=cols[3],
            n_samples=cols[4],
            values={c: v for c, v in values.items() if v.count(None) < len(v)},
            flags=cols[-2] if any(cols[-2]) else None,
            sensors=sensors,
            extra=cols[_I_EXTRA] if any(cols[_I_EXTRA]) else None,
            schema_version=int(cols[-1][0]) if rows else 1,
        )


def _flat(parts: Sequence[Sequence[Any]], dtype: type, n: int) -> npt.NDArray[Any]:
    return np.fromiter(chain.from_iterable(parts), dtype, n)


@dataclass(frozen=True, slots=True)
class BatchColumns:
    """The readings of a batch as numpy columns, one entry per reading.

    Device codes index ``names`` (sorted); ``model`` and ``serial`` are codes into ``texts``.
    ``vals`` holds the value columns (NaN where missing: JSON has no NaN)."""

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
    def join(cls, messages: Sequence[tuple[Device, ReadingColumns]]) -> BatchColumns:
        """The readings of the messages, in message order."""
        cols = [c for _, c in messages]
        lengths = np.fromiter(map(len, cols), np.int64, len(cols))
        n = int(lengths.sum())
        names = sorted({d[0] for d, _ in messages})
        code = {d: i for i, d in enumerate(names)}
        texts: dict[str | None, int] = {}
        # sensors: one (model, serial) per message, unless a message names its readings' own
        models = [texts.setdefault(d[1], len(texts)) for d, _ in messages]
        serials = [texts.setdefault(d[2], len(texts)) for d, _ in messages]
        model = np.repeat(np.array(models, dtype=np.int64), lengths)
        serial = np.repeat(np.array(serials, dtype=np.int64), lengths)
        if any(c.sensors is not None for c in cols):
            ms = [
                [texts.setdefault(s[0], len(texts)) for s in c.sensors]
                if c.sensors is not None
                else repeat(m, len(c))
                for c, m in zip(cols, models, strict=True)
            ]
            ss = [
                [texts.setdefault(s[1], len(texts)) for s in c.sensors]
                if c.sensors is not None
                else repeat(s, len(c))
                for c, s in zip(cols, serials, strict=True)
            ]
            model, serial = _flat(ms, np.int64, n), _flat(ss, np.int64, n)
        # values column by column: most columns of a batch are all set or all missing (a
        # sensor measures the same quantities every time), which need no None check per value
        vals = np.full((n, len(VALUE_COLUMNS)), np.nan)
        for j, c in enumerate(VALUE_COLUMNS):
            parts = [m.values.get(c) for m in cols]
            if parts.count(None) == len(parts):
                continue
            flat = list(
                chain.from_iterable(
                    repeat(None, len(m)) if p is None else p for m, p in zip(cols, parts, strict=True)
                )
            )
            if flat.count(None) == 0:
                vals[:, j] = flat
            else:
                vals[:, j] = np.array(flat, dtype=np.float64)  # None -> NaN
        flags = [c.flags for c in cols]
        edge = (
            np.zeros(n, dtype=np.int64)
            if flags.count(None) == len(flags)
            else _flat([repeat(0, len(c)) if f is None else f for c, f in zip(cols, flags, strict=True)], np.int64, n)
        )
        extras = [c.extra for c in cols]
        extra = (
            None
            if extras.count(None) == len(extras)
            else list(chain.from_iterable(repeat(None, len(c)) if e is None else e for c, e in zip(cols, extras, strict=True)))
        )
        ts_us = _flat([c.ts_us for c in cols], np.int64, n)
        return cls(
            names=names,
            dev=np.repeat(np.array([code[d[0]] for d, _ in messages], dtype=np.int64), lengths),
            seq=_flat([c.seq for c in cols], np.int64, n),
            ts_us=ts_us,
            t=ts_us / 1e6,
            window_s=_flat([c.window_s for c in cols], np.float64, n),
            n_samples=_flat([c.n_samples for c in cols], np.int64, n),
            vals=vals,
            edge=edge,
            texts=list(texts),
            model=model,
            serial=serial,
            extra=extra,
            schema=np.repeat(
                np.array([c.schema_version for c in cols], dtype=np.int64), lengths
            ),
        )

    def series(self) -> SeriesColumns:
        """The columns quality control and dedupe look at."""
        return SeriesColumns(self.dev, self.seq, self.t, self.vals, self.edge)

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
            vals=self.vals[idx],
            edge=self.edge[idx],
            texts=self.texts,
            model=self.model[idx],
            serial=self.serial[idx],
            extra=None if extra is None else [extra[i] for i in idx.tolist()],
            schema=self.schema[idx],
        )

    def row(self, i: int, flags: int) -> tuple[Any, ...]:
        """Reading ``i`` as a row in ``READING_COLUMNS`` order, with these ``flags``."""
        return (
            self.names[int(self.dev[i])], int(self.seq[i]), _time(int(self.ts_us[i])),
            float(self.window_s[i]), int(self.n_samples[i]), self.texts[int(self.model[i])],
            self.texts[int(self.serial[i])],
            *(None if np.isnan(v) else v for v in self.vals[i].tolist()),
            self.extra[i] if self.extra is not None else None, flags, int(self.schema[i]),
        )  # fmt: skip
