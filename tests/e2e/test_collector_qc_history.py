"""The writer reads a batch's stored neighbours before dedupe, over the span of every row of the
batch (duplicates included), in the same round trip as the ledger: on a real PostgreSQL, quality
control of the fresh rows is the same as with the neighbours of the fresh rows' span only. And
the neighbours it restates leave every stored reading with the flags of its whole series,
whatever the order and batching of arrival, with rollups equal to a recomputation."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luftnett.collector import qc
from luftnett.collector import writer as writer_mod
from luftnett.collector.columns import BatchColumns, Series
from luftnett.collector.rollups import refresh
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.db.schema import ROLLUP_HOURLY_COLUMNS, VALUE_COLUMNS

pytestmark = pytest.mark.e2e

ROOT = "t"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
CFG = qc.QcConfig(stuck_n=4, spike_k=2)  # 3 neighbours a side: short series reach past them

# (seq, minute of ts, pm2.5): few values, so runs of equal values (stuck) and jumps (spike)
point = st.tuples(
    st.integers(0, 40), st.integers(0, 60), st.sampled_from([5.0, 5.0, 5.0, 6.0, 80.0])
)


def _message(device_id: str, points: list[tuple[Any, ...]]) -> Accepted:
    """(seq, minute of ts, pm2.5[, pm10]) points; pm10 twice pm2.5 unless given."""
    readings = [
        contract.Reading(
            seq=p[0], ts=T0 + timedelta(minutes=p[1]), window_s=60, n_samples=60,
            values={"pm25_ugm3": p[2], "pm10_ugm3": p[3] if len(p) > 3 else p[2] * 2},
        )
        for p in points
    ]  # fmt: skip
    return _accept(device_id, readings, contract.SensorInfo(model="sds011", serial="A1"))


def _accept(
    device_id: str, readings: list[contract.Reading], sensor: contract.SensorInfo
) -> Accepted:
    """The readings as one message of the device's, validated as the collector does."""
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id, agent_version="test", sensor=sensor, readings=readings
        )
    )
    item = validate_message(ROOT, contract.readings_topic(ROOT, device_id), payload)
    assert isinstance(item, Accepted), item
    return item


def _neighbours(
    conn: psycopg.Connection[Any], w: Writer, series: list[Series], cols: qc.SeriesColumns
) -> qc.SeriesColumns:
    n = w.qc_config.context_n
    m = np.full(len(series), n)
    lo, hi = w._spans(len(series), cols)
    params = w._history_params(series, lo, hi, m)
    recs = conn.execute(writer_mod._HISTORY, params, binary=True).fetchall()
    return w._history(len(series), recs, lo, hi, n, m).cols


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.lists(point, min_size=1, max_size=25, unique_by=lambda p: p[0]),
    batch=st.lists(point, min_size=1, max_size=12),
)
def test_neighbours_of_the_whole_batch_give_the_fresh_rows_the_same_flags(
    pg_url: str, stored: list[tuple[int, int, float]], batch: list[tuple[int, int, float]]
) -> None:
    device_id = f"qh-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn, qc_config=CFG, rollups=False, calibration="deferred")
        assert w.write([_message(device_id, stored)]).stored == len(stored)
        b = BatchColumns.join([(a.device, a.readings) for a in [_message(device_id, batch)]])
        names, cols = b.names, b.series()
        with conn.transaction():
            keys = w._ledger_keys(names, cols)
            overlaps = conn.execute(writer_mod._LEDGER_OVERLAP, keys.spans, binary=True)
            keep, _added = w.dedupe(names, cols, keys, overlaps.fetchall())
            fresh = b if keep is None else b.take(keep)
            if not len(fresh):
                return  # every row a duplicate: no quality control
            series, code = b.sensor_series()  # one here: device codes are series codes
            assert series == [(device_id, "sds011", "A1")] and not code.any()
            fcols = fresh.series()
            wide = qc.quality_columns(
                _neighbours(conn, w, series, cols), fcols, VALUE_COLUMNS, NOW, CFG
            )
            narrow = qc.quality_columns(
                _neighbours(conn, w, series, fcols), fcols, VALUE_COLUMNS, NOW, CFG
            )
    assert np.array_equal(wide[0], narrow[0])  # checks that ran
    assert np.array_equal(wide[1], narrow[1])  # checks that fired


