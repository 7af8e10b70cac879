"""Drift checks over the fleet (the I/O side of :mod:`luftnett.calibration.drift`).

For each device deployed at a site with coordinates during the period: its hourly means
(valid readings, >= 75 % coverage, as for fitting) are compared with the nearest reference
station that measures the pollutant (at any distance; the distance is reported) and with the
hourly median of its neighbours (other devices whose site lies within ``neighbour_radius_m``).

The hourly means are of the calibrated values (``calibrated_current``: each reading as the
version in force at its time made it) for a device that has any in the period, else of the raw
values; :attr:`DeviceDrift.basis` says which. Drift is what a calibration has not corrected,
so a sensor whose raw values differ from the reference by a constant gain that its
calibration removes is not drifting, and one whose calibrated values walk away is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import POLLUTANT_COLUMNS
from luftnett.calibration.colocation import EARTH_RADIUS_M, MIN_COVERAGE, PAIR_FLAG_MASK
from luftnett.calibration.drift import DriftAssessment, assess_drift
from luftnett.db.schema import NOT_ANNOTATED_INVALID
from luftnett.errors import CalibrationError

__all__ = ["DeviceDrift", "fleet_drift"]

_SITES = """
SELECT DISTINCT ON (d.device_id) d.device_id, s.lat, s.lon
FROM deployments d JOIN sites s ON s.site_id = d.site_id
WHERE s.lat IS NOT NULL AND s.lon IS NOT NULL
  AND d.valid_from < %(end)s AND (d.valid_to IS NULL OR d.valid_to > %(start)s)
ORDER BY d.device_id, d.valid_from DESC
"""

_STATIONS = """
SELECT station_id, lat, lon FROM reference_stations
WHERE lat IS NOT NULL AND lon IS NOT NULL AND %(pollutant)s = ANY(pollutants)
"""

_HOURLY = sql.SQL(
    """
    SELECT r.device_id, date_bin('1 hour', r.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS h,
           CASE WHEN count(r.{col}) >= %(cov)s * 3600.0 / min(r.window_s) THEN avg(r.{col}) END,
           CASE WHEN count(c.value) >= %(cov)s * 3600.0 / min(r.window_s) THEN avg(c.value) END,
           count(c.value)
    FROM readings r
    LEFT JOIN calibrated_current c
      ON c.device_id = r.device_id AND c.seq = r.seq AND c.pollutant = %(pollutant)s
    WHERE r.device_id = ANY(%(devices)s) AND r.ts >= %(start)s AND r.ts < %(end)s
      AND r.flags & %(mask)s = 0 AND {not_annotated}
    GROUP BY 1, 2
    """
)


@dataclass(frozen=True, slots=True)
class DeviceDrift:
    device_id: str
    station_id: str | None
    station_distance_m: float | None
    neighbours: int
    vs_reference: DriftAssessment | None
    vs_neighbours: DriftAssessment | None
    basis: str = "raw"  # "calibrated" when the device has calibrated values in the period

    @property
    def flagged(self) -> bool:
        return any(a is not None and a.flagged for a in (self.vs_reference, self.vs_neighbours))

    @property
    def verdict(self) -> str:
        """``DRIFT``; ``ok`` when an indicator was computed and none is beyond the threshold;
        ``unknown`` when there were pairs but too few hours for an indicator; ``no data``."""
        found = [a for a in (self.vs_reference, self.vs_neighbours) if a is not None]
        if self.flagged:
            return "DRIFT"
        if any(a.ratio_change_pct is not None or a.trend_pct_per_30d is not None for a in found):
            return "ok"
        return "unknown" if any(a.n_pairs for a in found) else "no data"


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return float(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a)))


def fleet_drift(
    conn: psycopg.Connection[Any],
    pollutant: str,
    start: datetime,
    end: datetime,
    device_id: str | None = None,
    neighbour_radius_m: float = 2000.0,
    window_days: float = 7.0,
    threshold_pct: float = 20.0,
) -> list[DeviceDrift]:
    if pollutant not in POLLUTANT_COLUMNS:
        raise CalibrationError(
            f"unknown pollutant {pollutant!r}; use {', '.join(POLLUTANT_COLUMNS)}"
        )
    sites = {r[0]: (float(r[1]), float(r[2])) for r in conn.execute(
        _SITES, {"start": start, "end": end})}  # fmt: skip
    if device_id is not None and device_id not in sites:
        raise CalibrationError(
            f"device {device_id!r} has no deployment at a site with coordinates in the period"
        )
    stations = [(r[0], float(r[1]), float(r[2])) for r in conn.execute(
        _STATIONS, {"pollutant": pollutant})]  # fmt: skip
    raw: dict[str, dict[datetime, float]] = {d: {} for d in sites}
    cal: dict[str, dict[datetime, float]] = {d: {} for d in sites}
    has_cal: set[str] = set()
    q = _HOURLY.format(
        col=sql.Identifier(POLLUTANT_COLUMNS[pollutant]),
        not_annotated=sql.SQL(NOT_ANNOTATED_INVALID),
    )
    for dev, h, v_raw, v_cal, n_cal in conn.execute(
        q, {"devices": list(sites), "start": start, "end": end, "mask": PAIR_FLAG_MASK,
            "cov": MIN_COVERAGE, "pollutant": pollutant},
    ):  # fmt: skip
        if v_raw is not None:
            raw[dev][h] = float(v_raw)
        if v_cal is not None:
            cal[dev][h] = float(v_cal)
        if n_cal:
            has_cal.add(dev)
    # calibrated where the device has a calibration in the period, raw otherwise
    hourly = {d: cal[d] if d in has_cal else raw[d] for d in sites}
    targets = [device_id] if device_id is not None else sorted(sites)
    out = []
    for dev in targets:
        lat, lon = sites[dev]
        series = hourly[dev]
        hours = sorted(series)
        x = np.array([series[h] for h in hours])
        near = min(
            ((s, _distance_m(lat, lon, slat, slon)) for s, slat, slon in stations),
            key=lambda t: t[1],
            default=None,
        )
        vs_ref = None
        if near is not None and hours:
            ref = dict(conn.execute(
                "SELECT hour_start, value FROM reference_observations WHERE station_id = %s "
                "AND pollutant = %s AND hour_start >= %s AND hour_start < %s",
                (near[0], pollutant, start, end),
            ).fetchall())  # fmt: skip
            y = np.array([ref.get(h, np.nan) for h in hours], dtype=np.float64)
            vs_ref = assess_drift(hours, x, y, window_days, threshold_pct)
        neigh = [
            n for n, (nlat, nlon) in sites.items()
            if n != dev and _distance_m(lat, lon, nlat, nlon) <= neighbour_radius_m
        ]  # fmt: skip
        vs_nb = None
        if neigh and hours:
            med = np.array([
                np.median(vals) if (vals := [hourly[n][h] for n in neigh if h in hourly[n]])
                else np.nan
                for h in hours
            ])  # fmt: skip
            vs_nb = assess_drift(hours, x, med, window_days, threshold_pct)
        out.append(DeviceDrift(
            dev, near[0] if near else None, near[1] if near else None, len(neigh), vs_ref, vs_nb,
            "calibrated" if dev in has_cal else "raw",
        ))  # fmt: skip
    return out
