"""Agreement metrics between a (calibrated) sensor and the reference.

Sign convention: errors are ``sensor − reference``, so a positive MBE means the sensor reads
high. Regressions put the reference on x and the sensor on y, as the EPA targets and the EC
Guide to the Demonstration of Equivalence do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from luftnett.calibration.regression import deming, ols, pearson_r, require_pairs
from luftnett.errors import CalibrationError

__all__ = ["Metrics", "complete_pairs", "compute_metrics"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Agreement of ``n`` pairs, in the unit of the data.

    ``r2`` is the square of Pearson's r (the EPA "coefficient of determination" of the sensor
    vs reference regression); ``r2_skill`` is ``1 − SSE/SST`` of the values themselves, which
    can be negative when the sensor does worse than the reference mean.
    """

    n: int
    rmse: float
    mbe: float
    mae: float
    r: float
    r2: float
    ols_slope: float
    ols_intercept: float
    orthogonal_slope: float
    orthogonal_intercept: float
    nrmse_pct: float
    r2_skill: float
    reference_mean: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def complete_pairs(
    reference: npt.ArrayLike, sensor: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, int]:
    """The finite pairs of two equal-length series and how many were dropped."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    sen = np.asarray(sensor, dtype=np.float64).ravel()
    if ref.shape != sen.shape:
        raise CalibrationError(f"reference has {ref.size} values but sensor has {sen.size}")
    if ref.size and np.all(np.isnan(ref)):
        raise CalibrationError("reference: all values are missing (NaN)")
    if sen.size and np.all(np.isnan(sen)):
        raise CalibrationError("sensor: all values are missing (NaN)")
    ok = np.isfinite(ref) & np.isfinite(sen)
    return ref[ok], sen[ok], int(ref.size - ok.sum())


def compute_metrics(reference: npt.ArrayLike, sensor: npt.ArrayLike) -> Metrics:
    """All metrics over the complete pairs of ``reference`` (x) and ``sensor`` (y)."""
    ref, sen, _ = complete_pairs(reference, sensor)
    require_pairs(ref.size, "evaluation")
    e = sen - ref
    rmse = float(np.sqrt(np.mean(e * e)))
    r = pearson_r(ref, sen)
    line = ols(ref, sen)
    orth = deming(ref, sen, 1.0)
    mean_ref = float(ref.mean())
    sst = float(np.sum((ref - mean_ref) ** 2))
    return Metrics(
        n=int(ref.size),
        rmse=rmse,
        mbe=float(e.mean()),
        mae=float(np.mean(np.abs(e))),
        r=r,
        r2=r * r,
        ols_slope=line.slope,
        ols_intercept=line.intercept,
        orthogonal_slope=orth.slope,
        orthogonal_intercept=orth.intercept,
        nrmse_pct=100.0 * rmse / mean_ref if mean_ref > 0 else float("nan"),
        r2_skill=1.0 - float(np.dot(e, e)) / sst if sst > 0 else float("nan"),
        reference_mean=mean_ref,
    )
