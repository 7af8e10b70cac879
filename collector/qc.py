"""Automatic quality control of readings: pure functions, one registry of checks.

Each reading gets two bit masks over :class:`~luftnett.contracts.units.ReadingFlag`:
``checks`` (which checks ran) and ``flags`` (which fired). A check that could not run (no RH
in the reading, too few neighbours for a spike) leaves its bit out of ``checks``, so "not
flagged" and "not checked" stay apart. docs/quality.md lists the checks and their limits.

Point checks look at one reading: range, high humidity, clock, and the edge's own bits.
Series checks (stuck value, spike) look at a device's readings in time order: the batch being
written merged with the stored neighbours of each device (:func:`series_flags`), which the
writer loads with one query per batch. Nothing is kept in memory between batches, so several
collectors on a shared subscription give the same flags, and late or out-of-order readings are
checked against their true neighbours.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from luftnett.contracts.units import EDGE_FLAGS, ReadingFlag

__all__ = [
    "DEFAULT_QC",
    "RANGES",
    "SERIES_QUANTITIES",
    "Point",
    "QcConfig",
    "QcResult",
    "point_checks",
    "series_flags",
]

#: plausible range per quantity, inclusive: outside it a value is OUT_OF_RANGE
RANGES: Mapping[str, tuple[float, float]] = {
    "pm1_ugm3": (0.0, 1000.0),
    "pm25_ugm3": (0.0, 1000.0),
    "pm10_ugm3": (0.0, 2000.0),
    "no2_ppb": (-20.0, 2000.0),
    "temperature_c": (-50.0, 60.0),
    "rh_pct": (0.0, 100.0),
}

#: quantities the stuck and spike checks look at, with the smallest jump that is a spike
SERIES_QUANTITIES: Mapping[str, float] = {
    "pm1_ugm3": 30.0,
    "pm25_ugm3": 30.0,
    "pm10_ugm3": 50.0,
    "no2_ppb": 50.0,
    "temperature_c": 5.0,
    "rh_pct": 20.0,
}

_POINT_CHECKS = ReadingFlag.OUT_OF_RANGE | ReadingFlag.CLOCK_SUSPECT


@dataclass(frozen=True, slots=True)
class QcConfig:
    """Thresholds of the automatic checks (docs/quality.md)."""

    ranges: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(RANGES))
    #: RH at or above this (%) raises HIGH_HUMIDITY: fog and droplets inflate optical PM
    high_humidity_pct: float = 85.0
    #: a device timestamp more than this ahead of the collector's clock is suspect
    clock_ahead: timedelta = timedelta(minutes=5)
    #: ... and one more than this behind it (an RTC reset to 1970/2000, a dead clock battery)
    clock_behind: timedelta = timedelta(days=400)
    #: a value repeated unchanged in this many consecutive readings (or more) is STUCK
    stuck_n: int = 30
    #: neighbours on each side whose median a value is compared with
    spike_k: int = 3
    #: at least this many neighbours, else the spike check does not run
    spike_min_neighbours: int = 2
    #: a spike is further than max(jump, spike_rel * |median|) from the neighbours' median
    spike_jump: Mapping[str, float] = field(default_factory=lambda: dict(SERIES_QUANTITIES))
    spike_rel: float = 3.0

    @property
    def context_n(self) -> int:
        """How many stored readings on each side of a batch the series checks need."""
        return max(self.stuck_n - 1, self.spike_k)


DEFAULT_QC = QcConfig()


@dataclass(frozen=True, slots=True)
class QcResult:
    checks: int
    flags: int

    def __or__(self, other: QcResult) -> QcResult:
        return QcResult(self.checks | other.checks, self.flags | other.flags)


@dataclass(frozen=True, slots=True)
class Point:
    """One reading of one device, as the series checks see it."""

    seq: int
    ts: datetime
    values: Mapping[str, float | None]


def point_checks(
    values: Mapping[str, float | None],
    ts: datetime,
    received_at: datetime,
    edge_flags: int,
    cfg: QcConfig = DEFAULT_QC,
) -> QcResult:
    """Checks on one reading alone: the edge's bits, range, high humidity, clock.

    ``edge_flags`` keeps only the bits the edge may raise (:data:`EDGE_FLAGS`); the edge's
    verdicts count as checks that ran. The clock check compares ``ts`` (device clock, end of
    window) with ``received_at`` (collector clock); a suspect reading is flagged, never dropped.
    """
    checks = int(EDGE_FLAGS | _POINT_CHECKS)
    flags = edge_flags & int(EDGE_FLAGS)
    for name, value in values.items():
        lim = cfg.ranges.get(name)
        if value is not None and lim is not None and not lim[0] <= value <= lim[1]:
            flags |= ReadingFlag.OUT_OF_RANGE
    rh = values.get("rh_pct")
    if rh is not None:
        checks |= ReadingFlag.HIGH_HUMIDITY
        if rh >= cfg.high_humidity_pct:
            flags |= ReadingFlag.HIGH_HUMIDITY
    if ts - received_at > cfg.clock_ahead or received_at - ts > cfg.clock_behind:
        flags |= ReadingFlag.CLOCK_SUSPECT
    return QcResult(checks, int(flags))


def _stuck(series: Sequence[Point], cfg: QcConfig) -> tuple[list[bool], list[bool]]:
    """(ran, fired) per point: a value unchanged over >= stuck_n consecutive readings."""
    n = len(series)
    ran = [n >= cfg.stuck_n] * n
    fired = [False] * n
    for q in SERIES_QUANTITIES:
        i = 0
        while i < n:
            v = series[i].values.get(q)
            j = i + 1
            if v is not None:
                while j < n and series[j].values.get(q) == v:
                    j += 1
                if j - i >= cfg.stuck_n:
                    for k in range(i, j):
                        fired[k] = True
            i = j
    return ran, fired


def _spike(series: Sequence[Point], idx: int, cfg: QcConfig) -> tuple[bool, bool]:
    """(ran, fired) for one point: far from the median of up to k neighbours on each side."""
    lo = max(0, idx - cfg.spike_k)
    neighbours = [*series[lo:idx], *series[idx + 1 : idx + 1 + cfg.spike_k]]
    ran = fired = False
    for q, jump in cfg.spike_jump.items():
        x = series[idx].values.get(q)
        others = [v for p in neighbours if (v := p.values.get(q)) is not None]
        if x is None or len(others) < cfg.spike_min_neighbours:
            continue
        ran = True
        med = statistics.median(others)
        if abs(x - med) > max(jump, cfg.spike_rel * abs(med)):
            fired = True
    return ran, fired


def series_flags(
    history: Sequence[Point], batch: Sequence[Point], cfg: QcConfig = DEFAULT_QC
) -> list[QcResult]:
    """Stuck and spike results for each point of ``batch`` (same order).

    ``history`` holds the device's stored readings around the batch; it and the batch are
    merged in time order (then seq), a batch point whose seq is already stored (a duplicate)
    and repeated seqs in the batch are checked but enter the series once.
    """
    by_seq: dict[int, Point] = {p.seq: p for p in history}
    for p in batch:
        by_seq.setdefault(p.seq, p)
    series = sorted(by_seq.values(), key=lambda p: (p.ts, p.seq))
    pos = {p.seq: i for i, p in enumerate(series)}
    stuck_ran, stuck_fired = _stuck(series, cfg)
    out = []
    for p in batch:
        i = pos[p.seq]
        checks = flags = 0
        if stuck_ran[i]:
            checks |= ReadingFlag.STUCK
            if stuck_fired[i]:
                flags |= ReadingFlag.STUCK
        ran, fired = _spike(series, i, cfg)
        if ran:
            checks |= ReadingFlag.SPIKE
            if fired:
                flags |= ReadingFlag.SPIKE
        out.append(QcResult(int(checks), int(flags)))
    return out
