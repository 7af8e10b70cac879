"""Per-site values for a map, with their uncertainty, from hourly aggregates.

Input: for each site, hourly rows (hour start, readings, mean, standard deviation, seconds
covered, and, for calibrated values, their mean standard uncertainty ``u``), as
:mod:`luftnett.mapping.queries` reads them. Output: one :class:`SiteStat` per site with the
value the map interpolates and ``sigma``, its standard uncertainty, used by kriging as the
site's measurement-error standard deviation::

    sigma² = sem² + u_cal²

- ``sem``: standard error of the period mean from the variability inside the period. Hourly
  means are autocorrelated, so ``sem = sd / sqrt(n_eff)`` with ``n_eff = n (1 - r) / (1 + r)``
  from the lag-1 autocorrelation ``r`` of the hourly means (clipped to 0..0.95).
- ``u_cal``: calibration uncertainty. Calibration errors are mostly systematic over a period,
  so the period's ``u_cal`` is the *mean* of the hourly ``u`` (no averaging down). Raw values
  have no ``u``: they get :data:`RAW_UNCERTAINTY`, ``sqrt(a² + (b value)²)``, a deliberately
  wide default for uncalibrated low-cost sensors (the EU data-quality objective for indicative
  PM measurements is 50 %, NO2 25 %).

Validity, as in docs/maps.md: an hour counts when its readings cover ``min_coverage`` of it
(default 75 %, i.e. 45 min); a day when it has at least 18 valid hours; a period mean is
published for a site when its valid hours cover ``min_coverage`` of the period's hours
(days for exceedance counts). Statistics:

- ``mean``: mean of the valid hourly means (for ``hourly``, the mean of the readings);
- ``exceedances``: the number of valid days whose mean is above ``threshold``; its ``sigma``
  is ``sqrt(sum p_d (1 - p_d))`` with ``p_d`` the probability that day ``d`` is above the
  threshold given its uncertainty: near-threshold days make the count uncertain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from luftnett.mapping.errors import MappingError
from luftnett.mapping.period import Period

__all__ = [
    "RAW_UNCERTAINTY",
    "SiteHours",
    "SiteStat",
    "Statistic",
    "raw_uncertainty",
    "site_statistics",
]

Array = NDArray[np.float64]
Statistic = Literal["mean", "exceedances"]
#: (a, b) of ``u = sqrt(a² + (b value)²)`` for raw values: a in the pollutant's unit, b relative
RAW_UNCERTAINTY: dict[str, tuple[float, float]] = {
    "pm25": (2.0, 0.30),
    "pm10": (3.0, 0.30),
    "no2": (4.0, 0.25),
}
DAY_MIN_VALID_HOURS = 18
_UTC1_S = 3600.0


def raw_uncertainty(pollutant: str, value: Array | float) -> Array:
    """Default standard uncertainty of a raw (uncalibrated) value, same unit as the value."""
    a, b = RAW_UNCERTAINTY[pollutant]
    v = np.asarray(value, dtype=np.float64)
    return np.asarray(np.sqrt(a * a + (b * v) ** 2), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SiteHours:
    """Hourly aggregates of one site: arrays of equal length, one entry per hour with data.

    ``hour_s`` hour starts (epoch s), ``n`` readings, ``mean`` and ``sd`` of the readings,
    ``covered_s`` seconds covered (sum of window lengths), ``u`` mean calibration standard
    uncertainty (NaN for raw values).
    """

    site_id: str
    name: str
    site_type: str
    lon: float
    lat: float
    hour_s: Array
    n: Array
    mean: Array
    sd: Array
    covered_s: Array
    u: Array


@dataclass(frozen=True, slots=True)
class SiteStat:
    """A site's value for the map and its standard uncertainty ``sigma`` (value units)."""

    site_id: str
    name: str
    site_type: str
    lon: float
    lat: float
    value: float
    sigma: float
    sem: float
    u_cal: float
    coverage: float  # valid fraction of the period (hours, or days for exceedances)
    n_valid: int
    ok: bool
    reason: str = ""
    calibrated: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        def num(v: float) -> float | None:
            return round(v, 6) if math.isfinite(v) else None

        return {
            "site_id": self.site_id,
            "name": self.name,
            "site_type": self.site_type,
            "lon": self.lon,
            "lat": self.lat,
            "value": num(self.value),
            "sigma": num(self.sigma),
            "sem": num(self.sem),
            "u_cal": num(self.u_cal),
            "coverage": round(self.coverage, 4),
            "n_valid": self.n_valid,
            "used": self.ok,
            "reason": self.reason or None,
            "calibrated": self.calibrated,
        }


def _n_eff(x: Array) -> float:
    n = x.size
    if n < 3 or np.var(x) == 0:
        return float(n)
    d = x - x.mean()
    r = float(np.clip(np.sum(d[1:] * d[:-1]) / np.sum(d * d), 0.0, 0.95))
    return max(1.0, n * (1 - r) / (1 + r))


def _sem(x: Array) -> float:
    if x.size < 2:
        return math.nan
    return float(np.std(x, ddof=1) / math.sqrt(_n_eff(x)))


