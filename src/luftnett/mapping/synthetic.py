"""Maps of the synthetic city (:mod:`luftnett.firmware_sim.city`), checked against its truth.

- :func:`city_site_hours` simulates hourly sensor values for a period, as ``raw`` readings
  (what the boxes report) or ``calibrated`` (each box corrected by an imperfect calibration:
  gain and hygroscopic growth estimated with 10 % and 25 % error, offset with 0.5 units; the
  stated uncertainty ``u = sqrt(a² + (0.12 value)²)``, ``a`` = 1 µg/m³ or 2 ppb, about what
  a co-location gives; drift after calibration is not corrected);
- :func:`validate` builds maps with each method and compares them with the true period mean
  on every cell: RMSE and bias against the truth, LOOCV RMSE, and the coverage of the
  95 % intervals (the share of cells whose truth lies within ``value ± 1.96 se``);
- :func:`write_city` writes CSV files for ``luftnett map interpolate`` and for inspection;
- :class:`CitySource` gives a live (PM2.5, PM10) reading of one city sensor for the demo, and
  its box's NO2 module's (NO2, temperature, RH).
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from luftnett.firmware_sim.city import CITY_EPSG, Sensor, SyntheticCity, hours
from luftnett.mapping.crs import to_wgs84
from luftnett.mapping.drift import DriftGrid
from luftnett.mapping.errors import MappingError
from luftnett.mapping.exposure import ExposureMap, MapSpec, build_map
from luftnett.mapping.interpolate import Method
from luftnett.mapping.period import Period
from luftnett.mapping.sitestats import SiteHours, SiteStat, site_statistics

__all__ = [
    "CitySource",
    "ValidationRow",
    "city_drift_grid",
    "city_site_hours",
    "city_site_stats",
    "validate",
    "write_city",
]

Array = NDArray[np.float64]


def _epoch(period: Period) -> tuple[float, float]:
    return period.start.timestamp(), period.end.timestamp()


def city_drift_grid(city: SyntheticCity, cell_m: float = 100.0) -> DriftGrid:
    """The city's traffic-closeness covariate as a kriging drift grid."""
    xs, ys, v = city.covariate_grid(cell_m)
    return DriftGrid(xs_m=xs, ys_m=ys, values=v)


def city_site_hours(
    city: SyntheticCity,
    sensors: list[Sensor],
    period: Period,
    pollutant: str,
    *,
    calibrated: bool = False,
) -> list[SiteHours]:
    """Hourly values of ``sensors`` over ``period`` (one reading per hour, window 3600 s)."""
    start, end = _epoch(period)
    t = hours(start, end) + 1800.0
    obs = city.observe(sensors, t).get(pollutant)
    u = np.full(obs.shape, np.nan)
    if calibrated:
        rng = np.random.default_rng(city.seed + 101)
        rh = city.weather(t).rh_pct
        aw = np.clip(rh, 0, 99.0) / 100.0
        fixed = np.empty_like(obs)
        for i, s in enumerate(sensors):
            if pollutant == "no2":
                g = s.no2_gain * (1 + 0.1 * rng.standard_normal())
                off = s.no2_offset_ppb + 0.5 * rng.standard_normal()
                fixed[i] = (obs[i] - off) / g
            else:
                kappa = s.kappa * (1 + 0.25 * rng.standard_normal())
                growth = 1.0 + kappa / 1.65 / (1.0 / aw - 1.0)
                g = s.gain * (1 + 0.1 * rng.standard_normal())
                off = s.offset_ugm3 + 0.5 * rng.standard_normal()
                fixed[i] = (obs[i] / growth - off) / g
        obs = fixed
        a = 2.0 if pollutant == "no2" else 1.0
        u = np.sqrt(a * a + (0.12 * obs) ** 2)
    lon, lat = to_wgs84([s.x_m for s in sensors], [s.y_m for s in sensors], CITY_EPSG)
    out = []
    for i, s in enumerate(sensors):
        ok = np.isfinite(obs[i])
        out.append(
            SiteHours(
                site_id=s.sensor_id,
                name=s.sensor_id,
                site_type=s.site_type,
                lon=float(lon[i]),
                lat=float(lat[i]),
                hour_s=t[ok] - 1800.0,
                n=np.ones(int(ok.sum())),
                mean=obs[i, ok],
                sd=np.full(int(ok.sum()), np.nan),
                covered_s=np.full(int(ok.sum()), 3600.0),
                u=u[i, ok],
            )
        )
    return out


