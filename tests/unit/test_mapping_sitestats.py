"""Per-site period values and their sigma, from hourly aggregates."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from luftnett.mapping.errors import MappingError
from luftnett.mapping.period import parse_period
from luftnett.mapping.sitestats import SiteHours, raw_uncertainty, site_statistics

YEAR = parse_period("annual", "2025")


def site(
    hour_s: np.ndarray, mean: np.ndarray, covered: float = 3600.0, u: float = np.nan
) -> SiteHours:
    n = hour_s.size
    return SiteHours(
        "s1",
        "S1",
        "traffic",
        10.2,
        59.74,
        hour_s,
        np.full(n, 6.0),
        mean,
        np.full(n, 1.0),
        np.full(n, covered),
        np.full(n, u),
    )


def day_hours(day: int) -> np.ndarray:
    """Hour starts of UTC+01 day ``day`` of 2025 (0 = 1 January)."""
    return YEAR.start.timestamp() + day * 86400 + np.arange(24) * 3600.0


def test_exceedance_days_and_their_uncertainty() -> None:
    hours = np.concatenate([day_hours(0), day_hours(1), day_hours(2)])
    means = np.concatenate([np.full(24, 10.0), np.full(24, 60.0), np.full(24, 49.5)])
    (st,) = site_statistics(
        [site(hours, means, u=3.0)],
        YEAR,
        "pm10",
        statistic="exceedances",
        threshold=50.0,
        min_coverage=0.0,
    )
    assert st.ok and st.value == 1.0  # only the 60 day; 49.5 is not above 50
    assert st.n_valid == 3 and st.calibrated
    # the 49.5 day has p ~ 0.43 of being above: it dominates sigma = sqrt(sum p(1-p))
    assert 0.45 < st.sigma < 0.55
    assert_allclose(st.extra["expected_count"], 1.0 + 0.43, atol=0.05)


def test_a_day_needs_18_valid_hours_and_an_hour_45_minutes() -> None:
    hours = day_hours(0)
    (short,) = site_statistics(
        [site(hours[:17], np.full(17, 80.0))],
        YEAR,
        "pm10",
        statistic="exceedances",
        threshold=50.0,
        min_coverage=0.0,
    )
    assert not short.ok and "0 valid days" in short.reason
    day = parse_period("daily", "2025-01-01")
    (thin,) = site_statistics([site(hours, np.full(24, 5.0), covered=2000.0)], day, "pm25")
    assert not thin.ok and "0 valid hours of 24" in thin.reason


def test_mean_sigma_combines_sem_and_the_raw_default() -> None:
    rng = np.random.default_rng(1)
    hours = day_hours(0)
    x = 10 + np.cumsum(rng.normal(0, 1, 24)) * 0.5  # autocorrelated hours
    (st,) = site_statistics([site(hours, x)], parse_period("daily", "2025-01-01"), "no2")
    assert_allclose(st.value, x.mean())
    assert st.sem > np.std(x, ddof=1) / np.sqrt(24)  # effective n < 24
    assert_allclose(st.u_cal, raw_uncertainty("no2", x.mean()))
    assert_allclose(st.sigma, np.hypot(st.sem, st.u_cal))
    assert not st.calibrated


def test_calibrated_u_is_not_averaged_down() -> None:
    hours = day_hours(0)
    (st,) = site_statistics(
        [site(hours, np.full(24, 8.0), u=1.5)], parse_period("daily", "2025-01-01"), "pm25"
    )
    assert st.u_cal == 1.5 and st.sem == 0.0 and st.sigma == 1.5


def test_parameters_are_checked() -> None:
    with pytest.raises(MappingError, match="threshold"):
        site_statistics([], YEAR, "pm10", statistic="exceedances")
    with pytest.raises(MappingError, match="unknown pollutant"):
        site_statistics([], YEAR, "o3")


@pytest.mark.parametrize(
    ("kind", "at", "start", "hours"),
    [
        pytest.param("annual", "2025", "2024-12-31T23:00:00+00:00", 8760, id="year"),
        pytest.param("daily", "2025-06-01", "2025-05-31T23:00:00+00:00", 24, id="day"),
        pytest.param("hourly", "2025-06-01T08:30", "2025-06-01T07:00:00+00:00", 1, id="hour"),
        pytest.param("hourly", "2025-06-01T08Z", "2025-06-01T08:00:00+00:00", 1, id="hour-utc"),
    ],
)
def test_periods_are_utc_plus_1(kind: str, at: str, start: str, hours: int) -> None:
    p = parse_period(kind, at)
    assert p.start.isoformat() == start and p.hours == hours
