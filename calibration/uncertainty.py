"""Relative expanded uncertainty (REU) as the EC Guide to the Demonstration of Equivalence.

Report by the EC Working Group on Guidance for the Demonstration of Equivalence, *Guide to the
Demonstration of Equivalence of Ambient Air Monitoring Methods* (January 2010), section 9.5.
With the reference ``x`` and the candidate (sensor) ``y`` and the orthogonal regression
``y = b0 + b1·x``::

    RSS      = Σ (y_i − b0 − b1·x_i)²
    u²(c,s)  = RSS/(n − 2) − u²(x_ref) + [b0 + (b1 − 1)·L]²
    W        = 2 · sqrt(u²(c,s)) / L            (k = 2, reported in %)

``u(x_ref)`` is the reference method's own standard uncertainty (0 when unknown, which is the
conservative choice). If ``RSS/(n−2) − u²(x_ref)`` is negative the random term is set to 0.
Evaluated over a grid of concentrations instead of one L it gives the REU curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from luftnett.calibration.metrics import complete_pairs
from luftnett.calibration.regression import deming, require_pairs
from luftnett.errors import CalibrationError

__all__ = ["Reu", "gde_reu", "reu_curve"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Reu:
    """The GDE uncertainty budget at the limit value ``limit`` (data units)."""

    limit: float
    n: int
    slope: float  # b1, orthogonal
    intercept: float  # b0, orthogonal
    u_slope: float  # u(b1)
    u_intercept: float  # u(b0)
    rss: float
    random_var: float  # max(RSS/(n−2) − u²(x_ref), 0)
    bias_at_limit: float  # b0 + (b1 − 1)·L
    u_combined: float  # u(c,s) at L
    reu_pct: float  # W = 2·u(c,s)/L · 100


def _budget(ref: FloatArray, sen: FloatArray, u_ref: float) -> tuple[float, float, float, float]:
    require_pairs(ref.size, "REU", minimum=3)
    line = deming(ref, sen, 1.0)
    resid = sen - line.intercept - line.slope * ref
    rss = float(np.dot(resid, resid))
    random_var = max(rss / (ref.size - 2) - u_ref * u_ref, 0.0)
    return line.slope, line.intercept, rss, random_var


def gde_reu(
    reference: npt.ArrayLike, sensor: npt.ArrayLike, limit: float, u_ref: float = 0.0
) -> Reu:
    """REU at ``limit`` (same unit as the data) with the GDE (2010) orthogonal regression."""
    if not limit > 0:
        raise CalibrationError(f"the limit value must be > 0 (got {limit})")
    if u_ref < 0:
        raise CalibrationError(f"u(x_ref) must be >= 0 (got {u_ref})")
    ref, sen, _ = complete_pairs(reference, sensor)
    b1, b0, rss, random_var = _budget(ref, sen, u_ref)
    n = ref.size
    # GDE 2010 eq. for the uncertainties of the orthogonal-regression coefficients
    dx, dy = ref - ref.mean(), sen - sen.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    u_b1 = float(np.sqrt(max(syy - sxy * sxy / sxx, 0.0) / ((n - 2) * sxx))) if sxx else np.nan
    u_b0 = float(np.sqrt(u_b1 * u_b1 * float(ref @ ref) / n))
    bias = b0 + (b1 - 1.0) * limit
    u_c = float(np.sqrt(random_var + bias * bias))
    return Reu(
        limit=float(limit),
        n=int(n),
        slope=b1,
        intercept=b0,
        u_slope=u_b1,
        u_intercept=u_b0,
        rss=rss,
        random_var=random_var,
        bias_at_limit=bias,
        u_combined=u_c,
        reu_pct=200.0 * u_c / limit,
    )


def reu_curve(
    reference: npt.ArrayLike,
    sensor: npt.ArrayLike,
    concentrations: npt.ArrayLike,
    u_ref: float = 0.0,
) -> FloatArray:
    """REU in % at each concentration (> 0) of ``concentrations``; one regression for all."""
    c = np.asarray(concentrations, dtype=np.float64)
    if np.any(c <= 0):
        raise CalibrationError("REU curve: concentrations must be > 0")
    ref, sen, _ = complete_pairs(reference, sensor)
    b1, b0, _, random_var = _budget(ref, sen, u_ref)
    bias = b0 + (b1 - 1.0) * c
    return np.asarray(200.0 * np.sqrt(random_var + bias * bias) / c, dtype=np.float64)
