"""Hourly per-site aggregates for maps, read from the readings table.

Readings reach a site through ``deployments`` (the device deployed there when the reading
was taken), so a site's series survives a hardware swap. A reading belongs to the hour of
its window end ``ts``, as the rollups count it. Readings with an invalidating flag raised at
the edge (warming up, out of the sensor's spec, inconsistent) are left out. Sites without
coordinates cannot be mapped and are not returned.

Two sources of values:

- ``raw``: ``readings.<pollutant column>`` as the sensors reported them; no ``u``;
- ``calibrated``: the hook for calibrated values: ``calibrated_current`` (the value and its
  standard uncertainty ``u`` from the calibration version in force at each reading), where
  the calibration migration has created it. Until then ``calibrated`` is refused with a
  message; the statistics and maps take ``u`` as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import numpy as np
import psycopg
from psycopg import sql

from luftnett.contracts.units import INVALIDATING_FLAGS, MODEL_QUANTITIES
from luftnett.db.schema import DEVICE_MODELS, NOT_ANNOTATED_INVALID
from luftnett.mapping.errors import MappingError
from luftnett.mapping.guidelines import POLLUTANT_INFO
from luftnett.mapping.sitestats import SiteHours

__all__ = ["INVALID_FLAGS", "ValueSource", "fetch_site_hours"]

ValueSource = Literal["raw", "calibrated"]
#: readings with any of these flags are not mapped: the one invalidating mask of the flag
#: registry (edge verdicts and the collector's quality checks)
INVALID_FLAGS = int(INVALIDATING_FLAGS)
#: nor readings inside a staff annotation that invalidates its period
#: (:data:`~luftnett.db.schema.NOT_ANNOTATED_INVALID`, as the rollups, the API's series and
#: the downloads leave them out)
WHERE = sql.SQL(
    "r.ts >= %(start)s AND r.ts < %(end)s AND (r.flags & %(invalid)s) = 0 "
    "AND s.lat IS NOT NULL AND s.lon IS NOT NULL AND {}"
).format(sql.SQL(NOT_ANNOTATED_INVALID))

# One row per site and hour: site, hour start (epoch s), readings, mean, sd, seconds
# covered, mean standard uncertainty (NULL for raw values). {col} is a psycopg.sql.Identifier,
# {where} :data:`WHERE`.
RAW_HOURLY = sql.SQL("""
SELECT s.site_id, s.name, s.site_type, s.lat, s.lon,
       extract(epoch FROM date_trunc('hour', r.ts AT TIME ZONE 'UTC'))::double precision AS h,
       count(*), avg(r.{col}), stddev_samp(r.{col}), sum(r.window_s), NULL::double precision
FROM readings r
JOIN deployments d ON d.device_id = r.device_id
    AND r.ts >= d.valid_from AND (d.valid_to IS NULL OR r.ts < d.valid_to)
JOIN sites s ON s.site_id = d.site_id
WHERE r.{col} IS NOT NULL AND {where}
GROUP BY s.site_id, s.name, s.site_type, s.lat, s.lon, h
ORDER BY s.site_id, h
""")
CALIBRATED_HOURLY = sql.SQL("""
SELECT s.site_id, s.name, s.site_type, s.lat, s.lon,
       extract(epoch FROM date_trunc('hour', r.ts AT TIME ZONE 'UTC'))::double precision AS h,
       count(*), avg(c.value), stddev_samp(c.value), sum(r.window_s), avg(c.u)
FROM calibrated_current c
JOIN readings r ON r.device_id = c.device_id AND r.seq = c.seq
JOIN deployments d ON d.device_id = r.device_id
    AND r.ts >= d.valid_from AND (d.valid_to IS NULL OR r.ts < d.valid_to)
