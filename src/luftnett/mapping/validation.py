"""Leave-one-out cross-validation (LOOCV) results, the numbers published with every map.

For each observation ``i`` the method predicts ``zhat_-i`` from all other observations (same
variogram, not refitted). With ``e_i = zhat_-i - z_i`` (positive = the map overestimates)::

    rmse = sqrt(mean(e²))        bias = mean(e)

and, where the method reports a standard error ``s_i`` of ``zhat_-i - z_i`` (kriging; it
includes the observation's own ``sigma_i²``)::

    mse_std = mean(e / s)        rmsse = sqrt(mean((e / s)²))

A well-calibrated model has ``mse_std`` near 0 and ``rmsse`` near 1; ``rmsse > 1`` means the
reported standard errors are too small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CrossValidation", "summarise"]

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """LOOCV of one method on one data set; ``predicted`` and ``se`` per observation."""

    observed: Array
    predicted: Array
    se: Array | None
    rmse: float
    bias: float
    mse_std: float
    rmsse: float

    @property
    def n(self) -> int:
        return int(self.observed.size)

    def line(self) -> str:
        """One human-readable line, as the CLI prints it to stderr."""
        text = f"loocv n={self.n} rmse={self.rmse:.6g} bias={self.bias:.6g}"
        if self.se is not None:
            text += f" mse_std={self.mse_std:.4g} rmsse={self.rmsse:.4g}"
        return text


def summarise(observed: Array, predicted: Array, se: Array | None = None) -> CrossValidation:
    """Build a :class:`CrossValidation` from LOO predictions (``se``: of ``predicted - observed``).

    Observations whose LOO prediction is NaN (IDW with no neighbour in its search radius) are
    left out of the summaries.
    """
    err = predicted - observed
    ok = np.isfinite(err)
    e = err[ok]
    rmse = float(np.sqrt(np.mean(e**2))) if e.size else math.nan
    bias = float(np.mean(e)) if e.size else math.nan
    mse_std = rmsse = math.nan
    if se is not None and e.size:
        s = se[ok]
        with np.errstate(divide="ignore", invalid="ignore"):
            std = e / s
        std = std[np.isfinite(std)]
        if std.size:
            mse_std = float(np.mean(std))
            rmsse = float(np.sqrt(np.mean(std**2)))
    return CrossValidation(
        observed=observed,
        predicted=predicted,
        se=se,
        rmse=rmse,
        bias=bias,
        mse_std=mse_std,
        rmsse=rmsse,
    )