def _outcome(
    conn: psycopg.Connection[Any], device_id: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The device's stored (seq, ts, qc_checks, flags, pm2.5, pm10) by seq, its hourly
    rollups as kept, and as a recomputation gives them (committed)."""
    stored = conn.execute(
        "SELECT seq, ts, qc_checks, flags, pm25_ugm3, pm10_ugm3 FROM readings"
        " WHERE device_id = %s ORDER BY seq",
        (device_id,),
    ).fetchall()
    incremental = _hourly(conn, device_id)
    refresh(conn, device_id)
    conn.commit()
    return stored, incremental, _hourly(conn, device_id)


def _whole(device_id: str, stored: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Quality control of the stored rows as one batch: the whole series' results."""
    rows = [(device_id, r[0], r[1], 0, r[4], r[5]) for r in stored]
    return qc.batch_quality([], rows, ("pm25_ugm3", "pm10_ugm3"), NOW, CFG)


def _assert_whole(
    device_id: str, stored: list[tuple[Any, ...]], since: datetime | None = None
) -> None:
    """Every stored reading from ``since`` on (default: all) has the stuck and spike results
    of its device's whole series."""
    series = int(qc.SERIES_BITS)
    whole = _whole(device_id, stored)
    for r, c, f in zip(stored, whole[0].tolist(), whole[1].tolist(), strict=True):
        if since is None or r[1] >= since:
            assert (r[2] & series, r[3] & series) == (c & series, f & series), r[0]


def _points(values: list[tuple[int, float, float]]) -> list[tuple[int, int, float, float]]:
    """(seq, minute, pm2.5, pm10) from drawn (minutes before 3 x seq, pm2.5, pm10): 3 minutes
    apart, ties on ts now and then."""
    return [(s, 3 * s - back, a, b) for s, (back, a, b) in enumerate(values)]


def _hourly(conn: psycopg.Connection[Any], device_id: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(ROLLUP_HOURLY_COLUMNS)
    return conn.execute(
        f"SELECT {cols} FROM rollup_hourly WHERE device_id = %s ORDER BY hour_start", (device_id,)
    ).fetchall()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.tuples(
            st.sampled_from([0, 0, 0, 3]),  # minutes before 3 x seq: ties on ts now and then
            # 12.3 and 10.1 have no exact `real`: compared as stored, whichever side they are on
            st.sampled_from([5.0, 12.3, 5.0, 12.3, 80.0]),
            st.sampled_from([9.0, 10.1]),
        ),
        min_size=8,
        max_size=45,
    ),
    cuts=st.lists(st.integers(1, 3), min_size=1, max_size=45),
    seed=st.integers(0, 2**32),
    deferred=st.booleans(),
)
def test_flags_and_rollups_do_not_depend_on_arrival(
    pg_url: str,
    values: list[tuple[int, float, float]],
    cuts: list[int],
    seed: int,
    deferred: bool,
) -> None:
    """A device's readings cut into messages that arrive in any order (one redelivered):
    each reading ends with the stuck and spike results of its whole series, and the hourly
    rollups (stuck readings are not valid) equal a recomputation."""
    rnd = random.Random(seed)
    device_id = f"qr-{uuid.uuid4().hex[:10]}"
    points = _points(values)  # 2+ hours
    order = list(range(len(points)))
    rnd.shuffle(order)
    batches, at = [], 0
    for size in cuts:
        batches.append([points[i] for i in order[at : at + size]])
        at += size
    batches = [b for b in batches if b] + (
        [[points[i] for i in order[at:]]] if at < len(order) else []
    )
    batches.append(rnd.choice(batches))
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn, qc_config=CFG, deferred=deferred, calibration="deferred")
        for b in batches:
            w.write([_message(device_id, b)])
        stored, incremental, recomputed = _outcome(conn, device_id)
    assert [r[0] for r in stored] == list(range(len(points)))
    _assert_whole(device_id, stored)
    assert incremental == recomputed


