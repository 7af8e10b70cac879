"""Humidity quantities used as calibration covariates: absolute humidity and κ-Köhler growth."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["RH_MAX_PCT", "absolute_humidity_gm3", "kohler_growth", "saturation_vapour_hpa"]

FloatArray = npt.NDArray[np.float64]

#: RH is clipped to this value before the κ-Köhler term, which diverges at 100 %.
RH_MAX_PCT = 99.0


def saturation_vapour_hpa(t_c: npt.ArrayLike) -> FloatArray:
    """Saturation vapour pressure over water, hPa (Magnus form, Alduchov & Eskridge 1996)."""
    t = np.asarray(t_c, dtype=np.float64)
    return np.asarray(6.1094 * np.exp(17.625 * t / (t + 243.04)), dtype=np.float64)


def absolute_humidity_gm3(t_c: npt.ArrayLike, rh_pct: npt.ArrayLike) -> FloatArray:
    """Absolute humidity, g/m³, from air temperature (°C) and relative humidity (%).

    ``AH = 216.7 · e / (T + 273.15)`` with ``e = RH/100 · e_s(T)`` in hPa; 20 °C and 50 % give
    8.6 g/m³.
    """
    t = np.asarray(t_c, dtype=np.float64)
    e = np.asarray(rh_pct, dtype=np.float64) / 100.0 * saturation_vapour_hpa(t)
    return np.asarray(216.7 * e / (t + 273.15), dtype=np.float64)


def kohler_growth(
    rh_pct: npt.ArrayLike, kappa: float, rh_max_pct: float = RH_MAX_PCT
) -> FloatArray:
    """Hygroscopic mass growth factor ``1 + κ · aw / (1 − aw)`` with ``aw = RH/100``.

    RH is clipped to ``[0, rh_max_pct]`` so that the factor stays finite; divide a humid
    optical PM reading by it to estimate the dry mass.
    """
    aw = np.clip(np.asarray(rh_pct, dtype=np.float64), 0.0, rh_max_pct) / 100.0
    return np.asarray(1.0 + kappa * aw / (1.0 - aw), dtype=np.float64)
