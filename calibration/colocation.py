"""Co-location campaigns and paired hourly data from the database (the I/O side of fitting).

A *co-location campaign* is a deployment of a device at a site within ``max_distance_m``
(default 50 m, great-circle distance between ``sites.lat/lon`` and the station's) of a
reference station, for the deployment's period (open-ended while it lasts).

*Pairs* are hours ``[h, h + 1 h)`` (UTC) where the device has valid readings covering at least
75 % of the hour (readings without an invalidating flag, by count against 3600 s ÷ the
shortest ``window_s``; a reading belongs to the hour of its window end ``ts``, as in the
rollups) and the station has a value. The device's value is the mean of its readings; RH and
temperature are the means of the same readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import POLLUTANT_COLUMNS
from luftnett.contracts.units import INVALIDATING_FLAGS
from luftnett.db.schema import NOT_ANNOTATED_INVALID
from luftnett.errors import CalibrationError

__all__ = ["EARTH_RADIUS_M", "Colocation", "Pairs", "find_colocations", "hourly_pairs"]

FloatArray = npt.NDArray[np.float64]
EARTH_RADIUS_M = 6_371_008.8
MIN_COVERAGE = 0.75
#: stored flags that leave a reading out of the hourly means; readings inside an invalidating
#: staff annotation (query time only: NOT_ANNOTATED_INVALID) are left out too
PAIR_FLAG_MASK = int(INVALIDATING_FLAGS) & ((1 << 10) - 1)

_DISTANCE = """
2 * %(r)s * asin(sqrt(
    power(sin(radians(rs.lat - s.lat) / 2), 2)
    + cos(radians(s.lat)) * cos(radians(rs.lat)) * power(sin(radians(rs.lon - s.lon) / 2), 2)))
"""

_COLOCATIONS = sql.SQL(
    """
    SELECT d.device_id, s.site_id, rs.station_id, {dist} AS distance_m, d.valid_from,
           d.valid_to, rs.pollutants
    FROM deployments d
    JOIN sites s ON s.site_id = d.site_id
    JOIN reference_stations rs ON rs.lat IS NOT NULL AND rs.lon IS NOT NULL
    WHERE s.lat IS NOT NULL AND s.lon IS NOT NULL
      AND {dist} <= %(max_m)s
      AND (%(device)s::text IS NULL OR d.device_id = %(device)s)
      AND (%(station)s::text IS NULL OR rs.station_id = %(station)s)
    ORDER BY d.device_id, d.valid_from, distance_m
    """
).format(dist=sql.SQL(_DISTANCE))


@dataclass(frozen=True, slots=True)
class Colocation:
    device_id: str
    site_id: str
    station_id: str
    distance_m: float
    valid_from: datetime
    valid_to: datetime | None
    pollutants: tuple[str, ...]


def find_colocations(
    conn: psycopg.Connection[Any],
    max_distance_m: float = 50.0,
    device_id: str | None = None,
    station_id: str | None = None,
) -> list[Colocation]:
    """Deployments within ``max_distance_m`` of a reference station."""
    if not max_distance_m > 0:
        raise CalibrationError(f"the co-location distance must be > 0 m (got {max_distance_m})")
    rows = conn.execute(
        _COLOCATIONS,
        {"r": EARTH_RADIUS_M, "max_m": max_distance_m, "device": device_id, "station": station_id},
    ).fetchall()
    return [Colocation(r[0], r[1], r[2], float(r[3]), r[4], r[5], tuple(r[6])) for r in rows]


@dataclass(frozen=True, slots=True, eq=False)
class Pairs:
    """Hourly pairs in time order; ``status`` is the reference's verification status."""

    hours: tuple[datetime, ...]
    reference: FloatArray
    sensor: FloatArray
    rh_pct: FloatArray
    temperature_c: FloatArray
    status: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.hours)

    def covariates(self, mask: npt.NDArray[np.bool_] | None = None) -> dict[str, FloatArray]:
        cov = {"rh_pct": self.rh_pct, "temperature_c": self.temperature_c}
        return cov if mask is None else {k: v[mask] for k, v in cov.items()}


_PAIRS = sql.SQL(
    """
    WITH dev AS (
        SELECT date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS hour_start,
               avg({col}) AS x, avg(rh_pct) AS rh, avg(temperature_c) AS t,
               count({col}) AS n, min(window_s) AS w
        FROM readings r
        WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
          AND flags & %(mask)s = 0 AND {not_annotated}
        GROUP BY 1
    )
    SELECT d.hour_start, o.value, d.x, d.rh, d.t, o.status
    FROM dev d
    JOIN reference_observations o
      ON o.station_id = %(station)s AND o.pollutant = %(pollutant)s AND o.hour_start = d.hour_start
    WHERE d.n >= %(cov)s * 3600.0 / d.w
    ORDER BY d.hour_start
    """
)


def hourly_pairs(
    conn: psycopg.Connection[Any],
    device_id: str,
    station_id: str,
    pollutant: str,
    start: datetime,
    end: datetime,
) -> Pairs:
    """Device hourly means paired with the station's hourly values for hours in [start, end)."""
    if pollutant not in POLLUTANT_COLUMNS:
        raise CalibrationError(
            f"cannot pair {pollutant!r}; devices store {', '.join(POLLUTANT_COLUMNS)}"
        )
    q = _PAIRS.format(
        col=sql.Identifier(POLLUTANT_COLUMNS[pollutant]),
        not_annotated=sql.SQL(NOT_ANNOTATED_INVALID),
    )
    rows = conn.execute(
        q,
        {"device": device_id, "station": station_id, "pollutant": pollutant, "start": start,
         "end": end, "mask": PAIR_FLAG_MASK, "cov": MIN_COVERAGE},
    ).fetchall()  # fmt: skip

    def col(i: int) -> FloatArray:
        return np.array([np.nan if r[i] is None else float(r[i]) for r in rows], dtype=np.float64)

    return Pairs(
        hours=tuple(r[0] for r in rows),
        reference=col(1),
        sensor=col(2),
        rh_pct=col(3),
        temperature_c=col(4),
        status=tuple(r[5] for r in rows),
    )