def test_a_late_reading_that_splits_a_stuck_run_at_the_window_end(pg_url: str) -> None:
    """One reading a message, seq 4 last: it splits the pm2.5 run of 6.0 (seqs 1, 2, 3, 5) that
    made them stuck, and joins pm10's 9.0 (seqs 2, 3, 5), which makes 2-5 stuck. In the window
    the writer loads first (4 a side) seq 1's pm10 run (10, 10) reaches the window's cut end,
    so whether seq 1 is still stuck is ambiguous there; the wider second look decides: not."""
    device_id = f"qs-{uuid.uuid4().hex[:10]}"
    values = [(5.0, 10.0), (6.0, 10.0), (6.0, 9.0), (6.0, 9.0), (5.0, 9.0), (6.0, 9.0)]
    points = [(s, 3 * s, a, b) for s, (a, b) in enumerate(values)]
    stuck = int(qc.ReadingFlag.STUCK)
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn, qc_config=CFG, calibration="deferred")
        for s in (1, 2, 0, 3, 5):
            w.write([_message(device_id, [points[s]])])
        before = dict(conn.execute(
            "SELECT seq, flags & %s FROM readings WHERE device_id = %s", (stuck, device_id)
        ).fetchall())  # fmt: skip
        w.write([_message(device_id, [points[4]])])
        after = dict(conn.execute(
            "SELECT seq, flags & %s FROM readings WHERE device_id = %s", (stuck, device_id)
        ).fetchall())  # fmt: skip
        n_valid = conn.execute(
            "SELECT sum(n_valid) FROM rollup_hourly WHERE device_id = %s", (device_id,)
        ).fetchone()
    assert before == {0: 0, 1: stuck, 2: stuck, 3: stuck, 5: stuck}
    assert after == {0: 0, 1: 0, 2: stuck, 3: stuck, 4: stuck, 5: stuck}
    assert n_valid == (2,)  # the hourly rollup counts seq 1 valid again


# (minutes before 3 x seq, pm2.5, pm10) of a device's readings, and stale series bits to store
_SERIES = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 3]),
        st.sampled_from([5.0, 6.0, 5.0, 6.0, 80.0]),
        st.sampled_from([9.0, 10.0]),
    ),
    min_size=15,
    max_size=60,
)
_STALE = st.lists(
    st.tuples(st.integers(0, 59), st.sampled_from([0, 64, 128, 192])), min_size=5, max_size=40
)


def _make_stale(
    conn: psycopg.Connection[Any], device_id: str, stale: list[tuple[int, int]]
) -> None:
    """Store these series bits (seq, bits) as an earlier version might have left them, with
    rollups to match (committed)."""
    series = int(qc.SERIES_BITS)
    for s, bits in stale:
        conn.execute(
            "UPDATE readings SET flags = flags & ~%s | %s WHERE device_id = %s AND seq = %s",
            (series, bits, device_id, s),
        )
    refresh(conn, device_id)
    conn.commit()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=_SERIES,
    stale=_STALE,
    page=st.integers(1, 10),
    cut=st.one_of(st.none(), st.integers(0, 180)),
)
def test_qc_restate_gives_stored_readings_the_flags_of_their_whole_series(
    pg_url: str,
    values: list[tuple[int, float, float]],
    stale: list[tuple[int, int]],
    page: int,
    cut: int | None,
) -> None:
    """Readings whose stuck and spike bits are stale (as an earlier version left them, set
    at random here) get those of their whole series from `restate_device`, a page of any size
    at a time; with ``since``, only readings from then on change; rollups equal a
    recomputation."""
    from luftnett.collector.restate import restate_device

    device_id = f"qx-{uuid.uuid4().hex[:10]}"
    points = _points(values)
    since = None if cut is None else T0 + timedelta(minutes=cut)
    with psycopg.connect(pg_url) as conn:
        Writer(conn, qc_config=CFG, calibration="deferred").write([_message(device_id, points)])
        _make_stale(conn, device_id, stale)
        before = {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT seq, qc_checks, flags FROM readings WHERE device_id = %s", (device_id,)
        )}  # fmt: skip
        conn.commit()  # restate_device commits page by page: not inside a transaction
        res = restate_device(conn, device_id, CFG, since=since, page=page)
        stored, incremental, recomputed = _outcome(conn, device_id)
    _assert_whole(device_id, stored, since)
    for r in stored:
        if since is not None and r[1] < since:
            assert (r[2], r[3]) == before[r[0]], r[0]
    assert res.readings == sum(1 for r in stored if since is None or r[1] >= since)
    assert res.restated == sum(1 for r in stored if (r[2], r[3]) != before[r[0]])
    assert incremental == recomputed


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=_SERIES,
    stale=_STALE,
    page=st.integers(1, 10),
    late=st.lists(st.integers(1, 59), min_size=1, max_size=6, unique=True),
    cut=st.one_of(st.none(), st.integers(0, 60)),
)
def test_qc_restate_lets_the_collector_write_between_pages(
    pg_url: str,
    values: list[tuple[int, float, float]],
    stale: list[tuple[int, int]],
    page: int,
    late: list[int],
    cut: int | None,
) -> None:
    """`restate_device` holds the device's lock one page at a time: after each page another
    connection's writer stores a held-back reading of the device (behind the walk or ahead of
    it) without waiting (lock_timeout 5 s), and every reading from ``since`` on still ends with
    the flags of its whole series, with rollups equal to a recomputation."""
    from luftnett.collector.restate import restate_device

    device_id = f"qp-{uuid.uuid4().hex[:10]}"
    points = _points(values)
    held = [points[i] for i in late if i < len(points)]
    with psycopg.connect(pg_url) as conn, psycopg.connect(pg_url) as other:
        Writer(conn, qc_config=CFG, calibration="deferred").write(
            [_message(device_id, [p for p in points if p not in held])]
        )
        _make_stale(conn, device_id, stale)
        other.execute("SET lock_timeout = '5s'")
        other.commit()
        w = Writer(other, qc_config=CFG, calibration="deferred")
        pages = 0

        def progress(checked: int, restated: int) -> None:
            nonlocal pages
            pages += 1
            if held:
                assert w.write([_message(device_id, [held.pop()])]).stored == 1

        conn.execute("SELECT 1")  # inside a transaction its pages could not commit: refused
        with pytest.raises(ValueError, match="outside a transaction"):
            restate_device(conn, device_id, CFG, page=page)
        conn.rollback()
        since = None if cut is None else T0 + timedelta(minutes=cut)
        restate_device(conn, device_id, CFG, since=since, page=page, progress=progress)
        for p in held:
            w.write([_message(device_id, [p])])
        stored, incremental, recomputed = _outcome(conn, device_id)
    if since is None:  # 15+ readings, pages of at most 10: the walk has a page before its last
        assert pages >= 1
    assert [r[0] for r in stored] == list(range(len(points)))
    # from since on, the whole series' flags (before it, the collector's writes may leave
    # stale neighbours of their own window as they were: only the walk clears those)
    _assert_whole(device_id, stored, since)
    assert incremental == recomputed


