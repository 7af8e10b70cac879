"""One entry point over the methods, for the CLI and the map builders.

:func:`fit_interpolator` takes observations from a :class:`~luftnett.mapping.points.PointTable`
and a method (``idw``, ``ok`` or ``uk``), fits what the method needs, runs LOOCV, and returns an
:class:`Interpolator` that predicts value and standard error anywhere. For ``uk`` the drift is,
in this order: a :class:`~luftnett.mapping.drift.DriftGrid` sampled at every location; the
``drift`` values given with the points (and then with every prediction location); otherwise
a linear trend in ``x, y``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luftnett.mapping.drift import DriftGrid
from luftnett.mapping.errors import MappingError
from luftnett.mapping.idw import Idw
from luftnett.mapping.kriging import Kriging, Prediction, duplicate_pairs
from luftnett.mapping.points import PointTable
from luftnett.mapping.validation import CrossValidation
from luftnett.mapping.variogram import ModelKind

__all__ = ["METHODS", "Interpolator", "Method", "fit_interpolator"]

Method = Literal["idw", "ok", "uk"]
METHODS: tuple[Method, ...] = get_args(Method)
DriftSource = Literal["none", "grid", "column", "linear"]


@dataclass(frozen=True, slots=True)
class Interpolator:
    """A fitted method: ``predict`` anywhere, ``cv`` its LOOCV, ``summary`` one line."""

    method: Method
    drift_source: DriftSource
    cv: CrossValidation
    summary: str
    idw: Idw | None = None
    kriging: Kriging | None = None
    drift_grid: DriftGrid | None = None

    def predict(self, xy_m: ArrayLike, drift: ArrayLike | None = None) -> Prediction:
        """Value and se at ``xy_m`` (m, 2); IDW's se is NaN (it has no error model).

        ``drift`` gives the covariate at each location when the drift came from a column.
        """
        at = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        if self.idw is not None:
            return Prediction(value=self.idw.predict(at), se=np.full(at.shape[0], np.nan))
        assert self.kriging is not None
        cov: NDArray[np.float64] | None = None
        if self.drift_source == "grid":
            assert self.drift_grid is not None
            cov = self.drift_grid.sample(at)
        elif self.drift_source == "column":
            if drift is None:
                raise MappingError("the points carry a drift column; give drift at every location")
            cov = np.asarray(drift, dtype=np.float64)
        return self.kriging.predict(at, cov)


def fit_interpolator(
    points: PointTable,
    method: Method,
    *,
    drift_grid: DriftGrid | None = None,
    model: ModelKind | Literal["auto"] = "exponential",
    nugget: float | None = None,
    power: float = 2.0,
    k: int | None = None,
    radius_m: float | None = None,
) -> Interpolator:
    """Fit ``method`` to ``points`` (at least 3) and cross-validate it."""
    if method not in METHODS:
        raise MappingError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if points.value is None:
        raise MappingError(f"{points.path}: no value column")
    if points.n < 3:
        raise MappingError(f"{points.path}: at least 3 points are needed (got {points.n})")
    if drift_grid is not None and method != "uk":
        raise MappingError(f"a drift grid applies to --method uk only (got {method})")
    if method == "idw":
        idw = Idw(points.xy_m, points.value, power=power, k=k, radius_m=radius_m)
        cv = idw.loocv()
        limits = f" k={k}" if k else ""
        limits += f" radius_m={radius_m:g}" if radius_m else ""
        return Interpolator("idw", "none", cv, f"idw power={power:g}{limits}", idw=idw)

    sigma = points.sigma if points.sigma is not None else np.zeros(points.n)
    dups = [(i, j) for i, j in duplicate_pairs(points.xy_m) if sigma[i] == 0 or sigma[j] == 0]
    if dups:
        i, j = dups[0]
        x, y = points.xy_m[i]
        raise MappingError(
            f"{points.path}: data rows {i + 1} and {j + 1} share the location ({x:g}, {y:g}); "
            "kriging needs distinct locations (average them, or give each a sigma > 0)"
        )
    source: DriftSource = "none"
    cov: NDArray[np.float64] | None = None
    if method == "uk":
        if drift_grid is not None:
            if points.drift is not None:
                raise MappingError(
                    f"{points.path} has a drift column and a drift grid was given; use one"
                )
            source, cov = "grid", drift_grid.sample(points.xy_m)
        elif points.drift is not None:
            source, cov = "column", points.drift
        else:
            source = "linear"
    krig = Kriging.fit(
        points.xy_m,
        points.value,
        sigma=points.sigma,
        covariates=cov,
        linear_trend=source == "linear",
        model=model,
        nugget=nugget,
    )
    v = krig.variogram
    drift_text = {
        "none": "",
        "grid": " drift=grid",
        "column": " drift=column",
        "linear": " drift=x,y",
    }
    summary = (
        f"{method}{drift_text[source]} variogram={v.kind} nugget={v.nugget:.4g} "
        f"psill={v.psill:.4g} range_m={v.range_m:.4g}"
    )
    return Interpolator(method, source, krig.loocv(), summary, kriging=krig, drift_grid=drift_grid)
