"""Straight lines and least squares: OLS, orthogonal (Deming) regression, weighted and robust fits.

Everything here takes and returns plain numpy arrays of float64; inputs must already be free of
NaN (the callers in :mod:`luftnett.calibration.evaluate` and :mod:`luftnett.calibration.fit`
drop incomplete pairs and say how many).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from luftnett.errors import CalibrationError

__all__ = [
    "MIN_PAIRS",
    "Line",
    "LinearFit",
    "deming",
    "huber_irls",
    "least_squares",
    "ols",
    "pearson_r",
    "require_pairs",
]

FloatArray = npt.NDArray[np.float64]

#: Fewest complete (reference, sensor) pairs any fit or evaluation accepts.
MIN_PAIRS = 3

#: Huber tuning constant: 95 % efficiency at the normal distribution.
HUBER_C = 1.345


@dataclass(frozen=True, slots=True)
class Line:
    """``y = intercept + slope * x``."""

    slope: float
    intercept: float


@dataclass(frozen=True, slots=True, eq=False)
class LinearFit:
    """Result of a (weighted) linear least-squares fit of ``y ≈ design @ beta``.

    ``covariance`` is the parameter covariance ``s² (XᵀWX)⁻¹``; ``residual_sd`` is ``s``, the
    residual standard deviation with ``n - p`` degrees of freedom (a robust scale for IRLS).
    """

    beta: FloatArray
    covariance: FloatArray
    residual_sd: float
    n: int


def require_pairs(n: int, what: str, minimum: int = MIN_PAIRS) -> None:
    """Raise :class:`CalibrationError` unless at least ``minimum`` complete pairs remain."""
    if n < minimum:
        raise CalibrationError(
            f"{what}: only {n} complete pairs (need at least {minimum}); "
            "check the column names and the missing-value markers"
        )


def _as_pairs(x: npt.ArrayLike, y: npt.ArrayLike, what: str) -> tuple[FloatArray, FloatArray]:
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise CalibrationError(f"{what}: x has {xa.size} values but y has {ya.size}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise CalibrationError(f"{what}: values must be finite; drop missing pairs first")
    require_pairs(xa.size, what)
    return xa, ya


def pearson_r(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson correlation coefficient; NaN when either series is constant."""
    xa, ya = _as_pairs(x, y, "correlation")
    dx, dy = xa - xa.mean(), ya - ya.mean()
    den = float(np.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    return float(np.dot(dx, dy) / den) if den > 0 else float("nan")


def ols(x: npt.ArrayLike, y: npt.ArrayLike) -> Line:
    """Ordinary least squares of ``y`` on ``x``."""
    xa, ya = _as_pairs(x, y, "OLS regression")
    dx = xa - xa.mean()
    sxx = float(np.dot(dx, dx))
    if sxx == 0:
        raise CalibrationError("OLS regression: x is constant, the slope is undefined")
    slope = float(np.dot(dx, ya - ya.mean()) / sxx)
    return Line(slope, float(ya.mean() - slope * xa.mean()))


def deming(x: npt.ArrayLike, y: npt.ArrayLike, lam: float = 1.0) -> Line:
    """Deming regression of ``y`` on ``x``; ``lam`` = var(error in y) / var(error in x).

    With ``lam = 1`` this is the orthogonal regression of the EC Guide to the Demonstration of
    Equivalence (2010)::

        b1 = (Syy - λ·Sxx + sqrt((Syy - λ·Sxx)² + 4·λ·Sxy²)) / (2·Sxy),   b0 = ȳ - b1·x̄
    """
    if lam <= 0:
        raise CalibrationError(f"Deming regression: lambda must be > 0 (got {lam})")
    xa, ya = _as_pairs(x, y, "orthogonal regression")
    dx, dy = xa - xa.mean(), ya - ya.mean()
    sxx, syy, sxy = float(np.dot(dx, dx)), float(np.dot(dy, dy)), float(np.dot(dx, dy))
    if sxy == 0:
        raise CalibrationError(
            "orthogonal regression: x and y are uncorrelated (Sxy = 0), the slope is undefined"
        )
    d = syy - lam * sxx
    slope = (d + np.sqrt(d * d + 4.0 * lam * sxy * sxy)) / (2.0 * sxy)
    return Line(float(slope), float(ya.mean() - slope * xa.mean()))


def least_squares(
    design: FloatArray, y: FloatArray, weights: FloatArray | None = None
) -> LinearFit:
    """Weighted linear least squares, refusing a singular or ill-conditioned design."""
    n, p = design.shape
    require_pairs(n, "least-squares fit", minimum=p + 1)
    w = np.ones(n) if weights is None else weights
    sw = np.sqrt(w)
    xw = design * sw[:, None]
    yw = y * sw
    if np.linalg.matrix_rank(xw) < p or np.linalg.cond(xw) > 1e12:
        raise CalibrationError(
            f"singular design: the {p} model terms are (nearly) collinear or constant over "
            f"the {n} training pairs; drop a covariate or use a longer training period"
        )
    beta, *_ = np.linalg.lstsq(xw, yw, rcond=None)
    resid = yw - xw @ beta
    dof = n - p
    s2 = float(np.dot(resid, resid) / dof)
    cov = s2 * np.linalg.inv(xw.T @ xw)
    return LinearFit(beta.astype(np.float64), cov.astype(np.float64), float(np.sqrt(s2)), n)


def _robust_scale(r: FloatArray) -> float:
    mad = float(np.median(np.abs(r - np.median(r)))) / 0.6745
    return mad if mad > 0 else float(np.sqrt(np.mean(r * r))) or 1.0


def huber_irls(
    design: FloatArray, y: FloatArray, c: float = HUBER_C, max_iter: int = 100, tol: float = 1e-10
) -> LinearFit:
    """Huber M-estimate by iteratively reweighted least squares (scale: normalised MAD).

    Returns the final weighted fit; its covariance is ``s² (XᵀWX)⁻¹`` with the robust scale
    ``s``, and ``residual_sd`` is that robust scale.
    """
    fit = least_squares(design, y)
    beta = fit.beta
    w = np.ones(y.size)
    for _ in range(max_iter):
        r = y - design @ beta
        s = _robust_scale(r)
        a = np.abs(r) / (c * s)
        w = np.where(a <= 1.0, 1.0, 1.0 / np.maximum(a, 1.0))
        fit = least_squares(design, y, w)
        if np.max(np.abs(fit.beta - beta)) <= tol * (1.0 + np.max(np.abs(beta))):
            beta = fit.beta
            break
        beta = fit.beta
    r = y - design @ beta
    s = _robust_scale(r)
    xw = design * np.sqrt(w)[:, None]
    cov = s * s * np.linalg.inv(xw.T @ xw)
    return LinearFit(beta, cov.astype(np.float64), s, int(y.size))
