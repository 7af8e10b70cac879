"""The synthetic city: a deterministic true field with roads, wind, fog, drift and outages."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from numpy.testing import assert_allclose

from luftnett.firmware_sim.city import (
    ROADS,
    SyntheticCity,
    demo_sites,
    hours,
)

YEAR0 = 1_704_067_200.0  # 2024-01-01T00:00Z
JAN = YEAR0 + 14 * 86400  # a Monday in January


@pytest.fixture(scope="module")
def city() -> SyntheticCity:
    return SyntheticCity(seed=8)


def test_demo_sites_are_unchanged() -> None:
    sites = demo_sites(3)
    assert [s.site_id for s in sites] == ["site-001", "site-002", "site-003"]
    assert_allclose(sites[0].lat, 59.73295331059333, rtol=0, atol=1e-12)
    pm25, pm10 = sites[0].pm(random.Random(1))
    assert 0 <= pm25 <= pm10


def test_truth_is_deterministic_for_a_seed(city: SyntheticCity) -> None:
    rng = np.random.default_rng(0)
    xmin, ymin, xmax, ymax = city.bbox
    x, y = rng.uniform(xmin, xmax, 50), rng.uniform(ymin, ymax, 50)
    t = JAN + rng.uniform(0, 30 * 86400, 50)
    a, b = city.true_field(x, y, t), SyntheticCity(seed=8).true_field(x, y, t)
    other = SyntheticCity(seed=9).true_field(x, y, t)
    for p in ("pm25", "pm10", "no2"):
        assert_allclose(a.get(p), b.get(p), rtol=0, atol=0)
        assert not np.allclose(a.get(p), other.get(p))
        assert np.all(a.get(p) > 0)
    assert np.all(a.pm10 >= a.pm25)


def test_truth_broadcasts_over_a_grid_and_a_time(city: SyntheticCity) -> None:
    gx, gy = np.meshgrid(np.linspace(564_600, 570_400, 7), np.linspace(6_620_600, 6_625_400, 5))
    f = city.true_field(gx, gy, JAN + 8 * 3600)
    assert f.no2.shape == (5, 7)
    one = city.true_field(gx[2, 3], gy[2, 3], JAN + 8 * 3600)
    assert_allclose(one.no2, f.no2[2, 3], rtol=1e-12)


def test_period_mean_is_the_mean_of_hourly_truth(city: SyntheticCity) -> None:
    x = np.array([566_000.0, 567_500.0, 569_000.0])
    y = np.array([6_621_300.0, 6_622_900.0, 6_624_000.0])
    start, end = JAN, JAN + 3 * 86400
    t = hours(start, end) + 1800
    hourly = city.true_field(x[:, None], y[:, None], t[None, :])
    mean = city.true_mean(x, y, start, end)
    for p in ("pm25", "pm10", "no2"):
        assert_allclose(mean.get(p), hourly.get(p).mean(axis=1), rtol=1e-10)


def test_road_increment_decays_with_distance(city: SyntheticCity) -> None:
    """NO2 across the E18, a week's mean (all wind directions): highest at the kerb."""
    road = next(r for r in ROADS if r.name == "E18")
    (ax, ay), (bx, by) = road.points[1], road.points[2]
    mx, my = 564_500 + (ax + bx) / 2, 6_620_500 + (ay + by) / 2
    nx, ny = -(by - ay), bx - ax
    nx, ny = nx / np.hypot(nx, ny), ny / np.hypot(nx, ny)
    d = np.array([10.0, 30, 60, 100, 200, 400])
    for side in (1, -1):
        no2 = city.true_mean(mx + side * d * nx, my + side * d * ny, JAN, JAN + 7 * 86400).no2
        assert np.all(np.diff(no2) < 0), no2
        assert no2[0] - no2[-1] > 5.0  # ppb: a clear road increment


def test_downwind_side_sees_more_than_upwind(city: SyntheticCity) -> None:
    """Same distance either side of Skolegata (north-south): the side the wind blows to
    gets the larger increment."""
    t = hours(JAN, JAN + 60 * 86400) + 1800
    w = city.weather(t)
    hour = t[np.argmin(np.abs(w.wind_from_deg - 270.0))]  # wind from the west
    x0, y = 564_500 + 1250.0, 6_620_500 + 3300.0
    east = city.true_field(x0 + 80, y, hour).no2
    west = city.true_field(x0 - 80, y, hour).no2
    assert east > west


def test_fog_inflates_optical_readings_only(city: SyntheticCity) -> None:
    t = hours(YEAR0, YEAR0 + 365 * 86400) + 1800
    fog = city.weather(t).fog
    assert 0 < fog.mean() < 0.1
    sensors = [dataclasses.replace(s, noise_ugm3=0.0, outages=()) for s in city.place_sensors(4)]
    obs = city.observe(sensors, t)
    truth = city.true_field(
        np.array([s.x_m for s in sensors])[:, None], np.array([s.y_m for s in sensors])[:, None], t
    )
    ratio = obs.pm25 / truth.pm25
    ref, low = 0, 1  # place_sensors: the first is reference-grade
    assert sensors[ref].kind == "reference" and sensors[low].kind == "lowcost"
    assert_allclose(ratio[ref], 1.0, rtol=1e-12)
    assert np.median(ratio[low, fog]) > 1.8 * np.median(ratio[low, ~fog])
    assert np.all(obs.rh_pct[low, fog] > 97)


def test_drift_grows_with_time(city: SyntheticCity) -> None:
    s = dataclasses.replace(
        city.place_sensors(2)[1], noise_ugm3=0.0, kappa=0.0, offset_ugm3=0.0, drift_per_day=0.001
    )
    s = dataclasses.replace(s, outages=(), no2_noise_ppb=0.0, no2_drift_ppb_per_day=0.05)
    t = hours(YEAR0, YEAR0 + 300 * 86400) + 1800
    obs = city.observe([s], t)
    truth = city.true_field(s.x_m, s.y_m, t)
    gain = obs.pm25[0] / truth.pm25
    days = (t - t[0]) / 86400
    assert_allclose(gain, s.gain * (1 + 0.001 * days), rtol=1e-9)
    no2_err = obs.no2[0] - s.no2_gain * truth.no2
    assert_allclose(no2_err, s.no2_offset_ppb + 0.05 * days, atol=1e-9)


def test_outages_are_missing_values(city: SyntheticCity) -> None:
    s = city.place_sensors(2)[1]
    start, end = s.outages[0]
    t = np.array([start - 3600, start + 60, end - 60, end + 3600])
    obs = city.observe([s], t)
    assert list(np.isnan(obs.pm25[0])) == [False, True, True, False]
    assert np.isnan(obs.no2[0, 1])


def test_sensors_and_covariates(city: SyntheticCity) -> None:
    sensors = city.place_sensors(30)
    assert len({s.sensor_id for s in sensors}) == 30
    xmin, ymin, xmax, ymax = city.bbox
    assert all(xmin <= s.x_m <= xmax and ymin <= s.y_m <= ymax for s in sensors)
    dist, close = city.covariates([s.x_m for s in sensors], [s.y_m for s in sensors])
    traffic = np.array([s.site_type == "traffic" for s in sensors])
    assert np.all(dist[traffic] < 70)
    assert close[traffic].mean() > 3 * close[~traffic].mean()
    xs, ys, v = city.covariate_grid(200.0)
    assert v.shape == (ys.size, xs.size)
    assert xs[0] < xmin and xs[-1] > xmax
