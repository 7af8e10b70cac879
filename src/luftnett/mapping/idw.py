"""Inverse-distance weighting, the baseline map.

    zhat(x0) = sum_i w_i z_i / sum_i w_i,    w_i = 1 / d(x0, x_i) ** power

over the ``k`` nearest observations within ``radius_m`` (both optional; default all). At an
observation's location (d = 0) the prediction is that observation (the mean of coincident
ones), so IDW is exact; it is a convex combination, so it never leaves ``[min z, max z]``.
A location with no observation within ``radius_m`` gets NaN. IDW has no error model, so it
reports no standard error; its LOOCV RMSE is the honest measure of its accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from luftnett.mapping.errors import MappingError
from luftnett.mapping.validation import CrossValidation, summarise

__all__ = ["Idw"]

Array = NDArray[np.float64]
_CHUNK = 8192


@dataclass(frozen=True, slots=True)
class Idw:
    """IDW over observations at ``xy_m`` (n, 2) metres with ``values`` (n,)."""

    xy_m: Array
    values: Array
    power: float = 2.0
    k: int | None = None
    radius_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "xy_m", np.asarray(self.xy_m, dtype=np.float64).reshape(-1, 2))
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float64).ravel())
        if self.values.size != self.xy_m.shape[0]:
            raise MappingError(
                f"{self.xy_m.shape[0]} locations but {self.values.size} values; give one each"
            )
        if self.values.size < 1:
            raise MappingError("IDW needs at least one observation")
        if not self.power > 0:
            raise MappingError(f"IDW power must be > 0 (got {self.power})")
        if self.k is not None and self.k < 1:
            raise MappingError(f"IDW k must be >= 1 (got {self.k})")
        if self.radius_m is not None and not self.radius_m > 0:
            raise MappingError(f"IDW search radius must be > 0 m (got {self.radius_m})")

    def _neighbours(self, at: Array, extra: int) -> tuple[Array, NDArray[np.intp]]:
        n = self.values.size
        k = min((self.k or n) + extra, n)
        bound = self.radius_m if self.radius_m is not None else np.inf
        # ``distance_upper_bound`` is exclusive; nudge it so a point on the circle counts.
        d, idx = cKDTree(self.xy_m).query(at, k=k, distance_upper_bound=np.nextafter(bound, np.inf))
        return np.asarray(d, dtype=np.float64).reshape(len(at), k), np.asarray(idx).reshape(
            len(at), k
        )

    def _combine(self, d: Array, idx: NDArray[np.intp]) -> Array:
        n = self.values.size
        valid = idx < n
        z = self.values[np.where(valid, idx, 0)]
        exact = valid & (d == 0.0)
        with np.errstate(divide="ignore"):
            w = np.where(valid & ~exact, d ** (-self.power), 0.0)
        out = np.full(d.shape[0], np.nan)
        has_exact = exact.any(axis=1)
        if has_exact.any():
            ex = exact[has_exact].astype(np.float64)
            out[has_exact] = (ex * z[has_exact]).sum(axis=1) / ex.sum(axis=1)
        rest = ~has_exact & valid.any(axis=1)
        out[rest] = (w[rest] * z[rest]).sum(axis=1) / w[rest].sum(axis=1)
        return out

    def predict(self, xy_m: ArrayLike) -> Array:
        """IDW predictions at ``xy_m`` (m, 2) metres; NaN where no neighbour is in range."""
        at = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        out = np.empty(at.shape[0])
        for s in range(0, at.shape[0], _CHUNK):
            d, idx = self._neighbours(at[s : s + _CHUNK], extra=0)
            out[s : s + _CHUNK] = self._combine(d, idx)
        return out

    def loocv(self) -> CrossValidation:
        """Leave-one-out: each observation predicted from the others (``se`` is None)."""
        n = self.values.size
        if n < 2:
            raise MappingError("LOOCV needs at least 2 observations")
        d, idx = self._neighbours(self.xy_m, extra=1)
        own = idx == np.arange(n)[:, None]
        # drop the observation itself; where it was not among the neighbours (ties at the
        # search limit), drop the farthest instead so that k neighbours remain.
        drop = own.copy()
        drop[~own.any(axis=1), -1] = True
        keep = ~drop
        d2 = d[keep].reshape(n, -1)
        idx2 = idx[keep].reshape(n, -1)
        return summarise(self.values, self._combine(d2, idx2))