def city_site_stats(
    city: SyntheticCity,
    sensors: list[Sensor],
    period: Period,
    pollutant: str,
    *,
    calibrated: bool = True,
    min_coverage: float = 0.75,
) -> list[SiteStat]:
    """Period means per sensor, with sigma, as the database path computes them."""
    site_hours = city_site_hours(city, sensors, period, pollutant, calibrated=calibrated)
    return site_statistics(site_hours, period, pollutant, min_coverage=min_coverage)


@dataclass(frozen=True, slots=True)
class ValidationRow:
    """One method's map against the truth (value units; coverage as a fraction)."""

    method: str
    rmse_truth: float
    bias_truth: float
    loocv_rmse: float
    loocv_bias: float
    rmsse: float
    coverage95: float
    mean_se: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def truth_on(city: SyntheticCity, m: ExposureMap, pollutant: str) -> Array:
    """The true period mean at the map's cell centres."""
    if m.grid.epsg != CITY_EPSG:
        raise MappingError(f"the city is in EPSG:{CITY_EPSG}; build its map there")
    c = m.grid.centres()
    start, end = _epoch(m.spec.period)
    return city.true_mean(c[:, 0], c[:, 1], start, end).get(pollutant)


def validate(
    city: SyntheticCity,
    sensors: list[Sensor],
    period: Period,
    pollutant: str = "no2",
    *,
    methods: tuple[Method, ...] = ("idw", "ok", "uk"),
    cell_m: float = 100.0,
    calibrated: bool = True,
) -> list[ValidationRow]:
    """Build one map per method over the whole town and score it against the truth."""
    stats = city_site_stats(city, sensors, period, pollutant, calibrated=calibrated)
    drift = city_drift_grid(city, cell_m)
    rows = []
    truth: Array | None = None
    for method in methods:
        t0 = time.perf_counter()
        spec = MapSpec(
            pollutant=pollutant,
            period=period,
            method=method,
            cell_m=cell_m,
            drift_grid=drift if method == "uk" else None,
            epsg=CITY_EPSG,
            bbox_m=city.bbox,
            values="calibrated" if calibrated else "raw",
        )
        m = build_map(stats, spec)
        seconds = time.perf_counter() - t0
        if truth is None:
            truth = truth_on(city, m, pollutant)
        err = m.value - truth
        has_se = m.interp.kriging is not None
        cover = float(np.mean(np.abs(err) <= 1.959964 * m.se)) if has_se else math.nan
        cv = m.interp.cv
        rows.append(
            ValidationRow(
                method=method,
                rmse_truth=float(np.sqrt(np.mean(err**2))),
                bias_truth=float(np.mean(err)),
                loocv_rmse=cv.rmse,
                loocv_bias=cv.bias,
                rmsse=cv.rmsse,
                coverage95=cover,
                mean_se=float(np.mean(m.se)) if has_se else math.nan,
                seconds=seconds,
            )
        )
    return rows


