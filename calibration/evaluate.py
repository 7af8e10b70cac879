"""Evaluate a calibration on a held-out period: metrics, GDE REU, EPA targets, CEN class."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from luftnett.calibration.metrics import Metrics, compute_metrics
from luftnett.calibration.model import CalibrationModel
from luftnett.calibration.targets import EPA_TARGETS, CheckResult, Pollutant, cen_class, check_epa
from luftnett.calibration.uncertainty import Reu, gde_reu, reu_curve
from luftnett.errors import CalibrationError

__all__ = ["Evaluation", "evaluate_model", "reu_grid"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Evaluation:
    """How a model did on test pairs, next to the raw sensor on the same pairs."""

    model: CalibrationModel
    calibrated: Metrics
    raw: Metrics
    reu: Reu | None
    curve_concentrations: FloatArray
    curve_reu_pct: FloatArray
    epa: list[CheckResult] | None
    cen_class: int | None
    mean_u: float  # mean per-value standard uncertainty reported by the model
    coverage_pct: float  # share of test pairs with |calibrated − reference| ≤ 2u
    pollutant: Pollutant | None = None

    @property
    def epa_provisional(self) -> bool:
        return self.pollutant in EPA_TARGETS and EPA_TARGETS[self.pollutant].provisional

    def as_dict(self) -> dict[str, Any]:
        """Flat metric keys of the calibrated values, then the details."""
        out: dict[str, Any] = dict(self.calibrated.as_dict())
        out["reu_pct"] = self.reu.reu_pct if self.reu else None
        out["limit"] = self.reu.limit if self.reu else None
        out["raw"] = self.raw.as_dict()
        out["reu"] = _clean(asdict(self.reu)) if self.reu else None
        out["reu_curve"] = [
            {"concentration": float(c), "reu_pct": float(w)}
            for c, w in zip(self.curve_concentrations, self.curve_reu_pct, strict=True)
        ]
        out["epa_targets"] = (
            {c.name: {"value": c.value, "target": c.target, "pass": c.passed} for c in self.epa}
            if self.epa is not None
            else None
        )
        out["epa_provisional"] = self.epa_provisional
        out["epa_pass"] = all(c.passed for c in self.epa) if self.epa is not None else None
        out["cen_ts_17660_class"] = self.cen_class
        out["mean_u"] = self.mean_u
        out["coverage_2u_pct"] = self.coverage_pct
        out["model"] = self.model.to_dict()
        cleaned: dict[str, Any] = _clean(out)
        return cleaned


def _clean(v: Any) -> Any:
    """JSON-safe: NaN and infinities become None, tuples become lists."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def reu_grid(reference: FloatArray, limit: float | None, points: int = 20) -> FloatArray:
    """Concentrations for the REU curve: from the 5th percentile to max(p99, limit)."""
    lo = max(float(np.percentile(reference, 5)), 1e-3)
    hi = max(float(np.percentile(reference, 99)), limit or 0.0, lo * 2)
    return np.linspace(lo, hi, points)


def evaluate_model(
    model: CalibrationModel,
    reference: npt.ArrayLike,
    sensor: npt.ArrayLike,
    covariates: Mapping[str, npt.ArrayLike] | None = None,
    *,
    limit: float | None = None,
    u_ref: float = 0.0,
    pollutant: Pollutant | None = None,
) -> Evaluation:
    """Apply ``model`` to the test pairs and judge the result against the reference."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    x = np.asarray(sensor, dtype=np.float64).ravel()
    if ref.size != x.size:
        raise CalibrationError(f"reference has {ref.size} values but sensor has {x.size}")
    out = model.apply(x, covariates)
    ok = np.isfinite(ref) & np.isfinite(x) & np.isfinite(out.value)
    if not ok.any():
        raise CalibrationError("evaluation: no complete test pairs (all values missing)")
    ref, x, y, u = ref[ok], x[ok], out.value[ok], out.u[ok]
    cal = compute_metrics(ref, y)
    raw = compute_metrics(ref, x)
    reu = gde_reu(ref, y, limit, u_ref) if limit is not None else None
    grid = reu_grid(ref, limit)
    curve = reu_curve(ref, y, grid, u_ref)
    epa = check_epa(cal, pollutant) if pollutant is not None and pollutant != "pm10" else None
    cls = cen_class(reu.reu_pct, pollutant) if reu is not None and pollutant is not None else None
    return Evaluation(
        model=model,
        calibrated=cal,
        raw=raw,
        reu=reu,
        curve_concentrations=grid,
        curve_reu_pct=curve,
        epa=epa,
        cen_class=cls,
        mean_u=float(np.mean(u)),
        coverage_pct=float(100.0 * np.mean(np.abs(y - ref) <= 2.0 * u)),
        pollutant=pollutant,
    )
