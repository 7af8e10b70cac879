"""Window statistics: n, min, max per quantity, flags, warm-up kept out of the mean."""

from __future__ import annotations

import pytest

from luftnett.edge.averaging import Averager
from luftnett.edge.framing import Measurement

T0 = 1_700_000_040.0  # a multiple of 10 and of 60


def m(pm25: float, pm10: float | None = None, flags: frozenset[str] = frozenset()) -> Measurement:
    values = {"pm25_ugm3": pm25}
    if pm10 is not None:
        values["pm10_ugm3"] = pm10
    return Measurement(values=values, raw=b"", serial="A160", flags=flags)


def test_window_keeps_n_min_max_per_quantity_and_union_of_flags() -> None:
    avg = Averager(window_s=10, expected_interval_s=1)
    frames = [m(3.0, 6.0), m(1.0), m(8.0, 2.0, frozenset({"out_of_spec"})), m(4.0, 4.0)]
    for i, f in enumerate(frames):
        assert avg.add(f, T0 + i) == []
    (r,) = avg.close_due(T0 + 10)
    assert r["n_samples"] == 4
    assert r["n"] == {"pm10_ugm3": 3, "pm25_ugm3": 4}
    assert r["min"] == {"pm10_ugm3": 2.0, "pm25_ugm3": 1.0}
    assert r["max"] == {"pm10_ugm3": 6.0, "pm25_ugm3": 8.0}
    assert r["values"] == {"pm10_ugm3": 4.0, "pm25_ugm3": 4.0}
    assert r["flags"] == ["out_of_spec", "partial_window"]  # 4 of 10 expected frames
    assert "n_warmup" not in r
    assert avg.serial == "A160"


def test_warm_up_frames_are_left_out_of_the_mean_and_counted() -> None:
    avg = Averager(window_s=10, expected_interval_s=1)
    avg.warm_up(T0 + 3)  # e.g. the sensor woke at T0 with a 3 s warm-up
    for i in range(10):
        avg.add(m(100.0 if i < 3 else 10.0), T0 + i)
    (r,) = avg.close_due(T0 + 10)
    assert r["n_samples"] == 7
    assert r["n_warmup"] == 3
    assert r["values"]["pm25_ugm3"] == pytest.approx(10.0)
    assert r["max"]["pm25_ugm3"] == 10.0
    assert r["flags"] == ["partial_window"]  # 7 of 10 < 75 %
    assert avg.warmup_frames == 3


def test_driver_flagged_warm_up_frames_are_left_out_too() -> None:
    avg = Averager(window_s=10)
    avg.add(m(0.0, 0.0, frozenset({"warming_up"})), T0 + 1)
    avg.add(m(5.0, 7.0), T0 + 2)
    (r,) = avg.close_due(T0 + 10)
    assert (r["n_samples"], r["n_warmup"], r["values"]["pm25_ugm3"]) == (1, 1, 5.0)
    assert r["flags"] == []


def test_a_window_of_only_warm_up_frames_is_reported_flagged_not_dropped() -> None:
    avg = Averager(window_s=10)
    avg.warm_up(T0 + 30)
    avg.add(m(50.0), T0 + 1)
    avg.add(m(70.0), T0 + 2)
    (r,) = avg.close_due(T0 + 10)
    assert r["n_samples"] == 2
    assert r["values"]["pm25_ugm3"] == pytest.approx(60.0)
    assert r["flags"] == ["warming_up"]
    assert "n_warmup" not in r  # nothing was left out of this mean


def test_empty_windows_produce_nothing_and_window_end_is_aligned() -> None:
    avg = Averager(window_s=60)
    assert avg.close_due(T0 + 1000) == []
    assert avg.window_end(T0 + 59.9) == T0 + 60
    assert avg.window_end(T0 + 60) == T0 + 120
