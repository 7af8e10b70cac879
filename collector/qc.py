"""Automatic quality control of readings: pure functions, one registry of checks.

Each reading gets two bit masks over :class:`~luftnett.contracts.units.ReadingFlag`:
``checks`` (which checks ran) and ``flags`` (which fired). A check that could not run (no RH
in the reading, too few neighbours for a spike) leaves its bit out of ``checks``, so "not
flagged" and "not checked" stay apart. docs/quality.md lists the checks and their limits.

Point checks look at one reading: range, high humidity, clock, and the edge's own bits.
Series checks (stuck value, spike) look at a device's readings in time order: the batch being
written merged with the stored neighbours of each device (:func:`series_flags`), which the
writer loads with one query per batch. Nothing is kept in memory between batches. A batch also
restates its stored neighbours (:func:`assess`, :func:`restated`): a reading that arrives later
can make an earlier one part of a stuck run, or change the median a spike is judged against, so
the stored neighbours whose series results it changes are updated in the batch's transaction.
A reading's flags are then those of its device's whole stored series, whatever the order and
batching in which the readings arrived (several processes on a shared subscription, an edge
outbox replaying after an outage, late readings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from luftnett.contracts.units import EDGE_FLAGS, POLLUTANTS, ReadingFlag

__all__ = [
    "DEFAULT_QC",
    "RANGES",
    "SERIES_BITS",
    "SERIES_QUANTITIES",
    "STUCK_QUANTITIES",
    "ZERO_TOGETHER",
    "Assessment",
    "Point",
    "QcConfig",
    "QcResult",
    "Restatement",
    "SeriesColumns",
    "assess",
    "batch_quality",
    "device_seq_order",
    "point_checks",
    "quality_columns",
    "restated",
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

#: quantities the stuck check looks at: the pollutants. Temperature and RH are companions whose
#: readings hold still in good health: the NO2 module reports them in whole degrees and whole
#: percent (one-minute means of such samples repeat for hours in steady weather), and RH sits
#: at saturation through fog. A run of them would invalidate the reading's PM and NO2 values
#: (``stuck`` invalidates the reading), often in just the inversions when pollution peaks.
STUCK_QUANTITIES: frozenset[str] = POLLUTANTS

#: particulate quantities whose zero is part of a stuck run only when the reading's other
#: particulate values are zero too. An optical counter reporting whole µg/m³ (a PMS) reads
#: PM1 0 for hours in clean air while its PM10 moves: such a run is the air, not the sensor,
#: and flagging it stuck invalidated the reading's PM2.5 and PM10 as well. Every channel at
#: zero is a dead laser or fan (the drivers flag such a frame warming_up, too).
ZERO_TOGETHER: frozenset[str] = frozenset({"pm1_ugm3", "pm25_ugm3", "pm10_ugm3"})

# plain ints on the hot path: IntFlag arithmetic costs microseconds per operation
_EDGE = int(EDGE_FLAGS)
_RANGE = int(ReadingFlag.OUT_OF_RANGE)
_CLOCK = int(ReadingFlag.CLOCK_SUSPECT)
_HUMID = int(ReadingFlag.HIGH_HUMIDITY)
_STUCK = int(ReadingFlag.STUCK)
_SPIKE = int(ReadingFlag.SPIKE)
_POINT_CHECKS = _EDGE | _RANGE | _CLOCK
#: the bits of the series checks: the only ones a later reading can change on a stored one
SERIES_BITS = _STUCK | _SPIKE


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
    #: ... a value of one of these quantities (the others can hold still in good health)
    stuck_quantities: frozenset[str] = STUCK_QUANTITIES
    #: neighbours on each side whose median a value is compared with
    spike_k: int = 3
    #: at least this many neighbours, else the spike check does not run
    spike_min_neighbours: int = 2
    #: a spike is further than max(jump, spike_rel * |median|) from the neighbours' median
    spike_jump: Mapping[str, float] = field(default_factory=lambda: dict(SERIES_QUANTITIES))
    spike_rel: float = 3.0

    @property
    def context_n(self) -> int:
        """How many stored readings on each side of a batch the writer loads: enough for the
        batch's own checks (``stuck_n - 1`` and ``spike_k``) and to restate the stored
        readings whose result the batch can change (one within ``spike_k`` of a new reading
        needs ``spike_k`` more beyond it; a run the batch joins or splits that reaches the
        end of the window is ``stuck_n`` long inside it), except where :func:`restated`
        finds a stuck result ambiguous: then :attr:`wide_n`."""
        return max(self.stuck_n, 2 * self.spike_k)

    @property
    def wide_n(self) -> int:
        """The window that decides every result a batch can change: a reading the batch
        changes is within ``stuck_n - 1`` of a new one, so a run of its other quantities that
        reaches the end of this window is ``stuck_n`` long inside it."""
        return max(2 * self.stuck_n - 2, self.context_n)


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
    checks = _POINT_CHECKS
    flags = edge_flags & _EDGE
    ranges = cfg.ranges
    for name, value in values.items():
        lim = ranges.get(name)
        if value is not None and lim is not None and not lim[0] <= value <= lim[1]:
            flags |= _RANGE
    rh = values.get("rh_pct")
    if rh is not None:
        checks |= _HUMID
        if rh >= cfg.high_humidity_pct:
            flags |= _HUMID
    if ts - received_at > cfg.clock_ahead or received_at - ts > cfg.clock_behind:
        flags |= _CLOCK
    return QcResult(checks, flags)


def _stuck(columns: Mapping[str, list[float | None]], n: int, cfg: QcConfig) -> list[bool]:
    """Per point: is it in a run of >= stuck_n identical values of some quantity (a zero of
    a ZERO_TOGETHER quantity counts only where the point's others of them are zero too)."""
    fired = [False] * n
    pm = [v for q, v in columns.items() if q in ZERO_TOGETHER]
    all_zero = [all(c[i] in (None, 0.0) for c in pm) for i in range(n)]
    for q, col in columns.items():
        vals = col
        if q in ZERO_TOGETHER:  # a lone zero is no value a run can hold
            vals = [None if v == 0.0 and not all_zero[i] else v for i, v in enumerate(col)]
        i = 0
        while i < n:
            v = vals[i]
            j = i + 1
            if v is not None:
                while j < n and vals[j] == v:
                    j += 1
                if j - i >= cfg.stuck_n:
                    fired[i:j] = [True] * (j - i)
            i = j
    return fired


def _spike(columns: Mapping[str, list[float | None]], idx: int, cfg: QcConfig) -> tuple[bool, bool]:
    """(ran, fired) for one point: far from the median of up to k neighbours on each side."""
    lo, k = max(0, idx - cfg.spike_k), cfg.spike_k
    ran = fired = False
    for q, vals in columns.items():
        x = vals[idx]
        if x is None:
            continue
        others = sorted(v for v in (*vals[lo:idx], *vals[idx + 1 : idx + 1 + k]) if v is not None)
        m = len(others)
        if m < cfg.spike_min_neighbours:
            continue
        ran = True
        med = others[m // 2] if m % 2 else (others[m // 2 - 1] + others[m // 2]) / 2
        if abs(x - med) > max(cfg.spike_jump[q], cfg.spike_rel * abs(med)):
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
    n = len(series)
    pos = {p.seq: i for i, p in enumerate(series)}
    columns: dict[str, list[float | None]] = {}
    for q in cfg.spike_jump:
        vals = [p.values.get(q) for p in series]
        if any(v is not None for v in vals):
            columns[q] = vals
    stuck_ran = n >= cfg.stuck_n
    watched = {q: v for q, v in columns.items() if q in cfg.stuck_quantities}
    stuck = _stuck(watched, n, cfg) if stuck_ran else [False] * n
    out = []
    for p in batch:
        i = pos[p.seq]
        checks = flags = 0
        if stuck_ran:
            checks |= _STUCK
            if stuck[i]:
                flags |= _STUCK
        ran, fired = _spike(columns, i, cfg)
        if ran:
            checks |= _SPIKE
            if fired:
                flags |= _SPIKE
        out.append(QcResult(checks, flags))
    return out


# -- vectorised: the writer's hot path ------------------------------------------------------
# The functions above are the reference: readable, one reading at a time. ``batch_quality``
# computes the same results for a whole batch with numpy (tests/unit/test_qc_vectorised.py
# holds it equal to the reference on random series).


def batch_quality(
    history: Sequence[tuple[Any, ...]],
    batch: Sequence[tuple[Any, ...]],
    quantities: Sequence[str],
    received_at: datetime,
    cfg: QcConfig = DEFAULT_QC,
) -> tuple[np.ndarray, np.ndarray]:
    """``(checks, flags)`` for every row of ``batch``, point and series checks together.

    Rows are ``(device_id, seq, ts, edge_flags, *values)`` with values in ``quantities`` order
    (None where missing); ``history`` holds stored rows around the batch (its ``edge_flags`` is
    ignored). Same semantics as :func:`point_checks` | :func:`series_flags`.
    """
    nq = len(quantities)
    dev_ids: dict[str, int] = {}

    def columns(rows: Sequence[tuple[Any, ...]]) -> SeriesColumns:
        n = len(rows)
        return SeriesColumns(
            np.fromiter((dev_ids.setdefault(r[0], len(dev_ids)) for r in rows), np.int64, n),
            np.fromiter((r[1] for r in rows), np.int64, n),
            np.fromiter((r[2].timestamp() for r in rows), np.float64, n),
            np.array([r[4 : 4 + nq] for r in rows], dtype=np.float64).reshape(n, nq),
            np.fromiter((int(r[3]) for r in rows), np.int64, n),
        )

    return quality_columns(columns(history), columns(batch), quantities, received_at, cfg)


@dataclass(frozen=True, slots=True)
class SeriesColumns:
    """Readings as columns: device code, seq, ts (seconds since 1970), values (one column per
    quantity, NaN where missing), edge flags."""

    dev: np.ndarray
    seq: np.ndarray
    t: np.ndarray
    vals: np.ndarray
    edge: np.ndarray


def _sort_rows(rows: np.ndarray) -> None:
    """Sort each column of a 2-D array, in place: afterwards row 0 holds each column's smallest
    value, the last row its largest (odd-even transposition, a sorting network: as many rounds
    of min/max over whole rows as there are rows; cheaper than np.sort over many short
    columns)."""
    w = len(rows)
    for r in range(w):
        for c in range(r % 2, w - 1, 2):
            a, b = rows[c], rows[c + 1]
            lo = np.minimum(a, b)
            np.maximum(a, b, out=b)
            a[...] = lo


def device_seq_order(dev: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Indexes that order rows by device, seq, then position (``np.lexsort((positions, seq,
    dev))``): one sort of int64 keys packing all three when they fit (a batch's seqs span far
    less than 2**40), a lexsort otherwise. Codes and seqs are not negative."""
    n = seq.size
    if not n:
        return np.empty(0, dtype=np.intp)
    lo = int(seq.min())
    b_pos = max(n - 1, 1).bit_length()
    b_seq = max(int(seq.max()) - lo, 1).bit_length()
    if max(int(dev.max()), 1).bit_length() + b_seq + b_pos > 62:
        return np.lexsort((np.arange(n), seq, dev))
    key = ((dev.astype(np.int64) << b_seq | (seq - lo)) << b_pos) | np.arange(n)
    key.sort()  # unique keys: any sort gives the one order
    order: np.ndarray = key & ((1 << b_pos) - 1)
    return order


@dataclass(frozen=True, slots=True)
class Assessment:
    """Quality control of a batch (``checks``, ``flags``: all checks, batch order) and the
    series checks of its stored neighbours over the merged series (``history_checks``,
    ``history_flags``: :data:`SERIES_BITS` only, history order). ``history_sure``: per
    neighbour, the bits of the checks whose result the window the writer loaded decides (it
    holds all the result depends on); the others are not restated (a batch never changes
    them: :attr:`QcConfig.context_n`)."""

    checks: np.ndarray
    flags: np.ndarray
    history_checks: np.ndarray
    history_flags: np.ndarray
    history_sure: np.ndarray


def quality_columns(
    history: SeriesColumns,
    batch: SeriesColumns,
    quantities: Sequence[str],
    received_at: datetime,
    cfg: QcConfig = DEFAULT_QC,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`batch_quality` on columns (device codes shared by both)."""
    a = assess(history, batch, quantities, received_at, cfg)
    return a.checks, a.flags


def assess(
    history: SeriesColumns,
    batch: SeriesColumns,
    quantities: Sequence[str],
    received_at: datetime,
    cfg: QcConfig = DEFAULT_QC,
    cut_before: np.ndarray | None = None,
    cut_after: np.ndarray | None = None,
) -> Assessment:
    """Quality control of ``batch`` against its stored neighbours ``history``, and the series
    results of those neighbours; the writer's entry.

    ``cut_before``/``cut_after`` (per device code): whether the history stops before the
    device's first stored reading (or after its last) because the writer loaded only
    :attr:`QcConfig.context_n` readings on that side; None: no device's is cut."""
    q_names = list(quantities)
    n_h = history.seq.size
    # the series: stored rows, then batch rows whose (device, seq) is not there yet (the
    # first copy of a key wins: sorted by device, seq, then position)
    all_dev = np.concatenate([history.dev, batch.dev])
    all_seq = np.concatenate([history.seq, batch.seq])
    by_key = device_seq_order(all_dev, all_seq)
    ks_d, ks_s = all_dev[by_key], all_seq[by_key]
    new_key = np.ones(by_key.size, dtype=bool)
    new_key[1:] = (ks_d[1:] != ks_d[:-1]) | (ks_s[1:] != ks_s[:-1])
    first = by_key[new_key]
    inverse = np.empty(by_key.size, dtype=np.int64)
    inverse[by_key] = np.cumsum(new_key) - 1
    batch_pos = inverse[n_h:]
    dev = all_dev[first]
    seq = all_seq[first]
    t = np.concatenate([history.t, batch.t])[first]
    # the series checks look at the quantities of cfg.spike_jump that some reading has (most
    # sensors measure two or three of the columns; one no reading has can neither be stuck nor
    # spike): only those columns are gathered (take: ~5x faster than a[first] on 2-D)
    has = ~np.isnan(history.vals).all(axis=0) | ~np.isnan(batch.vals).all(axis=0)
    at_q = [j for j, q in enumerate(q_names) if q in cfg.spike_jump and has[j]]
    vals = np.concatenate([history.vals[:, at_q], batch.vals[:, at_q]]).take(first, axis=0)
    n = first.size

    # device, then time, then seq: the series is in (device, seq) order already, which is that
    # order where no time goes back as seq goes up (the usual series): no second sort then
    if np.any((dev[1:] == dev[:-1]) & (t[1:] < t[:-1])):
        order = np.lexsort((seq, t, dev))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        d_s, v_s = dev[order], vals.take(order, axis=0)
    else:
        rank, d_s, v_s = np.arange(n), dev, vals
    series_checks = np.zeros(n, dtype=np.int64)
    series_flags_ = np.zeros(n, dtype=np.int64)

    # where each device's series starts and ends, and whether the window is cut there
    n_dev = int(d_s.max()) + 1 if n else 0
    dev_len = np.bincount(d_s, minlength=n_dev)
    dev_end = np.cumsum(dev_len)
    dev_start = dev_end - dev_len
    pos = np.arange(n)
    cut_lo = np.zeros(n, dtype=bool) if cut_before is None else cut_before[d_s]
    cut_hi = np.zeros(n, dtype=bool) if cut_after is None else cut_after[d_s]

    # stuck: runs of identical values of a pollutant within a device (NaN breaks a run); a
    # run that reaches a cut end of the window and is shorter than stuck_n there may be longer
    stuck_ran = dev_len[d_s] >= cfg.stuck_n
    stuck = np.zeros(n, dtype=bool)
    stuck_unsure = np.zeros(n, dtype=bool)
    same_dev = np.empty(n, dtype=bool)
    same_dev[:1] = False
    same_dev[1:] = d_s[1:] == d_s[:-1]
    pm_at = [k for k, j in enumerate(at_q) if q_names[j] in ZERO_TOGETHER]
    if pm_at:
        pm = v_s[:, pm_at]
        all_zero = ((pm == 0) | np.isnan(pm)).all(axis=1)
    for j, v in zip(at_q, v_s.T, strict=True):
        if q_names[j] not in cfg.stuck_quantities:
            continue
        if q_names[j] in ZERO_TOGETHER:  # a lone zero is no value a run can hold (_stuck)
            v = np.where((v == 0) & ~all_zero, np.nan, v)
        cont = np.zeros(n, dtype=bool)
        cont[1:] = same_dev[1:] & (v[1:] == v[:-1])
        run = np.cumsum(~cont) - 1
        run_len = np.bincount(run)[run]
        real = ~np.isnan(v)
        stuck |= (run_len >= cfg.stuck_n) & real
        if n:
            at_cut = (cut_lo & (run == run[dev_start[d_s]])) | (
                cut_hi & (run == run[dev_end[d_s] - 1])
            )
            stuck_unsure |= at_cut & (run_len < cfg.stuck_n) & real
    series_checks[stuck_ran] |= _STUCK
    series_flags_[stuck_ran & stuck] |= _STUCK

    # spike: distance from the median of up to k same-device neighbours on each side
    k = cfg.spike_k
    spike_ran = np.zeros(n, dtype=bool)
    spike = np.zeros(n, dtype=bool)
    # the series is sorted by device: row i and row i + a are the same device's where
    # same[a][i]; neighbours are then shifted views, not gathers
    same = {a: d_s[a:] == d_s[:-a] for a in range(1, k + 1) if a < n}
    for j, v in zip(at_q, v_s.T, strict=True):
        jump = cfg.spike_jump[q_names[j]]
        # the neighbours' values, one row per offset, +inf where none (outside the device's
        # series, or missing); sorted per reading by a sorting network, +inf last
        finite = np.where(np.isnan(v), np.inf, v)
        srt = np.full((2 * k, n), np.inf)
        for a in same:
            np.copyto(srt[2 * a - 2, a:], finite[:-a], where=same[a])  # a rows before
            np.copyto(srt[2 * a - 1, :-a], finite[a:], where=same[a])  # a rows after
        _sort_rows(srt)
        m = np.count_nonzero(srt < np.inf, axis=0)
        lo_i = np.clip((m - 1) // 2, 0, 2 * k - 1)
        hi_i = np.clip(m // 2, 0, 2 * k - 1)
        flat, at_col = srt.ravel(), np.arange(n)
        med = (flat.take(lo_i * n + at_col) + flat.take(hi_i * n + at_col)) / 2
        med[m == 0] = np.nan
        ran = ~np.isnan(v) & (m >= cfg.spike_min_neighbours)
        with np.errstate(invalid="ignore"):
            fired = ran & (np.abs(v - med) > np.maximum(jump, cfg.spike_rel * np.abs(med)))
        spike_ran |= ran
        spike |= fired
    series_checks[spike_ran] |= _SPIKE
    series_flags_[spike] |= _SPIKE
    # a spike result needs k neighbours on a side where the window is cut
    spike_sure = (~cut_lo | (pos - dev_start[d_s] >= k)) & (~cut_hi | (dev_end[d_s] - 1 - pos >= k))
    stuck_sure = stuck | ~stuck_unsure

    hist_at = rank[inverse[:n_h]]
    at = rank[batch_pos]  # each batch row's place in the sorted series
    checks = series_checks[at]
    flags = series_flags_[at]

    # point checks on the batch rows themselves
    bvals = batch.vals
    edge = batch.edge
    checks |= _POINT_CHECKS
    flags |= edge & _EDGE
    with np.errstate(invalid="ignore"):
        for j, q in enumerate(q_names):
            lim = cfg.ranges.get(q)
            if lim is not None:
                flags[(bvals[:, j] < lim[0]) | (bvals[:, j] > lim[1])] |= _RANGE
        if "rh_pct" in q_names:
            rh = bvals[:, q_names.index("rh_pct")]
            checks[~np.isnan(rh)] |= _HUMID
            flags[rh >= cfg.high_humidity_pct] |= _HUMID
    bt = batch.t
    now = received_at.timestamp()
    late = (bt - now > cfg.clock_ahead.total_seconds()) | (
        now - bt > cfg.clock_behind.total_seconds()
    )
    flags[late] |= _CLOCK
    # the bits each neighbour's window decides: a check's result where it is sure of it
    sure = np.where(stuck_sure, _STUCK, 0) | np.where(spike_sure, _SPIKE, 0)
    return Assessment(checks, flags, series_checks[hist_at], series_flags_[hist_at], sure[hist_at])


@dataclass(frozen=True, slots=True)
class Restatement:
    """What :func:`restated` found: history indexes of the stored neighbours whose series
    results changed, their new ``qc_checks`` and ``flags``; ``ambiguous``: a stored reading
    is flagged stuck where the window cannot tell whether it still is (load
    :attr:`QcConfig.wide_n` readings a side and assess again)."""

    idx: np.ndarray
    checks: np.ndarray
    flags: np.ndarray
    ambiguous: bool


def restated(a: Assessment, stored_checks: np.ndarray, stored_flags: np.ndarray) -> Restatement:
    """The stored neighbours whose series results changed: the stored masks with the bits of
    the series checks the window decides (``history_sure``) replaced by the assessment's.

    A stuck result the window does not decide (a run of some quantity reaches a cut end of the
    window shorter than ``stuck_n``, and no run is stuck) is kept as stored. That is right when
    the stored reading is not stuck: the runs the batch joins or splits are decided by the
    window (:attr:`QcConfig.context_n`), the others did not change and were not stuck. When it
    is stored stuck, its stuck run may be one the batch split, or one beyond the window: the
    result is ``ambiguous``, and :attr:`QcConfig.wide_n` decides it."""
    sure = a.history_sure
    new_c = (stored_checks & ~sure) | (a.history_checks & sure)
    new_f = (stored_flags & ~sure) | (a.history_flags & sure)
    idx = np.flatnonzero((new_c != stored_checks) | (new_f != stored_flags))
    ambiguous = bool(np.any((sure & _STUCK == 0) & (stored_flags & _STUCK != 0)))
    return Restatement(idx, new_c[idx], new_f[idx], ambiguous)
