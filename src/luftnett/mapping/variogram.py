"""Empirical semivariogram and a weighted least-squares fit of a bounded model.

For a field observed as ``z_i = s(x_i) + e_i`` with measurement-error variance ``sigma_i²``,
the semivariance of a pair is ``(z_i - z_j)² / 2``; its expectation is
``gamma_s(h) + (sigma_i² + sigma_j²) / 2``. :func:`empirical_variogram` subtracts that
known part pair by pair, so the fitted nugget is micro-scale variance of ``s`` only.

Models (``h`` in metres, ``a`` the *practical* range where 95 % of the sill is reached for
the exponential and Gaussian models, the range for the spherical one)::

    gamma(h) = nugget + psill * g(h / a)   for h > 0,   gamma(0) = 0
    spherical    g(r) = 1.5 r - 0.5 r³ (r < 1), 1 (r >= 1)
    exponential  g(r) = 1 - exp(-3 r)
    gaussian     g(r) = 1 - exp(-3 r²)

and the covariance ``C(h) = psill * (1 - g(h / a))`` for ``h > 0``, ``C(0) = nugget + psill``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares
from scipy.spatial.distance import pdist

from luftnett.mapping.errors import MappingError

__all__ = [
    "MODEL_KINDS",
    "EmpiricalVariogram",
    "ModelKind",
    "VariogramModel",
    "Weighting",
    "empirical_variogram",
    "fit_variogram",
]

ModelKind = Literal["spherical", "exponential", "gaussian"]
Weighting = Literal["npairs_h2", "npairs", "cressie"]
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)

Array = NDArray[np.float64]
log = logging.getLogger(__name__)
# fit bounds, relative to the largest binned semivariance and to the largest lag
_PSILL_MIN = 1e-6
_RANGE_MAX = 4.0


def _shape(kind: ModelKind, r: Array) -> Array:
    """The unit-sill structure ``g(r)`` of a model at reduced distance ``r = h / a``."""
    if kind == "spherical":
        rc = np.minimum(r, 1.0)
        return np.asarray(1.5 * rc - 0.5 * rc**3, dtype=np.float64)
    if kind == "exponential":
        return np.asarray(-np.expm1(-3.0 * r), dtype=np.float64)
    if kind == "gaussian":
        return np.asarray(-np.expm1(-3.0 * r * r), dtype=np.float64)
    raise MappingError(f"unknown variogram model {kind!r}; use one of {', '.join(MODEL_KINDS)}")


@dataclass(frozen=True, slots=True)
class VariogramModel:
    """A fitted semivariogram: ``nugget`` and ``psill`` in value units², ``range_m`` in metres."""

    kind: ModelKind
    nugget: float
    psill: float
    range_m: float

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise MappingError(
                f"unknown variogram model {self.kind!r}; use one of {', '.join(MODEL_KINDS)}"
            )
        if not (self.nugget >= 0 and self.psill >= 0 and self.nugget + self.psill > 0):
            raise MappingError(
                f"variogram needs nugget >= 0, psill >= 0 and a positive sill "
                f"(got nugget={self.nugget}, psill={self.psill})"
            )
        if not self.range_m > 0:
            raise MappingError(f"variogram range must be > 0 m (got {self.range_m})")

    @property
    def sill(self) -> float:
        """``nugget + psill``: the variance of the field at one location."""
        return self.nugget + self.psill

    def semivariance(self, h_m: ArrayLike) -> Array:
        """``gamma(h)``; zero at ``h == 0`` exactly."""
        h = np.asarray(h_m, dtype=np.float64)
        g = self.nugget + self.psill * _shape(self.kind, h / self.range_m)
        return np.where(h > 0, g, 0.0)

    def covariance(self, h_m: ArrayLike) -> Array:
        """``C(h) = sill - gamma(h)``; ``nugget + psill`` at ``h == 0`` exactly."""
        h = np.asarray(h_m, dtype=np.float64)
        # in place, one temporary: this runs on (locations x observations) matrices
        c = np.multiply(h, 1.0 / self.range_m, out=np.empty_like(h))
        if self.kind == "exponential":
            c *= -3.0
            np.exp(c, out=c)
        elif self.kind == "gaussian":
            np.square(c, out=c)
            c *= -3.0
            np.exp(c, out=c)
        else:  # spherical: 1 - 1.5 r + 0.5 r³ inside the range, 0 beyond
            np.minimum(c, 1.0, out=c)
            c[...] = 1.0 - c * (1.5 - 0.5 * c * c)
        c *= self.psill
        c[h <= 0] = self.sill
        return c


@dataclass(frozen=True, slots=True)
class EmpiricalVariogram:
    """Binned semivariances: mean pair distance ``lag_m``, ``gamma`` and ``npairs`` per bin."""

    lag_m: Array
    gamma: Array
    npairs: NDArray[np.int64]
    max_lag_m: float


def empirical_variogram(
    xy_m: ArrayLike,
    values: ArrayLike,
    sigma: ArrayLike | None = None,
    *,
    n_lags: int = 15,
    max_lag_m: float | None = None,
) -> EmpiricalVariogram:
    """Matheron's estimator in ``n_lags`` equal bins up to ``max_lag_m``.

    ``max_lag_m`` defaults to half the largest pair distance. With ``sigma`` (the standard
    deviation of each observation's measurement error, value units), each pair's
    ``(sigma_i² + sigma_j²) / 2`` is subtracted, so the variogram is that of the true field.
    Empty bins are dropped.
    """
    xy = np.asarray(xy_m, dtype=np.float64)
    z = np.asarray(values, dtype=np.float64)
    n = z.size
    if n < 3:
        raise MappingError(f"a variogram needs at least 3 points (got {n})")
    if n_lags < 3:
        raise MappingError(f"n_lags must be >= 3 (got {n_lags})")
    d = pdist(xy)
    i, j = np.triu_indices(n, k=1)  # the same pair order as pdist
    half_sq = 0.5 * (z[i] - z[j]) ** 2
    if sigma is not None:
        s2 = np.asarray(sigma, dtype=np.float64) ** 2
        half_sq = half_sq - 0.5 * (s2[i] + s2[j])
    top = float(max_lag_m) if max_lag_m is not None else 0.5 * float(d.max())
    if not top > 0:
        raise MappingError("all points are at one location; a variogram needs distinct points")
    keep = (d > 0) & (d <= top)
    edges = np.linspace(0.0, top, n_lags + 1)
    b = np.clip(np.searchsorted(edges, d[keep], side="left") - 1, 0, n_lags - 1)
    npairs = np.bincount(b, minlength=n_lags)
    sum_g = np.bincount(b, weights=half_sq[keep], minlength=n_lags)
    sum_d = np.bincount(b, weights=d[keep], minlength=n_lags)
    ok = npairs > 0
    return EmpiricalVariogram(
        lag_m=sum_d[ok] / npairs[ok],
        gamma=sum_g[ok] / npairs[ok],
        npairs=npairs[ok].astype(np.int64),
        max_lag_m=top,
    )


def _fit_one(
    emp: EmpiricalVariogram, kind: ModelKind, weighting: Weighting, nugget: float | None
) -> tuple[VariogramModel, float]:
    h_scale = emp.max_lag_m
    g_scale = float(max(np.max(emp.gamma), 1e-300))
    h = emp.lag_m / h_scale
    g = emp.gamma / g_scale
    n = emp.npairs.astype(np.float64)
    fixed = None if nugget is None else nugget / g_scale

    def model(theta: Array) -> Array:
        c0 = theta[0] if fixed is None else fixed
        return np.asarray(c0 + theta[-2] * _shape(kind, h / theta[-1]), dtype=np.float64)

    def residuals(theta: Array) -> Array:
        m = model(theta)
        if weighting == "cressie":
            return np.asarray(np.sqrt(n) * (g / np.maximum(m, 1e-9) - 1.0), dtype=np.float64)
        w = n / np.maximum(h, 1e-9) ** 2 if weighting == "npairs_h2" else n
        return np.asarray(np.sqrt(w / w.sum()) * (g - m), dtype=np.float64)

    # parameters: [nugget,] psill, range, all scaled to O(1)
    lo = [_PSILL_MIN, 1e-3]
    hi = [3.0, _RANGE_MAX]
    if fixed is None:
        lo, hi = [0.0, *lo], [3.0, *hi]
    best: tuple[float, Array] | None = None
    for r0 in (0.15, 0.4, 1.0):
        c00 = float(np.clip(g[0] * 0.5, 0.0, 0.9))
        start = [max(1.0 - c00, 0.05), r0] if fixed is None else [max(1.0 - fixed, 0.05), r0]
        x0 = np.array([c00, *start] if fixed is None else start)
        sol = least_squares(residuals, x0, bounds=(lo, hi), method="trf")
        cost = float(sol.cost)
        if best is None or cost < best[0]:
            best = (cost, np.asarray(sol.x, dtype=np.float64))
    assert best is not None
    theta = best[1]
    c0 = float(theta[0]) * g_scale if fixed is None else float(nugget or 0.0)
    fitted = VariogramModel(
        kind=kind,
        nugget=c0,
        psill=float(theta[-2]) * g_scale,
        range_m=float(theta[-1]) * h_scale,
    )
    return fitted, best[0]


def fit_variogram(
    emp: EmpiricalVariogram,
    kind: ModelKind | Literal["auto"] = "exponential",
    *,
    weighting: Weighting = "npairs_h2",
    nugget: float | None = None,
) -> VariogramModel:
    """Fit ``kind`` to ``emp`` by weighted least squares (``scipy.optimize.least_squares``).

    ``weighting``: ``"npairs_h2"`` weights bin j by ``N_j / h_j²`` (gstat's default),
    ``"npairs"`` by ``N_j``, ``"cressie"`` by ``N_j / gamma(h_j)²`` (Cressie 1985).
    ``nugget`` fixes the nugget (value units²) instead of fitting it. ``kind="auto"`` fits all
    three models and keeps the one with the smallest weighted residual sum of squares.
    """
    if emp.gamma.size < 3:
        raise MappingError(
            f"only {emp.gamma.size} variogram bins hold pairs; give more points or fewer lags"
        )
    if not np.max(emp.gamma) > 0:
        raise MappingError(
            "the values show no spatial variance beyond their measurement error; "
            "nothing to krige (check the values and sigma)"
        )
    if nugget is not None and nugget < 0:
        raise MappingError(f"a fixed nugget must be >= 0 (got {nugget})")
    kinds = MODEL_KINDS if kind == "auto" else (kind,)
    fits = [_fit_one(emp, k, weighting, nugget) for k in kinds]
    best = min(fits, key=lambda f: f[1])[0]
    top = float(np.max(emp.gamma))
    if best.range_m >= 0.99 * _RANGE_MAX * emp.max_lag_m:
        log.warning(
            "variogram range at its upper limit: no sill within the lags; the map's se is rough",
            extra={"range_m": best.range_m, "max_lag_m": emp.max_lag_m},
        )
    if best.psill <= 1.01 * _PSILL_MIN * top:
        log.warning(
            "variogram has almost no spatial part beyond sigma and nugget; se may be too small",
            extra={"psill": best.psill, "nugget": best.nugget},
        )
    return best
