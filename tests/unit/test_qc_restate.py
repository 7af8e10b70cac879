"""A reading's series flags do not depend on how its device's readings arrived: batches in any
order and of any size, each checked against the window of stored neighbours the writer loads
(``QcConfig.context_n`` a side) and restating those neighbours, end with the flags of the whole
series checked at once. The store here is a dict; tests/e2e/test_collector_qc_restate.py runs
the same through the writer and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from luftnett.collector import qc

Q = ("pm25_ugm3", "pm10_ugm3")
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
CFG = qc.QcConfig(stuck_n=4, spike_k=2)  # small, so short series exercise both checks
T0 = NOW.timestamp() - 86400

# (minute, pm2.5, pm10): few values, so runs (stuck) and jumps (spike) are common
reading = st.tuples(
    st.integers(0, 60),
    st.sampled_from([5.0, 5.0, 6.0, 80.0, np.nan]),
    st.sampled_from([9.0, 10.0]),
)


def _columns(rows: list[tuple[int, float, float, float]]) -> qc.SeriesColumns:
    """(seq, t, pm2.5, pm10) rows of device 0 as columns."""
    n = len(rows)
    return qc.SeriesColumns(
        np.zeros(n, dtype=np.int64),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2:] for r in rows], dtype=np.float64).reshape(n, 2),
        np.zeros(n, dtype=np.int64),
    )


def _window(store: dict[int, tuple], batch: list[tuple], n: int) -> tuple[list[tuple], bool, bool]:
    """What the writer's history query returns for a one-device batch: n stored rows before
    its earliest ts, all inside its span, n after its latest (by ts, seq)."""
    lo, hi = min(r[1] for r in batch), max(r[1] for r in batch)
    rows = sorted(store.values(), key=lambda r: (r[1], r[0]))
    before = [r for r in rows if r[1] < lo][-n:]
    inside = [r for r in rows if lo <= r[1] <= hi]
    after = [r for r in rows if r[1] > hi][:n]
    return before + inside + after, len(before) == n, len(after) == n


def _write(store: dict[int, tuple], qcs: dict[int, tuple[int, int]], batch: list[tuple]) -> None:
    """As the writer does: context_n a side, wide_n where a stuck result is ambiguous."""
    fresh = list({r[0]: r for r in reversed(batch) if r[0] not in store}.values())
    if not fresh:
        return
    for n in (CFG.context_n, CFG.wide_n):
        hist, cut_lo, cut_hi = _window(store, batch, n)
        a = qc.assess(_columns(hist), _columns(fresh), Q, NOW, CFG,
                      np.array([cut_lo]), np.array([cut_hi]))  # fmt: skip
        stored_c = np.array([qcs[r[0]][0] for r in hist], dtype=np.int64)
        stored_f = np.array([qcs[r[0]][1] for r in hist], dtype=np.int64)
        r = qc.restated(a, stored_c, stored_f)
        if not r.ambiguous:
            break
    for i, c, f in zip(r.idx.tolist(), r.checks.tolist(), r.flags.tolist(), strict=True):
        qcs[hist[i][0]] = (c, f)
    for r, c, f in zip(fresh, a.checks.tolist(), a.flags.tolist(), strict=True):
        store[r[0]] = r
        qcs[r[0]] = (c, f)


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(reading, min_size=8, max_size=40),
    st.lists(st.integers(1, 6), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_flags_do_not_depend_on_arrival(
    values: list[tuple[int, float, float]], sizes: list[int], rnd, shuffle_all: bool
) -> None:
    rows = [(seq, T0 + 60 * m, a, b) for seq, (m, a, b) in enumerate(values)]
    # readings cut into batches (a repeat now and then), batches in any order
    order = list(range(len(rows)))
    if shuffle_all:
        rnd.shuffle(order)
    batches, at = [], 0
    for size in sizes:
        if at >= len(order):
            break
        batches.append([rows[i] for i in order[at : at + size]])
        at += size
    if at < len(order):
        batches.append([rows[i] for i in order[at:]])
    rnd.shuffle(batches)
    batches.append(batches[rnd.randrange(len(batches))])  # a redelivered batch
    store: dict[int, tuple] = {}
    qcs: dict[int, tuple[int, int]] = {}
    for b in batches:
        _write(store, qcs, b)
    whole = qc.assess(_columns([]), _columns(rows), Q, NOW, CFG)
    expected = dict(zip((r[0] for r in rows), zip(whole.checks.tolist(), whole.flags.tolist(),
                                                  strict=True), strict=True))  # fmt: skip
    assert qcs == expected


def test_a_run_that_becomes_stuck_later_flags_its_first_readings() -> None:
    """One reading a message: the first stuck_n - 1 readings of a run are flagged once the
    stuck_n-th arrives (before, only the readings from the stuck_n-th on were)."""
    store: dict[int, tuple] = {}
    qcs: dict[int, tuple[int, int]] = {}
    rows = [(s, T0 + 60 * s, v, 9.0 + s) for s, v in enumerate([3.0, 7.0, 7.0, 7.0, 7.0, 4.0])]
    for r in rows:
        _write(store, qcs, [r])
    stuck = [bool(qcs[s][1] & int(qc.ReadingFlag.STUCK)) for s in range(len(rows))]
    assert stuck == [False, True, True, True, True, False]
    assert all(qcs[s][0] & int(qc.ReadingFlag.STUCK) for s in range(len(rows)))
    # a late reading inside the run splits it: none of it is stuck any more
    _write(store, qcs, [(9, T0 + 60 * 2.5, 8.0, 1.0)])
    assert not any(qcs[s][1] & int(qc.ReadingFlag.STUCK) for s in range(len(rows)))
