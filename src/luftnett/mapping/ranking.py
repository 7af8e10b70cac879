"""Rank areas and receptors by exposure, with uncertainty intervals and guideline verdicts.

A :class:`Surface` answers two questions: the value and standard error at points, and the
mean and standard error over a set of points (a polygon discretised by the map's cell
centres inside it, equally weighted; a polygon smaller than a cell takes the cell nearest
to its vertices' mean). Two surfaces:

- :class:`FittedSurface`, from a fitted interpolator (``luftnett map build``). Kriging gives
  point standard errors and, for areas, the **block-kriging** standard error of the area
  mean (errors of neighbouring cells are correlated, so this is what the data support). IDW
  has no error model: its interval uses the LOOCV RMSE as the standard error, at points and,
  conservatively, for areas (it does not shrink with area).
- :class:`GridSurface`, from a saved grid (``luftnett map rank``): a point takes its cell's
  value and ``se``; an area's ``se`` is the mean of its cells' ``se``. That is an upper
  bound (exact if the cells' errors were perfectly correlated); the kriging system is not
  saved, so the block variance cannot be computed there.

Intervals are ``value ± 1.96 se`` (95 %, normal errors). For each guideline the probability
that the true value is above it is ``P = 1 - Phi((g - value) / se)``, read as: ``above``
(P >= 0.95), ``probably above`` (0.5 <= P < 0.95), ``possibly above`` (0.05 <= P < 0.5),
``below`` (P < 0.05).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from luftnett.mapping.crs import to_metric
from luftnett.mapping.features import Area, Receptor
from luftnett.mapping.grid import RegularGrid
from luftnett.mapping.guidelines import Guideline
from luftnett.mapping.interpolate import Interpolator

__all__ = [
    "Z95",
    "FittedSurface",
    "GridSurface",
    "Ranked",
    "Surface",
    "rank_areas",
    "rank_receptors",
    "verdict",
]

Array = NDArray[np.float64]
Z95 = 1.959964


class Surface(Protocol):
    @property
    def interval_method(self) -> str: ...

    def at_points(self, xy_m: Array) -> tuple[Array, Array]: ...

    def block(self, xy_m: Array) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class FittedSurface:
    """A fitted interpolator (``se`` of IDW = its LOOCV RMSE)."""

    interp: Interpolator

    @property
    def interval_method(self) -> str:
        if self.interp.kriging is not None:
            return "kriging se; areas by block kriging over the cells inside"
        return "IDW has no error model: se = LOOCV RMSE, for points and areas"

    def _drift(self, xy_m: Array) -> Array | None:
        if self.interp.drift_source == "grid":
            assert self.interp.drift_grid is not None
            return self.interp.drift_grid.sample(xy_m)
        return None

    def at_points(self, xy_m: Array) -> tuple[Array, Array]:
        p = self.interp.predict(xy_m)
        se = p.se if self.interp.kriging is not None else np.full(len(xy_m), self.interp.cv.rmse)
        return p.value, se

    def block(self, xy_m: Array) -> tuple[float, float]:
        if self.interp.kriging is not None:
            return self.interp.kriging.predict_mean(xy_m, self._drift(xy_m))
        v = self.interp.predict(xy_m).value
        return float(np.nanmean(v)), float(self.interp.cv.rmse)


@dataclass(frozen=True, slots=True)
class GridSurface:
    """Values and ``se`` on a saved grid (cell lookup; area se = mean cell se, an upper bound)."""

    grid: RegularGrid
    value: Array
    se: Array
    interval_method: str = "saved grid: point = its cell; area se = mean of cell se (upper bound)"

    def _cells(self, xy_m: Array) -> NDArray[np.intp]:
        g = self.grid
        col = np.floor((xy_m[:, 0] - g.x0_m) / g.cell_m).astype(int)
        row = np.floor((xy_m[:, 1] - g.y0_m) / g.cell_m).astype(int)
        ok = (col >= 0) & (col < g.nx) & (row >= 0) & (row < g.ny)
        return np.where(ok, row * g.nx + col, -1)

    def at_points(self, xy_m: Array) -> tuple[Array, Array]:
        i = self._cells(xy_m)
        v = np.where(i >= 0, self.value[np.maximum(i, 0)], np.nan)
        s = np.where(i >= 0, self.se[np.maximum(i, 0)], np.nan)
        return v, s

    def block(self, xy_m: Array) -> tuple[float, float]:
        v, s = self.at_points(xy_m)
        return float(np.nanmean(v)), float(np.nanmean(s))


@dataclass(frozen=True, slots=True)
class Ranked:
    """One ranked area or receptor: value, se, 95 % interval, verdict per guideline."""

    rank: int
    name: str
    kind: str
    value: float
    se: float
    lo: float
    hi: float
    n_cells: int | None
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return round(v, 4) if math.isfinite(v) else None

        out: dict[str, Any] = {
            "rank": self.rank,
            "name": self.name,
            "kind": self.kind,
            "value": num(self.value),
            "se": num(self.se),
            "ci95": [num(self.lo), num(self.hi)],
            "guidelines": self.verdicts,
        }
        if self.n_cells is not None:
            out["n_cells"] = self.n_cells
        return out


def verdict(value: float, se: float, g: Guideline) -> dict[str, Any]:
    """Probability that the true value is above ``g``, and the word for it."""
    if not (math.isfinite(value) and math.isfinite(se)):
        p = math.nan
    elif se <= 0:
        p = 1.0 if value > g.value else 0.0
    else:
        p = float(1.0 - ndtr((g.value - value) / se))
    if math.isnan(p):
        word = "unknown"
    elif p >= 0.95:
        word = "above"
    elif p >= 0.5:
        word = "probably above"
    elif p >= 0.05:
        word = "possibly above"
    else:
        word = "below"
    return {
        "regime": g.regime,
        "guideline": g.value,
        "p_above": None if math.isnan(p) else round(p, 4),
        "verdict": word,
    }


def _ranked(
    rows: list[tuple[str, str, float, float, int | None]], gl: list[Guideline]
) -> list[Ranked]:
    rows = sorted(rows, key=lambda r: (-r[2] if math.isfinite(r[2]) else math.inf, r[0]))
    return [
        Ranked(
            rank=i + 1,
            name=name,
            kind=kind,
            value=v,
            se=s,
            lo=v - Z95 * s,
            hi=v + Z95 * s,
            n_cells=n,
            verdicts=[verdict(v, s, g) for g in gl],
        )
        for i, (name, kind, v, s, n) in enumerate(rows)
    ]


def rank_areas(
    surface: Surface, grid: RegularGrid, areas: list[Area], guidelines: list[Guideline]
) -> tuple[list[Ranked], list[str]]:
    """Areas by mean exposure, highest first, and the names of areas outside the map."""
    centres = grid.centres()
    rows: list[tuple[str, str, float, float, int | None]] = []
    skipped = []
    for a in areas:
        cells = centres[a.contains(centres, grid.epsg)]
        if cells.shape[0] == 0:  # smaller than a cell: the cell nearest the vertices' mean
            ring = a.rings[0][0]
            x, y = to_metric(ring[:, 0].mean(), ring[:, 1].mean(), grid.epsg)
            on = (grid.x0_m <= x < grid.x0_m + grid.nx * grid.cell_m) and (
                grid.y0_m <= y < grid.y0_m + grid.ny * grid.cell_m
            )
            if not on:
                skipped.append(a.name)
                continue
            cells = centres[[int(np.argmin(np.hypot(centres[:, 0] - x, centres[:, 1] - y)))]]
        v, s = surface.block(cells)
        rows.append((a.name, a.kind, v, s, int(cells.shape[0])))
    return _ranked(rows, guidelines), skipped


def rank_receptors(
    surface: Surface, grid: RegularGrid, receptors: list[Receptor], guidelines: list[Guideline]
) -> tuple[list[Ranked], list[str]]:
    """Receptors by exposure at their location, highest first, and those outside the map."""
    if not receptors:
        return [], []
    x, y = to_metric([r.lon for r in receptors], [r.lat for r in receptors], grid.epsg)
    on = (
        (x >= grid.x0_m)
        & (x < grid.x0_m + grid.nx * grid.cell_m)
        & (y >= grid.y0_m)
        & (y < grid.y0_m + grid.ny * grid.cell_m)
    )
    xy = np.column_stack([x, y])[on]
    v, s = surface.at_points(xy) if xy.shape[0] else (np.empty(0), np.empty(0))
    kept = [r for r, o in zip(receptors, on, strict=True) if o]
    rows: list[tuple[str, str, float, float, int | None]] = [
        (r.name, r.kind, float(vi), float(si), None) for r, vi, si in zip(kept, v, s, strict=True)
    ]
    skipped = [r.name for r, o in zip(receptors, on, strict=True) if not o]
    return _ranked(rows, guidelines), skipped