JOIN sites s ON s.site_id = d.site_id
WHERE c.pollutant = %(pollutant)s AND {where}
GROUP BY s.site_id, s.name, s.site_type, s.lat, s.lon, h
ORDER BY s.site_id, h
""").format(where=WHERE)


# sites with coordinates where a device was deployed during [start, end) that measures the
# pollutant (one of its sensor models does: `known` models by `measuring`, any other model may),
# other than those in `seen`
_DEPLOYED = sql.SQL("""
SELECT DISTINCT s.site_id, s.name, s.site_type, s.lat, s.lon
FROM deployments d
JOIN sites s ON s.site_id = d.site_id
WHERE d.valid_from < %(end)s AND (d.valid_to IS NULL OR d.valid_to > %(start)s)
  AND s.lat IS NOT NULL AND s.lon IS NOT NULL AND s.site_id <> ALL(%(seen)s::text[])
  AND EXISTS (
      SELECT 1 FROM {models} m WHERE m.device_id = d.device_id
        AND (m.sensor_model <> ALL(%(known)s::text[]) OR m.sensor_model = ANY(%(measuring)s)))
ORDER BY 1
""").format(models=sql.SQL(DEVICE_MODELS))


def fetch_site_hours(
    conn: psycopg.Connection[tuple[object, ...]],
    pollutant: str,
    start: datetime,
    end: datetime,
    source: ValueSource = "raw",
) -> list[SiteHours]:
    """Hourly aggregates of ``pollutant`` per site for readings with ``start <= ts < end``; a
    site deployed in the period with a device that measures the pollutant but without a valid
    reading of it comes with no hours (the map lists it as skipped, with the reason)."""
    if pollutant not in POLLUTANT_INFO:
        raise MappingError(f"unknown pollutant {pollutant!r}; use one of pm25, pm10, no2")
    params = {"start": start, "end": end, "invalid": INVALID_FLAGS, "pollutant": pollutant}
    query: sql.Composable
    if source == "raw":
        query = RAW_HOURLY.format(col=sql.Identifier(POLLUTANT_INFO[pollutant].column), where=WHERE)
    elif source == "calibrated":
        query = CALIBRATED_HOURLY
    else:
        raise MappingError(f"unknown value source {source!r}; use raw or calibrated")
    try:
        rows = conn.execute(query, params).fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise MappingError(
            "calibrated values are not available in this database (no calibrated_current); "
            "run `luftnett db migrate` and calibrate, or map raw values (--values raw)"
        ) from exc
    out: list[SiteHours] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        block = rows[i:j]
        cols = np.array([r[5:] for r in block], dtype=object)
        site_id, name, site_type, lat, lon = block[0][:5]

        def num(k: int, cols: np.ndarray = cols) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in cols[:, k]])

        out.append(
            SiteHours(
                site_id=str(site_id),
                name=str(name),
                site_type=str(site_type),
                lon=float(lon),  # type: ignore[arg-type]
                lat=float(lat),  # type: ignore[arg-type]
                hour_s=num(0),
                n=num(1),
                mean=num(2),
                sd=num(3),
                covered_s=num(4),
                u=num(5),
            )
        )
        i = j
    # sites whose device measures the pollutant but has no valid reading of it in the period (a
    # dead box, or one whose whole period staff invalidated): listed with no hours, so that the
    # map says why they are missing instead of leaving them out unmentioned
    seen = [s.site_id for s in out]
    column = POLLUTANT_INFO[pollutant].column
    measuring = [m for m, qs in MODEL_QUANTITIES.items() if column in qs]
    empty = np.empty(0)
    for site_id, name, site_type, lat, lon in conn.execute(
        _DEPLOYED,
        {**params, "seen": seen, "known": list(MODEL_QUANTITIES), "measuring": measuring},
    ).fetchall():
        out.append(SiteHours(
            site_id=str(site_id), name=str(name), site_type=str(site_type),
            lon=float(lon), lat=float(lat),  # type: ignore[arg-type]
            hour_s=empty, n=empty, mean=empty, sd=empty, covered_s=empty, u=empty,
        ))  # fmt: skip
    return out
