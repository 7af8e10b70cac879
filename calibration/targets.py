"""Performance targets: US-EPA 2021 sensor targets and the CEN/TS 17660 class an REU implies.

US-EPA (Duvall et al. 2021) targets for non-regulatory supplemental and informational
monitoring, base testing at a field site:

=========  =====================  ==================  =======  ===============================
pollutant  slope                  intercept           R²       error
=========  =====================  ==================  =======  ===============================
PM2.5      1.0 ± 0.35             −5 … 5 µg/m³        ≥ 0.70   RMSE ≤ 7 µg/m³ or NRMSE ≤ 30 %
O3         1.0 ± 0.2              −5 … 5 ppb          ≥ 0.80   RMSE ≤ 5 ppb
NO2 (*)    1.0 ± 0.35             −5 … 5 ppb          ≥ 0.70   RMSE ≤ 15 ppb
=========  =====================  ==================  =======  ===============================

PM2.5 targets apply to 24-h means (EPA/600/R-20/280), O3 to 1-h means (EPA/600/R-20/279).
(*) The 2021 reports cover PM2.5 and O3 only; the NO2 row is a provisional placeholder modelled
on them until EPA's NO2 supplement is checked, and is reported with ``provisional = True``.

CEN/TS 17660-1:2021 (gases) and CEN/TS 17660-2 (PM) sensor classes by the data quality
objectives (DQO) of Directive 2008/50/EC, REU at the limit value:

=========  =====================  ============================  ============
pollutant  Class 1 (indicative)   Class 2 (objective estim.)    Class 3
=========  =====================  ============================  ============
NO2, O3    ≤ 25 %   (O3: 30 %)    ≤ 75 %                        larger
PM         ≤ 50 %                 ≤ 100 %                       larger
=========  =====================  ============================  ============

Only the REU criterion is checked here; the full TS adds laboratory tests and field tests in
two seasons, so the class is "implied", not certified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from luftnett.calibration.metrics import Metrics
from luftnett.errors import CalibrationError

__all__ = [
    "CEN_THRESHOLDS_PCT",
    "EPA_TARGETS",
    "LIMIT_VALUES_UGM3",
    "PPB_TO_UGM3",
    "CheckResult",
    "EpaTargets",
    "Pollutant",
    "cen_class",
    "check_epa",
    "default_limit",
]

Pollutant = Literal["pm25", "pm10", "no2", "o3"]


@dataclass(frozen=True, slots=True)
class EpaTargets:
    pollutant: Pollutant
    unit: str
    averaging: str
    slope_tolerance: float
    intercept_max: float
    r2_min: float
    rmse_max: float
    nrmse_max_pct: float | None
    source: str
    provisional: bool = False


EPA_TARGETS: dict[str, EpaTargets] = {
    "pm25": EpaTargets(
        "pm25", "µg/m³", "24-h", 0.35, 5.0, 0.70, 7.0, 30.0,
        "Duvall et al. (2021), EPA/600/R-20/280",
    ),
    "o3": EpaTargets(
        "o3", "ppb", "1-h", 0.20, 5.0, 0.80, 5.0, None, "Duvall et al. (2021), EPA/600/R-20/279"
    ),
    "no2": EpaTargets(
        "no2", "ppb", "1-h", 0.35, 5.0, 0.70, 15.0, None,
        "provisional: not in the EPA 2021 reports (PM2.5 and O3 only)", provisional=True,
    ),
}  # fmt: skip

#: CEN/TS 17660 class -> maximum REU at the limit value, %. Class 3 has no bound.
CEN_THRESHOLDS_PCT: dict[str, tuple[float, float]] = {
    "no2": (25.0, 75.0),
    "o3": (30.0, 75.0),
    "pm25": (50.0, 100.0),
    "pm10": (50.0, 100.0),
}

#: Limit values used for the REU, µg/m³: NO2 annual LV and hourly LV (2008/50/EC); O3 the 8-h
#: target value; PM2.5 the 30 µg/m³ the GDE uses for 24-h PM2.5; PM10 the daily LV.
LIMIT_VALUES_UGM3: dict[str, float] = {"no2": 40.0, "o3": 120.0, "pm25": 30.0, "pm10": 50.0}
LIMIT_VALUES_HOURLY_UGM3: dict[str, float] = {"no2": 200.0}
#: µg/m³ per ppb at 20 °C and 101.3 kPa (the reference conditions of 2008/50/EC).
PPB_TO_UGM3: dict[str, float] = {"no2": 1.91, "o3": 2.00}


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    value: float
    target: str
    passed: bool


def default_limit(pollutant: Pollutant, unit: Literal["ugm3", "ppb"]) -> float:
    """The limit value for ``pollutant`` expressed in ``unit``."""
    lv = LIMIT_VALUES_UGM3[pollutant]
    if unit == "ugm3":
        return lv
    if pollutant not in PPB_TO_UGM3:
        raise CalibrationError(f"{pollutant} is not a gas; give its limit in µg/m³")
    return lv / PPB_TO_UGM3[pollutant]


def check_epa(m: Metrics, pollutant: Pollutant) -> list[CheckResult]:
    """Pass/fail of each EPA target (slope and intercept from OLS, as in the EPA reports)."""
    if pollutant not in EPA_TARGETS:
        raise CalibrationError(f"no EPA targets for {pollutant}; known: {sorted(EPA_TARGETS)}")
    t = EPA_TARGETS[pollutant]
    checks = [
        CheckResult("slope", m.ols_slope, f"1 ± {t.slope_tolerance}",
                    abs(m.ols_slope - 1.0) <= t.slope_tolerance),
        CheckResult("intercept", m.ols_intercept, f"−{t.intercept_max:g} … {t.intercept_max:g}",
                    abs(m.ols_intercept) <= t.intercept_max),
        CheckResult("r2", m.r2, f"≥ {t.r2_min}", m.r2 >= t.r2_min),
    ]  # fmt: skip
    if t.nrmse_max_pct is None:
        checks.append(CheckResult("rmse", m.rmse, f"≤ {t.rmse_max:g}", m.rmse <= t.rmse_max))
    else:
        ok = m.rmse <= t.rmse_max or (
            not math.isnan(m.nrmse_pct) and m.nrmse_pct <= t.nrmse_max_pct
        )
        checks.append(
            CheckResult("rmse", m.rmse, f"≤ {t.rmse_max:g} or NRMSE ≤ {t.nrmse_max_pct:g} %", ok)
        )
    return checks


def cen_class(reu_pct: float, pollutant: Pollutant) -> int:
    """The CEN/TS 17660 class (1, 2 or 3) the REU at the limit value implies."""
    if pollutant not in CEN_THRESHOLDS_PCT:
        raise CalibrationError(f"no CEN/TS 17660 thresholds for {pollutant}")
    c1, c2 = CEN_THRESHOLDS_PCT[pollutant]
    if math.isnan(reu_pct):
        return 3
    return 1 if reu_pct <= c1 else 2 if reu_pct <= c2 else 3
