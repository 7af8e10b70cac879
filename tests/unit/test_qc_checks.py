"""Quality control as pure functions: each check, what it flags and when it does not run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from luftnett.collector import qc
from luftnett.collector.rollups import DayConvention, day_bounds, day_of
from luftnett.collector.timescale import render
from luftnett.contracts.units import (
    COLLECTOR_FLAGS,
    EDGE_FLAGS,
    FLAGS_VERSION,
    INVALIDATING_FLAGS,
    QUERY_TIME_FLAGS,
    ReadingFlag,
)

F = ReadingFlag
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def check(values: dict[str, float | None], ts: datetime = NOW, edge: int = 0) -> qc.QcResult:
    return qc.point_checks(values, ts, NOW, edge)


@pytest.mark.parametrize(
    ("values", "fired"),
    [
        pytest.param({"pm25_ugm3": 12.0}, False, id="plausible"),
        pytest.param({"pm25_ugm3": 1000.0}, False, id="upper-limit-inclusive"),
        pytest.param({"pm25_ugm3": 1000.1}, True, id="pm25-too-high"),
        pytest.param({"pm10_ugm3": -0.1}, True, id="negative-pm"),
        pytest.param({"no2_ppb": -5.0}, False, id="no2-slightly-negative-ok"),
        pytest.param({"no2_ppb": -25.0}, True, id="no2-too-negative"),
        pytest.param({"temperature_c": 61.0}, True, id="too-hot"),
        pytest.param({"rh_pct": 100.5}, True, id="rh-over-100"),
        pytest.param({"pm25_ugm3": None}, False, id="missing-value"),
    ],
)
def test_range(values: dict[str, float | None], fired: bool) -> None:
    res = check(values)
    assert res.checks & F.OUT_OF_RANGE
    assert bool(res.flags & F.OUT_OF_RANGE) is fired


@pytest.mark.parametrize(
    ("rh", "ran", "fired"),
    [
        pytest.param(84.9, True, False, id="below"),
        pytest.param(85.0, True, True, id="at-threshold"),
        pytest.param(97.0, True, True, id="fog"),
        pytest.param(None, False, False, id="no-rh-not-checked"),
    ],
)
def test_high_humidity(rh: float | None, ran: bool, fired: bool) -> None:
    res = check({"pm25_ugm3": 10.0, "rh_pct": rh})
    assert bool(res.checks & F.HIGH_HUMIDITY) is ran
    assert bool(res.flags & F.HIGH_HUMIDITY) is fired


@pytest.mark.parametrize(
    ("offset", "fired"),
    [
        pytest.param(timedelta(minutes=4), False, id="4-min-ahead"),
        pytest.param(timedelta(minutes=6), True, id="6-min-ahead"),
        pytest.param(-timedelta(days=3), False, id="backlog-3-days-late"),
        pytest.param(-timedelta(days=399), False, id="399-days-late"),
        pytest.param(datetime(1970, 1, 1, tzinfo=UTC) - NOW, True, id="rtc-reset-1970"),
    ],
)
def test_clock_suspect_flags_never_drops(offset: timedelta, fired: bool) -> None:
    res = check({"pm25_ugm3": 10.0}, ts=NOW + offset)
    assert res.checks & F.CLOCK_SUSPECT
    assert bool(res.flags & F.CLOCK_SUSPECT) is fired


def test_edge_bits_are_kept_and_collector_bits_from_the_edge_are_ignored() -> None:
    edge = int(F.WARMING_UP | F.SENSOR_ERROR | F.CLOCK_SUSPECT | F.STUCK | F.ANNOTATED_INVALID)
    res = check({"pm25_ugm3": 10.0}, edge=edge)
    assert res.flags == F.WARMING_UP | F.SENSOR_ERROR | F.CLOCK_SUSPECT
    assert res.checks & EDGE_FLAGS == EDGE_FLAGS


def points(values: list[float | None], start: int = 0, q: str = "pm25_ugm3") -> list[qc.Point]:
    return [
        qc.Point(seq=start + i, ts=NOW + timedelta(minutes=start + i), values={q: v})
        for i, v in enumerate(values)
    ]


def test_stuck_needs_n_identical_readings() -> None:
    cfg = qc.QcConfig(stuck_n=5)
    series = points([1.0, 2.0, 7.0, 7.0, 7.0, 7.0, 7.0, 3.0])
    res = qc.series_flags([], series, cfg)
    assert [bool(r.flags & F.STUCK) for r in res] == [False, False, *[True] * 5, False]
    assert all(r.checks & F.STUCK for r in res)
    four = qc.series_flags([], points([7.0, 7.0, 7.0, 7.0, 3.0]), cfg)
    assert not any(r.flags & F.STUCK for r in four)


def test_stuck_uses_stored_history_and_not_enough_history_means_not_run() -> None:
    cfg = qc.QcConfig(stuck_n=5)
    history = points([7.0, 7.0, 7.0, 7.0])
    res = qc.series_flags(history, points([7.0], start=4), cfg)
    assert res[0].flags & F.STUCK
    alone = qc.series_flags([], points([7.0, 7.0]), cfg)
    assert not any(r.checks & F.STUCK for r in alone)


def test_late_reading_is_checked_against_its_true_neighbours() -> None:
    cfg = qc.QcConfig(stuck_n=5)
    stored = [p for p in points([7.0] * 5) if p.seq != 2]  # seq 2 arrives late
    res = qc.series_flags(stored, [points([7.0] * 5)[2]], cfg)
    assert res[0].flags & F.STUCK


def test_duplicate_of_a_stored_reading_does_not_lengthen_a_run() -> None:
    cfg = qc.QcConfig(stuck_n=5)
    stored = points([7.0] * 4)
    res = qc.series_flags(stored, [stored[1], stored[2], stored[3]], cfg)
    assert not any(r.flags & F.STUCK for r in res)


def _module(no2: list[float], t: list[float], rh: list[float]) -> list[qc.Point]:
    """The NO2 module's readings: NO2 with its temperature and RH, one a minute."""
    return [
        qc.Point(
            seq=i,
            ts=NOW + timedelta(minutes=i),
            values={"no2_ppb": a, "temperature_c": b, "rh_pct": c},
        )
        for i, (a, b, c) in enumerate(zip(no2, t, rh, strict=True))
    ]