def _write(path: Path, header: list[str], rows: Any) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_city(
    city: SyntheticCity,
    out_dir: Path,
    period: Period,
    pollutant: str = "no2",
    *,
    n_sensors: int = 40,
    cell_m: float = 100.0,
) -> dict[str, Path]:
    """Write truth.csv (true period mean per cell, all pollutants), sensors.csv, readings.csv
    (hourly raw readings), points.csv (calibrated period means: x,y,value,sigma,drift),
    predict.csv (x,y,drift per cell) and drift.csv (the covariate grid)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sensors = city.place_sensors(n_sensors)
    start, end = _epoch(period)
    xmin, ymin, xmax, ymax = city.bbox
    xs = np.arange(xmin + cell_m / 2, xmax, cell_m)
    ys = np.arange(ymin + cell_m / 2, ymax, cell_m)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    truth = city.true_mean(gx, gy, start, end)
    drift = city_drift_grid(city, cell_m)
    files = {
        k: out_dir / f"{k}.csv"
        for k in ("truth", "sensors", "readings", "points", "predict", "drift")
    }
    _write(
        files["truth"],
        ["x", "y", "pm25", "pm10", "no2"],
        zip(gx, gy, *(np.round(truth.get(p), 4) for p in ("pm25", "pm10", "no2")), strict=True),
    )
    lon, lat = to_wgs84([s.x_m for s in sensors], [s.y_m for s in sensors], CITY_EPSG)
    _write(
        files["sensors"],
        ["sensor_id", "x", "y", "lon", "lat", "kind", "site_type"],
        (
            (
                s.sensor_id,
                round(s.x_m, 1),
                round(s.y_m, 1),
                round(float(lo), 6),
                round(float(la), 6),
                s.kind,
                s.site_type,
            )
            for s, lo, la in zip(sensors, lon, lat, strict=True)
        ),
    )
    t = hours(start, end) + 1800.0
    obs = city.observe(sensors, t)
    stamps = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v + 1800)) for v in t]

    def readings() -> Any:
        for i, s in enumerate(sensors):
            for j, ts in enumerate(stamps):
                vals = (obs.pm25[i, j], obs.pm10[i, j], obs.no2[i, j], obs.rh_pct[i, j])
                yield (
                    s.sensor_id,
                    ts,
                    *("" if not np.isfinite(v) else round(float(v), 3) for v in vals),
                )

    _write(files["readings"], ["sensor_id", "ts", "pm25", "pm10", "no2", "rh_pct"], readings())
    stats = city_site_stats(city, sensors, period, pollutant)
    xy = np.array([[s.x_m, s.y_m] for s in sensors])
    d = drift.sample(xy)
    _write(
        files["points"],
        ["x", "y", "value", "sigma", "drift", "sensor_id"],
        (
            (
                round(s.x_m, 1),
                round(s.y_m, 1),
                round(st.value, 4),
                round(st.sigma, 4),
                round(float(di), 5),
                s.sensor_id,
            )
            for s, st, di in zip(sensors, stats, d, strict=True)
            if st.ok
        ),
    )
    gd = drift.sample(np.column_stack([gx, gy]))
    _write(files["predict"], ["x", "y", "drift"], zip(gx, gy, np.round(gd, 5), strict=True))
    dx, dy = np.meshgrid(drift.xs_m, drift.ys_m)
    _write(
        files["drift"],
        ["x", "y", "drift"],
        zip(dx.ravel(), dy.ravel(), np.round(drift.values.ravel(), 5), strict=True),
    )
    return files


class CitySource:
    """A live reading of one city sensor, for ``luftnett demo``: ``source(t)`` gives
    (PM2.5, PM10) in µg/m³ as that box reads them at time ``t`` (epoch s; None = now)."""

    def __init__(self, city: SyntheticCity, sensor: Sensor) -> None:
        self.city = city
        self.sensor = sensor

    def __call__(self, t: float | None = None) -> tuple[float, float]:
        now = time.time() if t is None else t
        obs = self.city.observe([self.sensor], [now], installed=now - 30 * 86400)
        pm25, pm10 = float(obs.pm25[0, 0]), float(obs.pm10[0, 0])
        if not math.isfinite(pm25):  # an outage: the demo's serial sensor keeps reading
            truth = self.city.true_field(self.sensor.x_m, self.sensor.y_m, now)
            pm25, pm10 = float(truth.pm25), float(truth.pm10)
        return pm25, pm10

    def no2(self, t: float | None = None) -> tuple[float, float, float]:
        """(NO2 ppb, temperature °C, RH %) as the box's NO2 module reads them at ``t``: the
        town's NO2 through this box's NO2 errors (gain, offset, drift, noise), the town's RH,
        and an air temperature for illustration only (the town has no temperature field: a
        seasonal and a daily cycle, 6 °C on average, coldest at dawn in January)."""
        now = time.time() if t is None else t
        obs = self.city.observe([self.sensor], [now], installed=now - 30 * 86400)
        ppb, rh = float(obs.no2[0, 0]), float(obs.rh_pct[0, 0])
        if not math.isfinite(ppb):  # an outage: the demo's serial module keeps reading
            ppb = float(self.city.true_field(self.sensor.x_m, self.sensor.y_m, now).no2)
            rh = float(self.city.weather(now).rh_pct)
        local = now + 3600.0  # CET
        doy, hour = (local % (365.2425 * 86400)) / 86400.0, (local % 86400) / 3600.0
        temp = 6.0 - 9.0 * math.cos((doy - 15) / 365.2425 * 2 * math.pi)
        temp -= 3.5 * math.cos((hour - 3) / 24 * 2 * math.pi)
        return ppb, temp, rh
