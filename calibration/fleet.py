"""Fleet defaults: the model a device gets before it has been co-located (pure, no I/O).

Each default is a fixed :class:`~luftnett.calibration.model.CalibrationModel` keyed by the
driver name and pollutant; it calibrates the readings of that driver's sensor
(``readings.sensor_model``), whatever else their box carries. Its uncertainty is deliberately larger
than a local fit's: the coefficients carry a standard uncertainty in the covariance (so ``u``
grows with the concentration) on top of a residual standard deviation for hourly data.

==========================  =======================================  ==============================
sensor model, pollutant     model                                    u (standard)
==========================  =======================================  ==============================
pms5003/pms7003, PM2.5      Barkjohn et al. (2021) US-EPA correction u(b0) 2, u(b1) 20 % of 0.524,
                            on ``pm25_cf1`` and ``rh_pct``           u(RH coef.) 0.02, s 5 µg/m³
sds011, PM2.5               identity (raw value)                     u(b1) 0.4, s 5 µg/m³
sds011, PM10                identity                                 u(b1) 0.5, s 8 µg/m³
sps30, PM2.5                identity                                 u(b1) 0.3, s 4 µg/m³
dgs-no2, NO2                identity                                 u(b1) 0.5, s 10 ppb
==========================  =======================================  ==============================

The coefficient uncertainties and residual SDs are luftnett's judgement, chosen to cover the
spread the cited field studies report; they are *not* fitted values. Barkjohn et al. report an
RMSE of about 3 µg/m³ for 24-h means across the US; single hours and another climate are
worse, hence s = 5 µg/m³. For the SDS011, field studies (Badura et al. 2018; Liu et al. 2019,
Oslo) found it reading high in humid air, with sensor-to-sensor spread and slopes that differ
by site, so no single published line is adopted: the raw value is kept with a wide slope
uncertainty until a co-location fits a local model.
"""

from __future__ import annotations

from dataclasses import dataclass

from luftnett.calibration.fit import BARKJOHN_2021
from luftnett.calibration.model import CalibrationModel

__all__ = ["FLEET_DEFAULTS", "FleetDefault", "fleet_default"]


@dataclass(frozen=True, slots=True)
class FleetDefault:
    sensor_model: str
    pollutant: str
    model: CalibrationModel
    source: str


def _identity(sensor: str, unit: str, u_slope: float, s: float, note: str) -> CalibrationModel:
    return CalibrationModel(
        family="linear",
        fit_method="fixed",
        terms=("intercept", "sensor"),
        coefficients=(0.0, 1.0),
        covariance=((0.0, 0.0), (0.0, u_slope**2)),
        residual_sd=s,
        sensor=sensor,
        unit=unit,
        sensor_unit=unit,
        notes=note,
    )


def _barkjohn() -> CalibrationModel:
    c = BARKJOHN_2021
    return CalibrationModel(
        family="epa-pa",
        fit_method="fixed",
        terms=("intercept", "sensor", "rh_pct"),
        coefficients=(c["intercept"], c["sensor"], c["rh"]),
        covariance=((2.0**2, 0.0, 0.0), (0.0, (0.2 * c["sensor"]) ** 2, 0.0), (0.0, 0.0, 0.02**2)),
        residual_sd=5.0,
        sensor="pm25_cf1",
        covariates=("rh_pct",),
        unit="µg/m³",
        sensor_unit="µg/m³ (Plantower CF=1)",
        notes=(
            "fleet default: Barkjohn, Gantt & Clements (2021), AMT 14, 4617-4637, "
            "doi:10.5194/amt-14-4617-2021; uncertainties widened by luftnett for hourly data"
        ),
    )


_SDS = "fleet default: raw SDS011 value, wide uncertainty (Badura et al. 2018; Liu et al. 2019)"

FLEET_DEFAULTS: dict[tuple[str, str], FleetDefault] = {
    (d.sensor_model, d.pollutant): d
    for d in (
        FleetDefault("pms5003", "pm25", _barkjohn(), "Barkjohn et al. 2021"),
        FleetDefault("pms7003", "pm25", _barkjohn(), "Barkjohn et al. 2021"),
        FleetDefault("sds011", "pm25", _identity("pm25_ugm3", "µg/m³", 0.4, 5.0, _SDS), _SDS),
        FleetDefault("sds011", "pm10", _identity("pm10_ugm3", "µg/m³", 0.5, 8.0, _SDS), _SDS),
        FleetDefault(
            "sps30", "pm25",
            _identity("pm25_ugm3", "µg/m³", 0.3, 4.0, "fleet default: raw SPS30 value"),
            "raw value",
        ),
        FleetDefault(
            "dgs-no2", "no2",
            _identity("no2_ppb", "ppb", 0.5, 10.0, "fleet default: raw electrochemical NO2"),
            "raw value",
        ),
    )
}  # fmt: skip


def fleet_default(sensor_model: str, pollutant: str) -> FleetDefault | None:
    return FLEET_DEFAULTS.get((sensor_model, pollutant))
