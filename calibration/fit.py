"""Fitting calibration models from paired sensor and reference values.

Each function takes the sensor values, the reference values and named covariate arrays (all
the same length, complete pairs only: NaN rows are dropped and counted by the caller) and
returns a :class:`~luftnett.calibration.model.CalibrationModel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares as scipy_least_squares

from luftnett.calibration.humidity import RH_MAX_PCT
from luftnett.calibration.model import AH_TERM, CalibrationModel, Family, ModelMeta
from luftnett.calibration.regression import huber_irls, least_squares, require_pairs
from luftnett.errors import CalibrationError

__all__ = [
    "BARKJOHN_2021",
    "BARKJOHN_RESIDUAL_SD_UGM3",
    "ModelName",
    "epa_purpleair",
    "fit_kohler",
    "fit_linear",
    "fit_model",
    "fit_multilinear",
]

FloatArray = npt.NDArray[np.float64]
ModelName = Literal["linear", "multilinear", "robust", "epa-pa", "kohler"]
Loss = Literal["ols", "huber"]

#: Barkjohn, Gantt & Clements (2021), AMT 14, 4617, US-wide PurpleAir correction (24-h data):
#: PM2.5 = 0.524·PA_cf1 − 0.0862·RH + 5.75
BARKJOHN_2021: dict[str, float] = {"intercept": 5.75, "sensor": 0.524, "rh": -0.0862}
#: RMSE of that correction against FRM/FEM reported by the paper (8 → 3 µg/m³, 24-h means);
#: the standard uncertainty ``apply`` gives when the model was not checked on local data.
BARKJOHN_RESIDUAL_SD_UGM3 = 3.0

_RESERVED = ("intercept", "sensor", AH_TERM)


def _vector(a: npt.ArrayLike, name: str) -> FloatArray:
    v = np.asarray(a, dtype=np.float64).ravel()
    if v.size and np.all(np.isnan(v)):
        raise CalibrationError(f"{name}: all values are missing (NaN)")
    if not np.all(np.isfinite(v)):
        raise CalibrationError(f"{name}: contains NaN or infinite values; drop incomplete rows")
    return v


def _inputs(
    sensor: npt.ArrayLike,
    reference: npt.ArrayLike,
    covariates: Mapping[str, npt.ArrayLike] | None,
) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
    x, y = _vector(sensor, "sensor"), _vector(reference, "reference")
    if x.size != y.size:
        raise CalibrationError(f"sensor has {x.size} values but reference has {y.size}")
    cov = {k: _vector(v, f"covariate {k!r}") for k, v in (covariates or {}).items()}
    for k, v in cov.items():
        if v.size != x.size:
            raise CalibrationError(f"covariate {k!r} has {v.size} values, the sensor has {x.size}")
    require_pairs(x.size, "calibration fit")
    return x, y, cov


def _fit_metrics(
    model: CalibrationModel, x: FloatArray, y: FloatArray, cov: Mapping[str, FloatArray]
) -> CalibrationModel:
    pred = model.apply(x, cov).value
    e = pred - y
    sst = float(np.sum((y - y.mean()) ** 2))
    metrics: list[tuple[str, float]] = [
        ("n", float(y.size)),
        ("rmse", float(np.sqrt(np.mean(e * e)))),
        ("mbe", float(np.mean(e))),
        ("mae", float(np.mean(np.abs(e)))),
    ]
    if sst > 0:
        metrics.append(("r2_skill", 1.0 - float(np.sum(e * e)) / sst))
    return replace(model, fit_metrics=tuple(metrics), n_train=int(y.size))


def _linear_terms(
    covariates: Sequence[str], rh: str | None, temperature: str | None, abs_humidity: bool
) -> tuple[str, ...]:
    for c in covariates:
        if c in _RESERVED:
            raise CalibrationError(f"covariate name {c!r} is reserved; rename the column")
    terms = ["intercept", "sensor", *covariates]
    if abs_humidity:
        if rh is None or temperature is None:
            raise CalibrationError("absolute humidity needs both an RH and a temperature column")
        terms.append(AH_TERM)
    if len(set(terms)) != len(terms):
        raise CalibrationError(f"duplicate model terms: {terms}")
    return tuple(terms)


def fit_multilinear(
    sensor: npt.ArrayLike,
    reference: npt.ArrayLike,
    covariates: Mapping[str, npt.ArrayLike] | None = None,
    *,
    rh: str | None = None,
    temperature: str | None = None,
    abs_humidity: bool = False,
    loss: Loss = "ols",
    meta: ModelMeta | None = None,
) -> CalibrationModel:
    """``reference ≈ b0 + b1·sensor + Σ cj·covariate_j [+ c·AH(T, RH)]`` by OLS or Huber IRLS.

    ``covariates`` maps input names to arrays; every name becomes a linear term (RH, T,
    cross-gas sensors). ``rh``/``temperature`` name the covariates that feed the absolute
    humidity term when ``abs_humidity`` is set. ``meta`` is stored in the model.
    """
    x, y, cov = _inputs(sensor, reference, covariates)
    if abs_humidity and not (rh in cov and temperature in cov):
        raise CalibrationError("absolute humidity needs the RH and temperature columns as inputs")
    terms = _linear_terms(list(cov), rh, temperature, abs_humidity)
    family: Family = "linear" if terms == ("intercept", "sensor") else "multilinear"
    shell = CalibrationModel(
        family=family,
        fit_method=loss,
        terms=terms,
        coefficients=(0.0,) * len(terms),
        covariance=((0.0,) * len(terms),) * len(terms),
        residual_sd=0.0,
        covariates=tuple(cov),
        rh=rh if abs_humidity else None,
        temperature=temperature if abs_humidity else None,
    ).with_meta(meta)
    design = shell.design(x, cov)
    fit = huber_irls(design, y) if loss == "huber" else least_squares(design, y)
    model = replace(
        shell,
        coefficients=tuple(float(b) for b in fit.beta),
        covariance=tuple(tuple(float(c) for c in row) for row in fit.covariance),
        residual_sd=fit.residual_sd,
    )
    return _fit_metrics(model, x, y, cov)


def fit_linear(
    sensor: npt.ArrayLike,
    reference: npt.ArrayLike,
    *,
    loss: Loss = "ols",
    meta: ModelMeta | None = None,
) -> CalibrationModel:
    """``reference ≈ b0 + b1·sensor`` (the sensor is the regressor: inverse calibration)."""
    return fit_multilinear(sensor, reference, None, loss=loss, meta=meta)


def epa_purpleair(
    rh: str = "rh",
    sensor: npt.ArrayLike | None = None,
    reference: npt.ArrayLike | None = None,
    covariates: Mapping[str, npt.ArrayLike] | None = None,
    meta: ModelMeta | None = None,
) -> CalibrationModel:
    """The fixed US-EPA PurpleAir correction (Barkjohn et al. 2021) reading RH from input ``rh``.

    Nothing is fitted. Given local pairs, the residual SD on them becomes the model's
    uncertainty; otherwise the paper's 3 µg/m³ RMSE (24-h means) is used.
    """
    c = BARKJOHN_2021
    terms = ("intercept", "sensor", rh)
    model = CalibrationModel(
        family="epa-pa",
        fit_method="fixed",
        terms=terms,
        coefficients=(c["intercept"], c["sensor"], c["rh"]),
        covariance=((0.0,) * 3,) * 3,
        residual_sd=BARKJOHN_RESIDUAL_SD_UGM3,
        covariates=(rh,),
        unit="µg/m³",
        sensor_unit="µg/m³ (PurpleAir cf_1)",
        notes="Barkjohn, Gantt & Clements (2021), AMT 14, 4617-4637, doi:10.5194/amt-14-4617-2021",
    ).with_meta(meta)
    if sensor is None or reference is None:
        return model
    x, y, cov = _inputs(sensor, reference, covariates)
    e = model.apply(x, cov).value - y
    model = replace(model, residual_sd=float(np.sqrt(np.sum(e * e) / max(y.size - 1, 1))))
    return _fit_metrics(model, x, y, cov)


def fit_kohler(
    sensor: npt.ArrayLike,
    reference: npt.ArrayLike,
    rh_values: npt.ArrayLike,
    *,
    rh: str = "rh",
    rh_max_pct: float = RH_MAX_PCT,
    robust: bool = False,
    meta: ModelMeta | None = None,
) -> CalibrationModel:
    """κ-Köhler growth correction then a linear scale, all three parameters fitted together.

    ``reference ≈ b0 + b1 · sensor / (1 + κ·aw/(1 − aw))``, ``aw = min(RH, rh_max_pct)/100``,
    κ bounded to [0, 5]; ``robust`` uses a soft-L1 loss. The covariance is ``s²(JᵀJ)⁻¹``.
    """
    x, y, cov = _inputs(sensor, reference, {rh: rh_values})
    aw = np.clip(cov[rh], 0.0, rh_max_pct) / 100.0
    q = aw / (1.0 - aw)
    if float(np.ptp(q)) == 0.0:
        raise CalibrationError("kohler fit: RH is constant over the training pairs; κ is undefined")

    def resid(p: FloatArray) -> FloatArray:
        return np.asarray(p[1] + p[2] * x / (1.0 + p[0] * q) - y, dtype=np.float64)

    def jac(p: FloatArray) -> FloatArray:
        g = 1.0 + p[0] * q
        return np.column_stack([-p[2] * x * q / g**2, np.ones_like(x), x / g])

    start = least_squares(np.column_stack([np.ones_like(x), x / (1.0 + 0.3 * q)]), y).beta
    res = scipy_least_squares(
        resid,
        np.array([0.3, start[0], start[1]]),
        jac=jac,
        bounds=([0.0, -np.inf, -np.inf], [5.0, np.inf, np.inf]),
        loss="soft_l1" if robust else "linear",
        f_scale=float(np.std(y)) * 0.1 or 1.0,
    )
    if not res.success:
        raise CalibrationError(f"kohler fit did not converge: {res.message}")
    p = np.asarray(res.x, dtype=np.float64)
    r = resid(p)
    dof = max(y.size - 3, 1)
    s2 = float(np.dot(r, r) / dof)
    j = jac(p)
    jtj = j.T @ j
    if np.linalg.cond(jtj) > 1e14:
        raise CalibrationError(
            "kohler fit: parameters not identifiable (singular Jacobian); "
            "the training period needs a wider RH range"
        )
    covariance = s2 * np.linalg.inv(jtj)
    model = CalibrationModel(
        family="kohler",
        fit_method="nonlinear-ls",
        terms=("kappa", "intercept", "slope"),
        coefficients=tuple(float(v) for v in p),
        covariance=tuple(tuple(float(c) for c in row) for row in covariance),
        residual_sd=float(np.sqrt(s2)),
        covariates=(rh,),
        rh=rh,
        rh_max_pct=rh_max_pct,
        notes="robust soft-L1 loss" if robust else "",
    ).with_meta(meta)
    return _fit_metrics(model, x, y, cov)


def fit_model(
    name: ModelName,
    sensor: npt.ArrayLike,
    reference: npt.ArrayLike,
    covariates: Mapping[str, npt.ArrayLike] | None = None,
    *,
    rh: str | None = None,
    temperature: str | None = None,
    abs_humidity: bool = False,
    meta: ModelMeta | None = None,
) -> CalibrationModel:
    """Fit the model the CLI names: linear, multilinear, robust (Huber), epa-pa, kohler.

    ``covariates`` holds every input array by name, including the RH and temperature ones.
    ``linear`` ignores covariates; ``multilinear`` and ``robust`` use all of them.
    """
    cov = dict(covariates or {})
    if name in ("epa-pa", "kohler"):
        if rh is None or rh not in cov:
            raise CalibrationError(f"model {name} needs a relative-humidity column (--rh)")
        if name == "epa-pa":
            return epa_purpleair(rh, sensor, reference, {rh: cov[rh]}, meta)
        return fit_kohler(sensor, reference, cov[rh], rh=rh, meta=meta)
    if name == "linear":
        return fit_linear(sensor, reference, meta=meta)
    return fit_multilinear(
        sensor,
        reference,
        cov,
        rh=rh,
        temperature=temperature,
        abs_humidity=abs_humidity,
        loss="huber" if name == "robust" else "ols",
        meta=meta,
    )