def site_statistics(
    sites: list[SiteHours],
    period: Period,
    pollutant: str,
    *,
    statistic: Statistic = "mean",
    threshold: float | None = None,
    min_coverage: float = 0.75,
) -> list[SiteStat]:
    """One :class:`SiteStat` per site (``ok`` False, with a reason, when it cannot be used)."""
    if pollutant not in RAW_UNCERTAINTY:
        raise MappingError(f"unknown pollutant {pollutant!r}; use one of pm25, pm10, no2")
    if statistic == "exceedances" and threshold is None:
        raise MappingError("an exceedance count needs a threshold")
    if not 0 <= min_coverage <= 1:
        raise MappingError(f"min coverage must be between 0 and 1 (got {min_coverage})")
    return [_one(s, period, pollutant, statistic, threshold, min_coverage) for s in sites]


def _one(
    s: SiteHours,
    period: Period,
    pollutant: str,
    statistic: Statistic,
    threshold: float | None,
    min_coverage: float,
) -> SiteStat:
    base = {
        "site_id": s.site_id,
        "name": s.name,
        "site_type": s.site_type,
        "lon": s.lon,
        "lat": s.lat,
    }
    calibrated = bool(np.any(np.isfinite(s.u)))
    valid = s.covered_s >= min_coverage * 3600.0 - 1e-6
    if period.kind == "hourly":
        n = int(s.n.sum())
        cover = float(min(1.0, s.covered_s.sum() / 3600.0))
        if n == 0 or cover < min_coverage:
            return _bad(base, cover, f"hour covered {100 * cover:.0f} %", calibrated)
        value = float(np.sum(s.mean * s.n) / n)
        sem = float(s.sd.max() / math.sqrt(n)) if n > 1 and np.isfinite(s.sd).all() else 0.0
        u_cal = _u_cal(s, pollutant, value, valid)
        return _good(base, value, sem, u_cal, cover, 1, calibrated)

    hours = s.mean[valid]
    if statistic == "mean":
        cover = hours.size / period.hours
        if hours.size == 0 or cover < min_coverage:
            return _bad(base, cover, f"{hours.size} valid hours of {period.hours}", calibrated)
        value = float(hours.mean())
        sem = _sem(hours)
        u_cal = _u_cal(s, pollutant, value, valid)
        return _good(
            base, value, 0.0 if math.isnan(sem) else sem, u_cal, cover, hours.size, calibrated
        )

    assert threshold is not None
    day = np.floor((s.hour_s[valid] + _UTC1_S) / 86400.0)
    days, inverse, counts = np.unique(day, return_inverse=True, return_counts=True)
    keep = counts >= DAY_MIN_VALID_HOURS
    n_days = round(period.hours / 24)
    cover = int(keep.sum()) / max(n_days, 1)
    if not keep.any() or cover < min_coverage:
        return _bad(base, cover, f"{int(keep.sum())} valid days of {n_days}", calibrated)
    means = np.bincount(inverse, hours) / counts
    u_hours = s.u[valid]
    u_day = np.empty(days.size)
    sem_day = np.empty(days.size)
    for i in range(days.size):
        h = hours[inverse == i]
        uh = u_hours[inverse == i]
        u_day[i] = np.nanmean(uh) if np.isfinite(uh).any() else raw_uncertainty(pollutant, means[i])
        sem_day[i] = _sem(h) if h.size > 1 else 0.0
    m, sd = means[keep], np.hypot(u_day[keep], sem_day[keep])
    p = ndtr((m - threshold) / np.maximum(sd, 1e-9))
    count = float(np.sum(m > threshold))
    sigma = float(np.sqrt(np.sum(p * (1 - p))))
    stat = _good(base, count, sigma, 0.0, cover, int(keep.sum()), calibrated)
    stat.extra["expected_count"] = float(p.sum())
    return stat


def _u_cal(s: SiteHours, pollutant: str, value: float, valid: NDArray[np.bool_]) -> float:
    u = s.u[valid] if valid.any() else s.u
    if np.isfinite(u).any():
        return float(np.nanmean(u))
    return float(raw_uncertainty(pollutant, value))


def _good(
    base: dict[str, object],
    value: float,
    sem: float,
    u_cal: float,
    cover: float,
    n_valid: int,
    calibrated: bool,
) -> SiteStat:
    return SiteStat(
        value=value,
        sigma=math.hypot(sem, u_cal),
        sem=sem,
        u_cal=u_cal,
        coverage=cover,
        n_valid=n_valid,
        ok=True,
        calibrated=calibrated,
        **base,  # type: ignore[arg-type]
    )


def _bad(base: dict[str, object], cover: float, reason: str, calibrated: bool) -> SiteStat:
    return SiteStat(
        value=math.nan,
        sigma=math.nan,
        sem=math.nan,
        u_cal=math.nan,
        coverage=cover,
        n_valid=0,
        ok=False,
        reason=f"insufficient data: {reason}",
        calibrated=calibrated,
        **base,  # type: ignore[arg-type]
    )
