"""The writer's vectorised quality control equals the reference functions, reading by reading."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from luftnett.collector import qc
from luftnett.contracts.units import ReadingFlag

Q = ("pm25_ugm3", "pm10_ugm3", "rh_pct")
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
CFG = qc.QcConfig(stuck_n=4, spike_k=2)  # small, so short random series exercise both checks

value = st.one_of(st.none(), st.sampled_from([0.0, 5.0, 5.0, 5.0, 40.0, 90.0, 120.0, -1.0]))
row = st.tuples(
    st.sampled_from(["a", "b", "c"]),  # device
    st.integers(0, 25),  # seq
    st.integers(-3000, 10),  # minutes from NOW (a few in the future: clock check)
    st.sampled_from([0, int(ReadingFlag.WARMING_UP), int(ReadingFlag.PARTIAL_WINDOW)]),
    value,
    value,
    value,
)


def _as_row(r: tuple) -> tuple:
    d, s, minutes, edge, *vals = r
    return (d, s, NOW + timedelta(minutes=minutes), edge, *vals)


def _reference(history: list[tuple], batch: list[tuple]) -> list[tuple[int, int]]:
    def point(r: tuple) -> qc.Point:
        return qc.Point(seq=r[1], ts=r[2], values=dict(zip(Q, r[4:], strict=True)))

    hist_by: dict[str, list[qc.Point]] = defaultdict(list)
    for r in history:
        hist_by[r[0]].append(point(r))
    idx_by: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(batch):
        idx_by[r[0]].append(i)
    series: list[qc.QcResult] = [qc.QcResult(0, 0)] * len(batch)
    for dev, idx in idx_by.items():
        for i, res in zip(
            idx, qc.series_flags(hist_by[dev], [point(batch[i]) for i in idx], CFG), strict=True
        ):
            series[i] = res
    out = []
    for r, ser in zip(batch, series, strict=True):
        res = ser | qc.point_checks(dict(zip(Q, r[4:], strict=True)), r[2], NOW, r[3], CFG)
        out.append((res.checks, res.flags))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=30), st.lists(row, min_size=1, max_size=30))
def test_vectorised_quality_equals_the_reference(hist: list[tuple], batch: list[tuple]) -> None:
    history = {}
    for r in map(_as_row, hist):
        history.setdefault((r[0], r[1]), r)  # stored rows are unique on (device, seq)
    batch_rows = [_as_row(r) for r in batch]
    batch_devices = {r[0] for r in batch_rows}
    stored = [r for r in history.values() if r[0] in batch_devices]
    checks, flags = qc.batch_quality(stored, batch_rows, Q, NOW, CFG)
    assert list(zip(checks.tolist(), flags.tolist(), strict=True)) == _reference(stored, batch_rows)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.one_of(st.integers(0, 30), st.integers(0, 2**63 - 1))),
        max_size=40,
    )
)
def test_device_seq_order_is_the_lexsort(rows: list[tuple[int, int]]) -> None:
    """One sort of packed keys (or a lexsort when they do not fit): the same order."""
    import numpy as np

    dev = np.array([r[0] for r in rows], dtype=np.int64)
    seq = np.array([r[1] for r in rows], dtype=np.int64)
    want = np.lexsort((np.arange(len(rows)), seq, dev))
    assert qc.device_seq_order(dev, seq).tolist() == want.tolist()
