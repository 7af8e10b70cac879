"""Drift of a sensor against a comparison series (a reference station or the median of its
neighbours), over rolling windows; pure numpy, no I/O.

Two indicators, both on hourly pairs:

* **ratio of medians** per window of ``window_days`` (sliding by one day, at least
  ``min_hours`` pairs): median(sensor) / median(comparison). Its change from the first window
  to the last, in %, is the drift of the sensor's sensitivity. Medians resist episodes that
  hit one site only.
* **trend of residuals**: the OLS slope of ``sensor − comparison`` against time, expressed per
  30 days and relative to the median of the comparison. It catches a creeping offset
  (typical of electrochemical NO2 cells) that leaves the ratio noisy.

A series is flagged when either exceeds ``threshold_pct`` (default 20 %) in absolute value;
the suggestion is then to re-run a co-location (``luftnett calibrate fit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

__all__ = ["DriftAssessment", "DriftWindow", "assess_drift", "rolling_ratio"]

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class DriftWindow:
    end: datetime
    n: int
    ratio: float


@dataclass(frozen=True, slots=True)
class DriftAssessment:
    n_pairs: int
    windows: tuple[DriftWindow, ...]
    ratio_change_pct: float | None  # last window's ratio vs the first's
    trend_pct_per_30d: float | None  # residual trend relative to the comparison's median
    flagged: bool
    reasons: tuple[str, ...]


def _seconds(hours: Sequence[datetime]) -> FloatArray:
    return np.array([h.timestamp() for h in hours], dtype=np.float64)


def rolling_ratio(
    hours: Sequence[datetime],
    sensor: FloatArray,
    other: FloatArray,
    window_days: float = 7.0,
    min_hours: int = 72,
) -> list[DriftWindow]:
    """Windows ``(end − window_days, end]`` ending at each midnight after the first full one."""
    if len(hours) == 0:
        return []
    t = _seconds(hours)
    ok = np.isfinite(sensor) & np.isfinite(other)
    first = hours[0].replace(hour=0, minute=0, second=0, microsecond=0)
    end = first + timedelta(days=window_days)
    out = []
    while end <= hours[-1] + timedelta(days=1):
        hi = end.timestamp()
        m = ok & (t > hi - window_days * DAY_S) & (t <= hi)
        n = int(m.sum())
        if n >= min_hours:
            den = float(np.median(other[m]))
            if den > 0:
                out.append(DriftWindow(end, n, float(np.median(sensor[m])) / den))
        end += timedelta(days=1)
    return out


def assess_drift(
    hours: Sequence[datetime],
    sensor: FloatArray,
    other: FloatArray,
    window_days: float = 7.0,
    threshold_pct: float = 20.0,
    min_hours: int = 72,
) -> DriftAssessment:
    """Both indicators and the verdict for one sensor and one comparison series."""
    ok = np.isfinite(sensor) & np.isfinite(other)
    windows = rolling_ratio(hours, sensor, other, window_days, min_hours)
    change = None
    if len(windows) >= 2:
        change = 100.0 * (windows[-1].ratio / windows[0].ratio - 1.0)
    trend = None
    if ok.sum() >= max(min_hours, 3):
        t = _seconds(hours)[ok] / DAY_S
        r = sensor[ok] - other[ok]
        if float(np.ptp(t)) >= 2 * window_days:
            slope = float(np.polyfit(t - t.mean(), r, 1)[0])  # units per day
            scale = float(np.median(other[ok]))
            if scale > 0:
                trend = 100.0 * slope * 30.0 / scale
    reasons = []
    if change is not None and abs(change) > threshold_pct:
        reasons.append(f"ratio of medians changed {change:+.0f} % since the first window")
    if trend is not None and abs(trend) > threshold_pct:
        reasons.append(f"residuals trend {trend:+.0f} % of the typical level per 30 days")
    return DriftAssessment(
        n_pairs=int(ok.sum()),
        windows=tuple(windows),
        ratio_change_pct=change,
        trend_pct_per_30d=trend,
        flagged=bool(reasons),
        reasons=tuple(reasons),
    )