def _stuck_bits(points: list[qc.Point], cfg: qc.QcConfig = qc.DEFAULT_QC) -> list[bool]:
    """Per point, stuck by the reference and by the writer's vectorised checks (they agree)."""
    ref = [bool(r.flags & F.STUCK) for r in qc.series_flags([], points, cfg)]
    q = ("no2_ppb", "temperature_c", "rh_pct")
    rows = [("d", p.seq, p.ts, 0, *(p.values[k] for k in q)) for p in points]
    _checks, flags = qc.batch_quality([], rows, q, NOW, cfg)
    assert [bool(f & F.STUCK) for f in flags.tolist()] == ref
    return ref


def test_temperature_and_rh_holding_still_do_not_make_the_reading_stuck() -> None:
    """Whole degrees and percent from the NO2 module, RH saturated in fog: 45 equal values
    with NO2 moving are a healthy sensor; NO2 itself repeated 30 times is stuck."""
    moving = [18.0 + (i * 7) % 11 for i in range(45)]
    assert not any(_stuck_bits(_module(moving, [4.0] * 45, [100.0] * 45)))
    flat = moving[:10] + [21.0] * 30 + moving[:5]
    assert _stuck_bits(_module(flat, [4.0] * 45, [97.0] * 45)) == (
        [False] * 10 + [True] * 30 + [False] * 5
    )
    # the quantities are a setting: with RH among them its run is stuck again
    cfg = qc.QcConfig(stuck_quantities=qc.STUCK_QUANTITIES | {"rh_pct"})
    assert all(_stuck_bits(_module(moving, [4.0] * 45, [100.0] * 45), cfg))


def _pms(pm1: list[float], pm25: list[float], pm10: list[float]) -> list[qc.Point]:
    """A PMS5003's readings, one a minute."""
    return [
        qc.Point(
            seq=i,
            ts=NOW + timedelta(minutes=i),
            values={"pm1_ugm3": a, "pm25_ugm3": b, "pm10_ugm3": c},
        )
        for i, (a, b, c) in enumerate(zip(pm1, pm25, pm10, strict=True))
    ]


def _pm_stuck_bits(points: list[qc.Point]) -> list[bool]:
    """Per point, stuck by the reference and by the vectorised checks (they agree)."""
    ref = [bool(r.flags & F.STUCK) for r in qc.series_flags([], points)]
    q = ("pm1_ugm3", "pm25_ugm3", "pm10_ugm3")
    rows = [("d", p.seq, p.ts, 0, *(p.values[k] for k in q)) for p in points]
    _checks, flags = qc.batch_quality([], rows, q, NOW, qc.DEFAULT_QC)
    assert [bool(f & F.STUCK) for f in flags.tolist()] == ref
    return ref


def test_pm_at_zero_in_clean_air_is_not_stuck_but_every_channel_at_zero_is() -> None:
    """A PMS in clean air: PM1 (and PM2.5) at 0 for 45 minutes while PM10 moves is the air;
    every channel at 0 for 30 is a dead laser; a non-zero value repeated is stuck as ever."""
    moving = [1.0 + (i * 7) % 5 for i in range(45)]
    assert not any(_pm_stuck_bits(_pms([0.0] * 45, [0.0] * 45, moving)))
    dead = moving[:10] + [0.0] * 30 + moving[:5]
    assert _pm_stuck_bits(_pms(dead, dead, dead)) == [False] * 10 + [True] * 30 + [False] * 5
    frozen = moving[:10] + [3.0] * 30 + moving[:5]  # one channel frozen at a non-zero value
    assert _pm_stuck_bits(_pms(moving, frozen, moving)) == (
        [False] * 10 + [True] * 30 + [False] * 5
    )
    # zeros that are all-channel for only part of a run: 20 lone zeros, then 30 all-zero
    pm1 = [0.0] * 50
    pm10 = [2.0 + i % 3 for i in range(20)] + [0.0] * 30
    assert _pm_stuck_bits(_pms(pm1, pm1, pm10)) == [False] * 20 + [True] * 30
    # NO2 at zero: its own sensor, a run as any other
    assert all(_stuck_bits(_module([0.0] * 30, [4.0] * 30, [50.0 + i for i in range(30)])))


