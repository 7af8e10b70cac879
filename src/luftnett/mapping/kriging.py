"""Ordinary and universal kriging (kriging with external drift), with measurement error.

Model: ``z_i = m(x_i) + s(x_i) + e_i``. ``s`` is a zero-mean field with covariance ``C(h)``
from a :class:`~luftnett.mapping.variogram.VariogramModel` (its nugget is micro-scale variance
of the true field), ``e_i`` the measurement error of observation ``i`` with known variance
``sigma_i²`` (e.g. a sensor's calibration uncertainty), independent of everything else, and
the drift ``m(x) = f(x)' beta`` with unknown ``beta``:

- ordinary kriging (OK): ``f = [1]``
- universal kriging with a linear trend: ``f = [1, x, y]``
- kriging with external drift (KED): ``f = [1, c_1(x), ..., c_p(x)]`` for covariates ``c``
  known at every observation and prediction location (e.g. sampled from a covariate grid).

The predictor ``zhat(x0) = lambda' z`` of the true value ``m(x0) + s(x0)`` solves::

    | K   F | | lambda |   | k0 |     K_ij = C(|x_i - x_j|) + delta_ij sigma_i²
    | F'  0 | |   mu   | = | f0 |     k0_i = C(|x_i - x0|),   f0 = f(x0)

with kriging variance ``C(0) - lambda' k0 - mu' f0``. With every ``sigma_i = 0`` the predictor
is exact at the observations (``se = 0`` there, even with a nugget); with ``sigma_i > 0`` it
smooths. Leave-one-out residuals come from one inverse of the system (Dubrule 1983):
``z_i - zhat_-i = (A^-1 [z; 0])_i / (A^-1)_ii`` with variance ``1 / (A^-1)_ii``, which is the
variance of ``z_i - zhat_-i`` and so includes ``sigma_i²``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import LinAlgError, LinAlgWarning, inv
from scipy.spatial.distance import cdist

from luftnett.mapping.errors import MappingError
from luftnett.mapping.validation import CrossValidation, summarise
from luftnett.mapping.variogram import (
    ModelKind,
    VariogramModel,
    Weighting,
    empirical_variogram,
    fit_variogram,
)

__all__ = ["Kriging", "Prediction", "duplicate_pairs"]

Array = NDArray[np.float64]
_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predictions and their standard errors (value units) at the requested locations."""

    value: Array
    se: Array