def test_a_no2_module_in_fog_stays_valid_and_qc_restate_mends_older_flags(pg_url: str) -> None:
    """The NO2 module's whole-percent RH at saturation and whole-degree temperature hold still
    for 45 minutes while NO2 moves: stored valid, the hour's rollup counts every reading. Stored
    as version 2 flagged them (RH among the stuck check's quantities), `restate_device` makes
    them valid again, with the current registry version and the hour's rollup recomputed."""
    from luftnett.collector.restate import restate_device
    from luftnett.contracts.units import FLAGS_VERSION, ReadingFlag

    stuck = int(ReadingFlag.STUCK)
    old_qc = qc.QcConfig(stuck_quantities=qc.STUCK_QUANTITIES | {"temperature_c", "rh_pct"})

    def message(device_id: str) -> Accepted:
        readings = [
            contract.Reading(
                seq=i, ts=T0 + timedelta(minutes=i + 1), window_s=60, n_samples=60,
                values={"no2_ppb": 18.0 + (i * 7) % 11, "temperature_c": 4.0, "rh_pct": 100.0},
            )
            for i in range(45)
        ]  # fmt: skip
        return _accept(device_id, readings, contract.SensorInfo(model="dgs-no2", serial="N1"))

    def state(conn: psycopg.Connection[Any], device_id: str) -> tuple[set[Any], Any]:
        flags = set(conn.execute(
            "SELECT flags & %s, qc_version FROM readings WHERE device_id = %s",
            (stuck, device_id),
        ).fetchall())  # fmt: skip
        hour = conn.execute(
            "SELECT n_stored, n_valid, no2_ppb_n FROM rollup_hourly WHERE device_id = %s",
            (device_id,),
        ).fetchone()
        return flags, hour

    now, before = f"qn-{uuid.uuid4().hex[:10]}", f"qo-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url) as conn:
        Writer(conn, calibration="deferred").write([message(now)])
        assert state(conn, now) == ({(0, FLAGS_VERSION)}, (45, 45, 45))
        Writer(conn, qc_config=old_qc, calibration="deferred").write([message(before)])
        conn.execute("UPDATE readings SET qc_version = 2 WHERE device_id = %s", (before,))
        conn.commit()
        assert state(conn, before) == ({(stuck, 2)}, (45, 0, 0))
        conn.commit()  # restate_device commits page by page: not inside a transaction
        res = restate_device(conn, before)
        assert (res.readings, res.restated, res.hours) == (45, 45, 1)
        assert state(conn, before) == ({(0, FLAGS_VERSION)}, (45, 45, 45))
        _stored, incremental, recomputed = _outcome(conn, before)
    assert incremental == recomputed