def test_stuck_looks_at_every_pollutant_and_nothing_else() -> None:
    watched = qc.STUCK_QUANTITIES
    assert watched == {"pm1_ugm3", "pm25_ugm3", "pm10_ugm3", "no2_ppb"}
    assert watched <= set(qc.SERIES_QUANTITIES)
    cfg = qc.QcConfig(stuck_n=5)
    for q in qc.SERIES_QUANTITIES:
        res = qc.series_flags([], points([7.0] * 5, q=q), cfg)
        assert all(bool(r.flags & F.STUCK) for r in res) == (q in qc.STUCK_QUANTITIES), q
        assert all(r.checks & F.STUCK for r in res)


def test_spike_against_neighbour_median() -> None:
    series = points([10.0, 11.0, 12.0, 95.0, 11.0, 10.0, 12.0])
    res = qc.series_flags([], series)
    assert [bool(r.flags & F.SPIKE) for r in res] == [False, False, False, True, *[False] * 3]
    assert all(r.checks & F.SPIKE for r in res)


def test_spike_scales_with_the_level_and_needs_neighbours() -> None:
    high = qc.series_flags([], points([200.0, 210.0, 400.0, 205.0, 198.0]))
    assert not high[2].flags & F.SPIKE  # 190 above a median of 202: < 3 x 202
    lone = qc.series_flags([], points([10.0, 500.0]))
    assert not any(r.checks & F.SPIKE for r in lone)


def test_the_registry_never_reuses_a_bit() -> None:
    bits = [f.value for f in ReadingFlag]
    assert len(bits) == len(set(bits))
    assert all(b & (b - 1) == 0 for b in bits)  # one bit each
    assert FLAGS_VERSION == 4
    assert {f.name: f.value for f in ReadingFlag}["CLOCK_SUSPECT"] == 16  # v1 bits unchanged
    assert not QUERY_TIME_FLAGS & (EDGE_FLAGS | COLLECTOR_FLAGS)
    assert INVALIDATING_FLAGS & F.ANNOTATED_INVALID
    assert not INVALIDATING_FLAGS & (F.SPIKE | F.HIGH_HUMIDITY | F.PARTIAL_WINDOW)


@given(
    st.dictionaries(
        st.sampled_from(sorted(qc.RANGES)),
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    ),
    st.integers(min_value=0, max_value=2**11 - 1),
)
def test_point_checks_fire_only_what_ran(values: dict[str, float | None], edge: int) -> None:
    res = check(values, edge=edge)
    assert res.flags & ~res.checks == 0
    assert not res.flags & QUERY_TIME_FLAGS


@pytest.mark.parametrize(
    ("day", "conv", "hours"),
    [
        ("2026-03-29", DayConvention.DISPLAY, 23),
        ("2026-10-25", DayConvention.DISPLAY, 25),
        ("2026-03-29", DayConvention.COMPLIANCE, 24),
        ("2026-10-25", DayConvention.COMPLIANCE, 24),
        ("2026-07-01", DayConvention.DISPLAY, 24),
    ],
)
def test_day_conventions(day: str, conv: DayConvention, hours: int) -> None:
    from datetime import date

    d = date.fromisoformat(day)
    start, end = day_bounds(d, conv)
    assert end - start == timedelta(hours=hours)
    assert day_of(start, conv) == d
    assert day_of(end - timedelta(microseconds=1), conv) == d
    if conv is DayConvention.COMPLIANCE:
        assert start.astimezone(UTC).hour == 23


def test_day_convention_parse() -> None:
    assert DayConvention.parse("UTC+01:00") is DayConvention.COMPLIANCE
    assert DayConvention.parse("europe/oslo") is DayConvention.DISPLAY
    from luftnett.errors import ConfigError

    with pytest.raises(ConfigError, match="utc\\+01"):
        DayConvention.parse("CET")


def test_timescale_migration_is_the_rendered_sql() -> None:
    path = REPO / "src/luftnett/db/migrations/0004_timescale_rollups.sql"
    text = path.read_text(encoding="utf-8")
    assert text == render(), "run `python -m luftnett.collector.timescale` into a NEW migration"
    assert "IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')" in text
    for stmt in (
        "timescaledb.compress_segmentby = 'device_id'",
        "add_compression_policy('readings', INTERVAL '30 days'",
        "add_retention_policy('readings', INTERVAL '5 years'",
        "CREATE MATERIALIZED VIEW readings_hourly_ca",
        "time_bucket(INTERVAL '1 day', hour_start, 'Europe/Oslo')",
        "time_bucket(INTERVAL '1 day', hour_start, 'Etc/GMT-1')",
        "WITH NO DATA",  # allowed inside the migration's transaction
    ):
        assert stmt in text
    assert text.count("add_continuous_aggregate_policy(") == 3
    assert "flags & 631 = 0" in text  # stored invalidating bits: 0 1 2 4 5 6 9
