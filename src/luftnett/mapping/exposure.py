"""Exposure maps from per-site values: interpolate, cross-validate, describe.

:func:`build_map` takes :class:`~luftnett.mapping.sitestats.SiteStat` values (from the
database via :mod:`luftnett.mapping.queries`, or from the synthetic city), projects the
sites to a metric CRS (ETRS89 / UTM, the zone of their mean longitude unless given), fits
IDW, ordinary or universal kriging with each site's ``sigma`` as its measurement error, and
predicts value and standard error on a regular grid covering the sites plus a margin. The
result carries everything published with a map: the LOOCV summary, the variogram, which
sites were used and which were not, and the reference values it is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from luftnett.mapping.crs import metric_epsg_for, to_metric
from luftnett.mapping.drift import DriftGrid
from luftnett.mapping.errors import MappingError
from luftnett.mapping.grid import RegularGrid
from luftnett.mapping.guidelines import POLLUTANT_INFO, Guideline, guidelines_for
from luftnett.mapping.interpolate import Interpolator, Method, fit_interpolator
from luftnett.mapping.period import Period
from luftnett.mapping.points import PointTable
from luftnett.mapping.sitestats import RAW_UNCERTAINTY, SiteStat, Statistic
from luftnett.mapping.variogram import ModelKind

__all__ = ["ExposureMap", "MapSpec", "build_map", "count_guidelines", "exceedance_threshold"]

Array = NDArray[np.float64]
INDICATIVE = "indicative – microsensor"


@dataclass(frozen=True, slots=True)
class MapSpec:
    """What to map and how. ``bbox_m`` (xmin, ymin, xmax, ymax) in ``epsg`` overrides the
    sites' extent plus ``margin_m``."""

    pollutant: str
    period: Period
    method: Method = "ok"
    statistic: Statistic = "mean"
    cell_m: float = 100.0
    margin_m: float = 500.0
    model: ModelKind | Literal["auto"] = "exponential"
    drift_grid: DriftGrid | None = None
    epsg: int | None = None
    bbox_m: tuple[float, float, float, float] | None = None
    values: str = "raw"


def exceedance_threshold(pollutant: str) -> Guideline:
    """The daily value whose exceedances are counted: the Norwegian limit value where there is
    one (PM10), else the air-quality criterion (PM2.5, NO2)."""
    found = guidelines_for(pollutant, "daily")
    if not found:
        raise MappingError(f"no daily reference value for {pollutant}; cannot count exceedances")
    return found[0]


def count_guidelines(pollutant: str) -> list[Guideline]:
    """For exceedance-count maps: the allowed number of days per year, where one is set."""
    g = exceedance_threshold(pollutant)
    if g.allowed_per_year is None:
        return []
    return [
        Guideline(
            regime=g.regime,
            name_no=f"{g.name_no}: høyst {g.allowed_per_year} døgn over {g.value:g}",
            name_en=f"{g.name_en}: at most {g.allowed_per_year} days above {g.value:g}",
            kind="allowed exceedances",
            averaging_period="1y",
            value=float(g.allowed_per_year),
            value_ugm3=g.value_ugm3,
            allowed_per_year=g.allowed_per_year,
            source_url=g.source_url,
        )
    ]


