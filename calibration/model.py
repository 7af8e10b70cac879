"""The calibration model as a versioned, serialisable value.

A :class:`CalibrationModel` says which family made it, its coefficients and their covariance,
the inputs it needs, units, the training window and reference station, and how well it fitted.
Its ``model_id`` is a hash of all of that, so two identical fits share an id and any change
(even of one coefficient) yields a new one. ``apply`` returns calibrated values and a standard
uncertainty per value::

    u(ŷ) = sqrt(∇ŷᵀ · Σ · ∇ŷ + s²)

with ``Σ`` the parameter covariance and ``s`` the residual standard deviation of the fit.

Families and their terms:

* ``linear``: ``ŷ = intercept + sensor·x``
* ``multilinear``: ``ŷ = intercept + sensor·x + Σ c_j·z_j``; a term ``ah_gm3`` is the absolute
  humidity computed from the ``temperature`` and ``rh`` columns, every other term names a column
* ``epa-pa``: Barkjohn et al. (2021), ``ŷ = 5.75 + 0.524·PA_cf1 − 0.0862·RH`` (fixed)
* ``kohler``: ``ŷ = intercept + slope · x / (1 + κ·aw/(1 − aw))``, ``aw = RH/100`` clipped
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from luftnett.calibration.humidity import RH_MAX_PCT, absolute_humidity_gm3, kohler_growth
from luftnett.errors import CalibrationError

__all__ = [
    "AH_TERM",
    "SCHEMA_VERSION",
    "Calibrated",
    "CalibrationModel",
    "Family",
    "FitMethod",
    "ModelMeta",
]

FloatArray = npt.NDArray[np.float64]
Family = Literal["linear", "multilinear", "epa-pa", "kohler"]
FitMethod = Literal["ols", "huber", "fixed", "nonlinear-ls"]

SCHEMA_VERSION = 1
AH_TERM = "ah_gm3"
_LINEAR_FAMILIES = ("linear", "multilinear", "epa-pa")
_KOHLER_TERMS = ("kappa", "intercept", "slope")


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """Descriptive fields a fit stores in the model (they enter the ``model_id`` too)."""

    sensor: str = "sensor"
    unit: str = ""
    sensor_unit: str = ""
    reference_station: str | None = None
    trained_from: str | None = None
    trained_to: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Calibrated:
    """Calibrated values and their standard uncertainties (same unit, same shape)."""

    value: FloatArray
    u: FloatArray


@dataclass(frozen=True, slots=True)
class CalibrationModel:
    """One fitted (or fixed) calibration; see the module docstring for the families."""

    family: Family
    fit_method: FitMethod
    terms: tuple[str, ...]
    coefficients: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    residual_sd: float
    sensor: str = "sensor"
    covariates: tuple[str, ...] = ()
    rh: str | None = None
    temperature: str | None = None
    rh_max_pct: float = RH_MAX_PCT
    unit: str = ""
    sensor_unit: str = ""
    reference_station: str | None = None
    trained_from: str | None = None
    trained_to: str | None = None
    n_train: int = 0
    fit_metrics: tuple[tuple[str, float], ...] = ()
    notes: str = ""
    schema_version: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        p = len(self.terms)
        if len(self.coefficients) != p:
            raise CalibrationError(f"model has {p} terms but {len(self.coefficients)} coefficients")
        if len(self.covariance) != p or any(len(row) != p for row in self.covariance):
            raise CalibrationError(f"model covariance must be {p}×{p}")
        if self.family == "kohler" and self.terms != _KOHLER_TERMS:
            raise CalibrationError(f"kohler model terms must be {_KOHLER_TERMS}")
        if self.family == "kohler" and self.rh is None:
            raise CalibrationError("kohler model needs the name of its RH input")
        if AH_TERM in self.terms and (self.rh is None or self.temperature is None):
            raise CalibrationError(f"term {AH_TERM} needs both an RH and a temperature input")

    def with_meta(self, meta: ModelMeta | None) -> CalibrationModel:
        """A copy carrying ``meta`` (sensor name, units, station, training window)."""
        if meta is None:
            return self
        return replace(
            self,
            sensor=meta.sensor,
            unit=meta.unit or self.unit,
            sensor_unit=meta.sensor_unit or self.sensor_unit,
            reference_station=meta.reference_station,
            trained_from=meta.trained_from,
            trained_to=meta.trained_to,
        )

    # -- identity ------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """``<family>-<12 hex>``: SHA-256 of the canonical JSON of every other field."""
        canonical = json.dumps(self._content(), sort_keys=True, separators=(",", ":"))
        return f"{self.family}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"

    @property
    def coefficient_map(self) -> dict[str, float]:
        return dict(zip(self.terms, self.coefficients, strict=True))

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the input arrays ``apply`` needs besides the sensor value."""
        names = list(self.covariates)
        for extra in (self.rh, self.temperature):
            if extra is not None and extra not in names:
                names.append(extra)
        return tuple(names)

    # -- serialisation -------------------------------------------------------------------
    def _content(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "family": self.family,
            "fit_method": self.fit_method,
            "coefficients": self.coefficient_map,
            "covariance": [list(row) for row in self.covariance],
            "residual_sd": self.residual_sd,
            "sensor": self.sensor,
            "covariates": list(self.covariates),
            "rh": self.rh,
            "temperature": self.temperature,
            "rh_max_pct": self.rh_max_pct,
            "units": {"value": self.unit, "sensor": self.sensor_unit},
            "reference_station": self.reference_station,
            "training_window": {"from": self.trained_from, "to": self.trained_to},
            "n_train": self.n_train,
            "fit_metrics": dict(self.fit_metrics),
            "notes": self.notes,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, **self._content()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> CalibrationModel:
        """Parse and validate a model document; a stated ``model_id`` must match its content."""
        try:
            doc = _ModelDocument.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise CalibrationError(
                f"invalid calibration model JSON at {where}: {first['msg']}"
            ) from exc
        model = cls(
            family=doc.family,
            fit_method=doc.fit_method,
            terms=tuple(doc.coefficients),
            coefficients=tuple(doc.coefficients.values()),
            covariance=tuple(tuple(row) for row in doc.covariance),
            residual_sd=doc.residual_sd,
            sensor=doc.sensor,
            covariates=tuple(doc.covariates),
            rh=doc.rh,
            temperature=doc.temperature,
            rh_max_pct=doc.rh_max_pct,
            unit=doc.units.value,
            sensor_unit=doc.units.sensor,
            reference_station=doc.reference_station,
            trained_from=doc.training_window.from_,
            trained_to=doc.training_window.to,
            n_train=doc.n_train,
            fit_metrics=tuple(doc.fit_metrics.items()),
            notes=doc.notes,
            schema_version=doc.schema_version,
        )
        if doc.model_id is not None and doc.model_id != model.model_id:
            raise CalibrationError(
                f"model_id {doc.model_id!r} does not match the content (computed "
                f"{model.model_id!r}); the file was edited or corrupted — refit or restore it"
            )
        return model

    # -- application ---------------------------------------------------------------------
    def _column(self, covariates: Mapping[str, npt.ArrayLike], name: str, n: int) -> FloatArray:
        if name not in covariates:
            raise CalibrationError(
                f"{self.model_id} needs input {name!r}; got {sorted(covariates) or 'none'}"
            )
        a = np.asarray(covariates[name], dtype=np.float64).ravel()
        if a.size != n:
            raise CalibrationError(f"input {name!r} has {a.size} values, the sensor has {n}")
        return a

    def design(
        self, sensor: npt.ArrayLike, covariates: Mapping[str, npt.ArrayLike] | None = None
    ) -> FloatArray:
        """Design matrix (one column per term) of a linear-family model."""
        if self.family not in _LINEAR_FAMILIES:
            raise CalibrationError(f"family {self.family!r} has no linear design matrix")
        x = np.asarray(sensor, dtype=np.float64).ravel()
        cov = covariates or {}
        cols: list[FloatArray] = []
        for term in self.terms:
            if term == "intercept":
                cols.append(np.ones_like(x))
            elif term == "sensor":
                cols.append(x)
            elif term == AH_TERM:
                assert self.rh is not None  # checked in __post_init__
                assert self.temperature is not None
                t = self._column(cov, self.temperature, x.size)
                cols.append(absolute_humidity_gm3(t, self._column(cov, self.rh, x.size)))
            else:
                cols.append(self._column(cov, term, x.size))
        return np.column_stack(cols) if cols else np.empty((x.size, 0))

    def apply(
        self, sensor: npt.ArrayLike, covariates: Mapping[str, npt.ArrayLike] | None = None
    ) -> Calibrated:
        """Calibrate ``sensor`` (and covariates by input name); NaN inputs give NaN outputs."""
        beta = np.asarray(self.coefficients, dtype=np.float64)
        sigma = np.asarray(self.covariance, dtype=np.float64)
        if self.family == "kohler":
            value, grad = self._kohler(sensor, covariates or {}, beta)
        else:
            grad = self.design(sensor, covariates)
            value = grad @ beta
        var_param = np.einsum("ij,jk,ik->i", grad, sigma, grad)
        u = np.sqrt(np.maximum(var_param, 0.0) + self.residual_sd**2)
        return Calibrated(value.astype(np.float64), u.astype(np.float64))

    def _kohler(
        self, sensor: npt.ArrayLike, covariates: Mapping[str, npt.ArrayLike], beta: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        kappa, b0, b1 = (float(v) for v in beta)
        x = np.asarray(sensor, dtype=np.float64).ravel()
        assert self.rh is not None  # __post_init__
        rh = self._column(covariates, self.rh, x.size)
        g = kohler_growth(rh, kappa, self.rh_max_pct)
        aw = np.clip(rh, 0.0, self.rh_max_pct) / 100.0
        dry = x / g
        grad = np.column_stack([-b1 * x * (aw / (1.0 - aw)) / g**2, np.ones_like(x), dry])
        return b0 + b1 * dry, grad


class _Units(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: str = ""
    sensor: str = ""


class _Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


class _ModelDocument(BaseModel):
    """The JSON boundary: what ``CalibrationModel.to_json`` writes and ``from_json`` accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = 1
    model_id: str | None = None
    family: Family
    fit_method: FitMethod
    coefficients: dict[str, float] = Field(min_length=1)
    covariance: list[list[float]]
    residual_sd: float = Field(ge=0)
    sensor: str = "sensor"
    covariates: list[str] = []
    rh: str | None = None
    temperature: str | None = None
    rh_max_pct: float = Field(default=RH_MAX_PCT, gt=0, lt=100)
    units: _Units = _Units()
    reference_station: str | None = None
    training_window: _Window = _Window()
    n_train: int = Field(default=0, ge=0)
    fit_metrics: dict[str, float] = {}
    notes: str = ""