def duplicate_pairs(xy_m: ArrayLike) -> list[tuple[int, int]]:
    """Pairs ``(first, later)`` of row indices that share a location exactly."""
    xy = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
    _, first, inverse = np.unique(xy, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    return [(int(first[g]), i) for i, g in enumerate(inverse) if first[g] != i]


def _as_matrix(a: ArrayLike | None, n: int, what: str) -> Array:
    if a is None:
        return np.empty((n, 0))
    m = np.asarray(a, dtype=np.float64)
    m = m.reshape(n, -1) if m.ndim <= 1 else m
    if m.shape[0] != n:
        raise MappingError(f"{what}: {m.shape[0]} rows of covariates for {n} locations")
    if not np.all(np.isfinite(m)):
        raise MappingError(f"{what}: covariates must be finite numbers")
    return m


@dataclass(frozen=True, slots=True)
class Kriging:
    """A solved kriging system, ready to predict anywhere.

    ``xy_m`` (n, 2) metres, ``values`` (n,), ``sigma`` (n,) measurement-error standard
    deviations (value units; zeros if None), ``covariates`` (n, p) external-drift values at
    the observations or None, ``linear_trend`` adds ``x, y`` to the drift. Build one with
    :meth:`fit` (variogram fitted from the data) or directly with a known ``variogram``.
    """

    xy_m: Array
    values: Array
    variogram: VariogramModel
    sigma: Array | None = None
    covariates: Array | None = None
    linear_trend: bool = False
    _shift: Array = field(init=False, repr=False)
    _scale: Array = field(init=False, repr=False)
    _ainv: Array = field(init=False, repr=False)
    _weights: Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        xy = np.asarray(self.xy_m, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(self.values, dtype=np.float64).ravel()
        n = z.size
        if xy.shape[0] != n:
            raise MappingError(f"{xy.shape[0]} locations but {n} values; give one each")
        s = np.zeros(n) if self.sigma is None else np.asarray(self.sigma, dtype=np.float64)
        s = np.broadcast_to(s, (n,)).copy()
        if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(z)) and np.all(np.isfinite(s))):
            raise MappingError("locations, values and sigma must be finite numbers")
        if np.any(s < 0):
            raise MappingError("sigma must be >= 0 (a standard deviation)")
        cov = _as_matrix(self.covariates, n, "observations")
        set_ = object.__setattr__
        set_(self, "xy_m", xy)
        set_(self, "values", z)
        set_(self, "sigma", s)
        set_(self, "covariates", cov if cov.shape[1] else None)
        raw = np.hstack([xy, cov]) if self.linear_trend else cov
        shift = raw.mean(axis=0) if raw.shape[1] else np.empty(0)
        scale = raw.std(axis=0) if raw.shape[1] else np.empty(0)
        if self.linear_trend:
            scale[:2] = max(float(scale[0]), float(scale[1]), 1e-300)
        if np.any(scale == 0):
            raise MappingError("a drift covariate is constant over the points; drop it or use OK")
        set_(self, "_shift", shift)
        set_(self, "_scale", scale)
        f = self._drift(xy, cov)
        p = f.shape[1]
        if n < p + 2:
            raise MappingError(f"kriging with {p} drift terms needs at least {p + 2} points")
        if np.linalg.matrix_rank(f) < p:
            raise MappingError("the drift terms are collinear over the points; drop one")
        dups = [(i, j) for i, j in duplicate_pairs(xy) if s[i] == 0 or s[j] == 0]
        if dups:
            i, j = dups[0]
            raise MappingError(
                f"observations {i} and {j} share the location ({xy[i, 0]:g}, {xy[i, 1]:g}); "
                "kriging needs distinct locations (average them, or give each a sigma > 0)"
            )
        k = self.variogram.covariance(cdist(xy, xy))
        k[np.diag_indices(n)] += s**2
        a = np.zeros((n + p, n + p))
        a[:n, :n] = k
        a[:n, n:] = f
        a[n:, :n] = f.T
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", LinAlgWarning)
                ainv = np.asarray(inv(a, check_finite=False), dtype=np.float64)
        except (LinAlgError, LinAlgWarning) as exc:
            raise MappingError(
                f"the kriging system is singular ({exc}); check for duplicate or collinear "
                "points, or fit a nugget"
            ) from exc
        set_(self, "_ainv", ainv)
        set_(self, "_weights", ainv @ np.concatenate([z, np.zeros(p)]))

    def _drift(self, xy: Array, cov: Array) -> Array:
        raw = np.hstack([xy, cov]) if self.linear_trend else cov
        return np.hstack([np.ones((xy.shape[0], 1)), (raw - self._shift) / self._scale])

    @property
    def n_drift(self) -> int:
        """Number of drift terms ``p`` (1 for OK)."""
        return 1 + int(self._shift.size)

    @classmethod
    def fit(
        cls,
        xy_m: ArrayLike,
        values: ArrayLike,
        *,
        sigma: ArrayLike | None = None,
        covariates: ArrayLike | None = None,
        linear_trend: bool = False,
        model: ModelKind | Literal["auto"] = "exponential",
        weighting: Weighting = "npairs_h2",
        nugget: float | None = None,
        n_lags: int = 15,
        max_lag_m: float | None = None,
    ) -> Kriging:
        """Fit the variogram from the data, then solve the system.

        With a drift, the variogram is that of the ordinary-least-squares residuals from the
        drift. ``sigma`` is removed pair by pair from the empirical variogram, so the nugget is
        micro-scale variance. ``nugget`` fixes it instead (value units²).
        """
        xy = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(values, dtype=np.float64).ravel()
        n = z.size
        if n < 3:
            raise MappingError(f"kriging needs at least 3 points (got {n})")
        if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(z))):
            raise MappingError("locations and values must be finite numbers")
        cov = _as_matrix(covariates, n, "observations")
        resid = z
        if linear_trend or cov.shape[1]:
            raw = np.hstack([xy, cov]) if linear_trend else cov
            f = np.hstack([np.ones((n, 1)), (raw - raw.mean(axis=0)) / (raw.std(axis=0) + 1e-300)])
            beta, *_ = np.linalg.lstsq(f, z, rcond=None)
            resid = z - f @ beta
        emp = empirical_variogram(xy, resid, sigma, n_lags=n_lags, max_lag_m=max_lag_m)
        vgm = fit_variogram(emp, model, weighting=weighting, nugget=nugget)
        return cls(
            xy_m=xy,
            values=z,
            variogram=vgm,
            sigma=None if sigma is None else np.asarray(sigma, dtype=np.float64),
            covariates=None if not cov.shape[1] else cov,
            linear_trend=linear_trend,
        )

    def predict(self, xy_m: ArrayLike, covariates: ArrayLike | None = None) -> Prediction:
        """Predict the true field at ``xy_m`` (m, 2) metres.

        ``covariates`` (m, p) are the external-drift values there (required when the system
        was built with covariates). ``se`` is the kriging standard error of the true value.
        """
        at = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        m = at.shape[0]
        p_cov = 0 if self.covariates is None else self.covariates.shape[1]
        if p_cov and covariates is None:
            raise MappingError("this model has an external drift; give covariates to predict")
        cov = _as_matrix(covariates, m, "prediction locations") if p_cov else np.empty((m, 0))
        if cov.shape[1] != p_cov:
            raise MappingError(f"{cov.shape[1]} covariates at prediction locations, need {p_cov}")
        value = np.empty(m)
        var = np.empty(m)
        for s in range(0, m, _CHUNK):
            chunk = at[s : s + _CHUNK]
            rhs = np.hstack(
                [
                    self.variogram.covariance(cdist(chunk, self.xy_m)),
                    self._drift(chunk, cov[s : s + _CHUNK]),
                ]
            )
            value[s : s + _CHUNK] = rhs @ self._weights
            var[s : s + _CHUNK] = self.variogram.sill - np.einsum("ij,ij->i", rhs, rhs @ self._ainv)
        return Prediction(value=value, se=np.sqrt(np.clip(var, 0.0, None)))

    def predict_mean(
        self, xy_m: ArrayLike, covariates: ArrayLike | None = None
    ) -> tuple[float, float]:
        """Block kriging of the equally weighted mean of the true field over ``xy_m`` (m, 2)
        (e.g. the cell centres inside a district): the prediction and its standard error.

        The block is discretised by the given points: with ``rbar`` the mean of their
        right-hand sides ``[k0; f0]`` and ``Cbar`` the mean of ``C(|x_i - x_j|)`` over all
        pairs, ``value = rbar' [lambda; mu]`` and ``se² = Cbar - rbar' A^-1 rbar``. It is
        smaller than the mean of the points' ``se`` because their errors partly cancel.
        """
        at = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        m = at.shape[0]
        if m == 0:
            raise MappingError("a block needs at least one location")
        p_cov = 0 if self.covariates is None else self.covariates.shape[1]
        if p_cov and covariates is None:
            raise MappingError("this model has an external drift; give covariates to predict")
        cov = _as_matrix(covariates, m, "block locations") if p_cov else np.empty((m, 0))
        rbar = np.zeros(self._ainv.shape[0])
        cbar = 0.0
        for s in range(0, m, _CHUNK):
            chunk = at[s : s + _CHUNK]
            rbar[: self.values.size] += self.variogram.covariance(cdist(chunk, self.xy_m)).sum(0)
            rbar[self.values.size :] += self._drift(chunk, cov[s : s + _CHUNK]).sum(0)
            for s2 in range(0, m, _CHUNK):
                cbar += float(self.variogram.covariance(cdist(chunk, at[s2 : s2 + _CHUNK])).sum())
        rbar /= m
        cbar /= m * m
        var = cbar - float(rbar @ self._ainv @ rbar)
        return float(rbar @ self._weights), float(np.sqrt(max(var, 0.0)))

    def loocv(self) -> CrossValidation:
        """Leave-one-out cross-validation with the same variogram (Dubrule's shortcut)."""
        n = self.values.size
        diag = np.diag(self._ainv)[:n]
        resid = self._weights[:n] / diag  # z_i - zhat_-i
        se = np.sqrt(1.0 / diag)
        return summarise(self.values, self.values - resid, se)