@dataclass(frozen=True, slots=True)
class ExposureMap:
    """A built map: ``value`` and ``se`` per cell of ``grid`` (row-major), and its provenance."""

    spec: MapSpec
    stats: list[SiteStat]
    used: list[SiteStat]
    xy_m: Array
    grid: RegularGrid
    value: Array
    se: Array
    interp: Interpolator
    guidelines: list[Guideline]
    threshold: Guideline | None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def unit(self) -> str:
        if self.spec.statistic == "exceedances":
            return "days"
        return POLLUTANT_INFO[self.spec.pollutant].unit

    def loocv(self) -> dict[str, Any]:
        cv = self.interp.cv

        def num(v: float) -> float | None:
            return round(v, 6) if math.isfinite(v) else None

        return {
            "n": cv.n,
            "rmse": num(cv.rmse),
            "bias": num(cv.bias),
            "mse_std": num(cv.mse_std),
            "rmsse": num(cv.rmsse),
        }

    def metadata(self) -> dict[str, Any]:
        """Everything published with the map (GeoJSON ``properties`` and layer.json)."""
        s, g = self.spec, self.grid
        k = self.interp.kriging
        a, b = RAW_UNCERTAINTY[s.pollutant]
        unit = POLLUTANT_INFO[s.pollutant].unit
        return {
            "pollutant": s.pollutant,
            "unit": self.unit,
            "statistic": s.statistic,
            "period": s.period.as_dict(),
            "method": s.method,
            "model": self.interp.summary,
            "drift": self.interp.drift_source,
            "variogram": None
            if k is None
            else {
                "kind": k.variogram.kind,
                "nugget": k.variogram.nugget,
                "psill": k.variogram.psill,
                "range_m": k.variogram.range_m,
            },
            "loocv": self.loocv(),
            "se": "kriging standard error of the true value"
            if k is not None
            else "none (IDW has no error model; see loocv.rmse)",
            "values": s.values,
            "site_uncertainty": (
                "sigma² = sem² + u_cal²; sem from hourly means (AR(1) effective n); u_cal: "
                + (
                    "calibration uncertainty"
                    if s.values == "calibrated"
                    else f"raw default sqrt({a:g}² + ({b:g} x value)²) {unit}"
                )
            ),
            "threshold": None if self.threshold is None else self.threshold.as_dict(),
            "guidelines": [x.as_dict() for x in self.guidelines],
            "sites_used": len(self.used),
            "sites_skipped": [
                {"site_id": st.site_id, "reason": st.reason} for st in self.stats if not st.ok
            ],
            "grid": {
                "epsg": g.epsg,
                "x0_m": g.x0_m,
                "y0_m": g.y0_m,
                "cell_m": g.cell_m,
                "nx": g.nx,
                "ny": g.ny,
            },
            "label": INDICATIVE,
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


def build_map(stats: list[SiteStat], spec: MapSpec) -> ExposureMap:
    """Interpolate the usable sites of ``stats`` on a grid (see the module docstring)."""
    if spec.pollutant not in POLLUTANT_INFO:
        raise MappingError(f"unknown pollutant {spec.pollutant!r}; use one of pm25, pm10, no2")
    if spec.statistic == "exceedances" and spec.period.kind != "annual":
        raise MappingError("exceedance counts need --period annual (days above a daily value)")
    used = [s for s in stats if s.ok and math.isfinite(s.value)]
    if len(used) < 3:
        why = "; ".join(f"{s.site_id}: {s.reason}" for s in stats if not s.ok)[:300]
        raise MappingError(
            f"{len(used)} site(s) with enough {spec.pollutant} data for {spec.period.label} "
            f"({spec.period.kind}); a map needs at least 3"
            + (f" ({why})" if why else "; no readings in that period?")
        )
    lon = np.array([s.lon for s in used])
    lat = np.array([s.lat for s in used])
    epsg = spec.epsg or metric_epsg_for(float(lon.mean()))
    x, y = to_metric(lon, lat, epsg)
    xy = np.column_stack([x, y])
    points = PointTable(
        path=Path("sites"),
        xy_m=xy,
        value=np.array([s.value for s in used]),
        sigma=np.array([s.sigma for s in used]),
        drift=None,
    )
    if spec.drift_grid is not None and spec.method != "uk":
        raise MappingError(f"a drift grid applies to --method uk only (got {spec.method})")
    try:
        interp = fit_interpolator(points, spec.method, drift_grid=spec.drift_grid, model=spec.model)
    except MappingError as exc:
        if "no spatial variance" not in str(exc):
            raise
        sigma = float(np.median(points.sigma)) if points.sigma is not None else 0.0
        raise MappingError(
            f"the sites' {spec.pollutant} values differ less than their uncertainty (median "
            f"sigma {sigma:.3g} {POLLUTANT_INFO[spec.pollutant].unit}, {spec.values} values); "
            "kriging has no spatial signal to fit: use calibrated values, a longer period, "
            "or --method idw"
        ) from exc
    if spec.bbox_m is not None:
        grid = RegularGrid.from_bbox(*spec.bbox_m, cell_m=spec.cell_m, epsg=epsg)
    else:
        m = spec.margin_m
        grid = RegularGrid.from_bbox(
            float(x.min()) - m,
            float(y.min()) - m,
            float(x.max()) + m,
            float(y.max()) + m,
            cell_m=spec.cell_m,
            epsg=epsg,
        )
    pred = interp.predict(grid.centres())
    if spec.statistic == "exceedances":
        threshold: Guideline | None = exceedance_threshold(spec.pollutant)
        guidelines = count_guidelines(spec.pollutant)
    else:
        threshold = None
        guidelines = guidelines_for(spec.pollutant, spec.period.kind)
    return ExposureMap(
        spec=spec,
        stats=stats,
        used=used,
        xy_m=xy,
        grid=grid,
        value=pred.value,
        se=pred.se,
        interp=interp,
        guidelines=guidelines,
        threshold=threshold,
    )
